package kafkax

import (
	"context"
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
		if o.Offset > 0 {
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
