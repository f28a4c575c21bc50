package kafkax

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// ReadAll calls fn for every committed record of topic, from the start to
// the high watermark captured when it begins, with a read_committed
// consumer. It reads to the high watermark, not the last stable offset: if a
// transaction is open it waits for its outcome instead of stopping early
// (ARCHITECTURE.md, "Known pitfalls"). fn runs on one goroutine.
func ReadAll(ctx context.Context, cfg config.Kafka, topic string, fn func(*kgo.Record) error) error {
	return ReadFrom(ctx, cfg, topic, nil, fn)
}

// ReadFrom is ReadAll starting at the given offset per partition (the start
// of the log for partitions not in from, or when from is nil).
func ReadFrom(ctx context.Context, cfg config.Kafka, topic string, from map[int32]int64, fn func(*kgo.Record) error) error {
	admCl, err := NewClient(cfg)
	if err != nil {
		return err
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		start, ok := from[o.Partition]
		switch {
		case o.Offset <= 0 || (ok && start >= o.Offset):
		case ok:
			want[o.Partition] = o.Offset
			starts[o.Partition] = kgo.NewOffset().At(start)
		default:
			want[o.Partition] = o.Offset
			starts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	limit := maps.Clone(want)
	cl, err := NewClient(cfg,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are returned too, so the end is seen even when
		// the last offset before the high watermark is a marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w (partitions not finished: %v)", topic, err, want)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			// The end check comes first: the marker that ends a transaction
			// open at the start lies past the limit, and must still finish
			// the partition when the records before it were hidden (aborted).
			if r.Offset+1 >= limit[r.Partition] {
				delete(want, r.Partition)
			}
			if r.Offset >= limit[r.Partition] {
				return // produced after ReadAll began
			}
			if cbErr == nil && !r.Attrs.IsControl() {
				cbErr = fn(r)
			}
		})
		if cbErr != nil {
			return cbErr
		}
	}
	return nil
}

// CaughtUp reports whether group has consumed and committed every committed
// data record of topic. Consumer lag alone cannot tell: a read_committed
// consumer never commits past the transaction markers (or aborted records)
// at the end of a partition, so its lag stays above zero when done. This
// reads each partition from the group's committed offset to the high
// watermark and reports false if any committed data record is there.
func CaughtUp(ctx context.Context, cfg config.Kafka, group, topic string) (bool, error) {
	cl, err := NewClient(cfg)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return false, fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	if err := offs.Error(); err != nil {
		return false, fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	from := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At >= 0 {
			from[o.Partition] = o.At
		} else {
			from[o.Partition] = 0
		}
	})
	pending := false
	err = ReadFrom(ctx, cfg, topic, from, func(*kgo.Record) error {
		pending = true
		return errDone
	})
	if errors.Is(err, errDone) {
		err = nil
	}
	return !pending && err == nil, err
}

var errDone = errors.New("done")
