package kafkax

import (
	"context"
	"errors"
	"fmt"
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
	adm := kadm.NewClient(admCl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ranges := map[int32]Range{}
	ends.Each(func(o kadm.ListedOffset) {
		r := Range{End: o.Offset}
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			r.From = s.Offset // records below it were deleted
		}
		if f, ok := from[o.Partition]; ok && f > r.From {
			r.From = f
		}
		ranges[o.Partition] = r
	})
	if err := ReadRanges(ctx, cfg, map[string]map[int32]Range{topic: ranges}, fn); err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	return nil
}

// Range is the offsets [From, End) of one partition.
type Range struct{ From, End int64 }

// ReadRanges calls fn for every committed data record in ranges (topic →
// partition → offsets), with one read_committed consumer, in offset order
// within a partition; fn runs on one goroutine. End is meant to be a high
// watermark: records at End or later (produced since) are not passed on, and
// a transaction still open below End is waited for, not cut short.
// Transaction markers are fetched but not passed on, so a partition whose
// last records before End were aborted (hidden) still finishes: the marker
// past them is seen.
func ReadRanges(ctx context.Context, cfg config.Kafka, ranges map[string]map[int32]Range, fn func(*kgo.Record) error) error {
	consume := map[string]map[int32]kgo.Offset{}
	pending := map[string]map[int32]int64{} // topic → partition → End, until done
	n := 0
	for t, ps := range ranges {
		for p, r := range ps {
			if r.From >= r.End {
				continue
			}
			if consume[t] == nil {
				consume[t], pending[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			// Exact offsets: the client starts fetching at once.
			consume[t][p] = kgo.NewOffset().At(r.From)
			pending[t][p] = r.End
			n++
		}
	}
	if n == 0 {
		return nil
	}
	cl, err := NewClient(cfg,
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// Everything wanted is below End: a fetch that waits for more
		// only delays the partitions that join the fetch session later.
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for n > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w before the end offsets (a transaction still open?); partitions not finished: %v", err, pending)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			end := ranges[r.Topic][r.Partition].End
			// The end check comes first: the marker that ends a transaction
			// open at the start lies past End, and must still finish the
			// partition when the records before it were hidden (aborted).
			if _, ok := pending[r.Topic][r.Partition]; ok && r.Offset >= end-1 {
				delete(pending[r.Topic], r.Partition)
				n--
			}
			if r.Offset >= end || r.Attrs.IsControl() || cbErr != nil {
				return
			}
			cbErr = fn(r)
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
