package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// BenchmarkProcessorVsCopy measures, in one run on the local broker, the
// aggregate processor's throughput with exactly-once transactions and the
// throughput of a plain transactional copy that is its ceiling: the copy
// consumes the same command records (upstream and saga) with the same kind
// of GroupTransactSession and writes the same records (same count, sizes,
// topics and partitions) that the processor wrote, without decoding or
// deciding anything. b.N is the number of upstream commands:
//
//	go test ./e2e -run '^$' -bench ProcessorVsCopy -benchtime 50000x
func BenchmarkProcessorVsCopy(b *testing.B) {
	s := newStack(b, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	accounts := max(b.N/20, 10)
	cmds := workload.Generate(workload.Options{Seed: 9, Accounts: accounts, Commands: max(b.N-accounts, 0), IDPrefix: "b-"})
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds, nil); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// 1. The processor, from a cold start until it has consumed everything
	//    including the saga commands it produced itself.
	start := time.Now()
	pcfg := processor.Config{Kafka: s.kafka, Group: s.kafka.TopicPrefix + "processor", InstanceID: "bench", Log: quiet}
	p, err := processor.New(pcfg)
	if err != nil {
		b.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	perr := make(chan error, 1)
	go func() { perr <- p.Run(pctx) }()
	waitCaughtUp(b, ctx, s, pcfg.Group)
	procDur := time.Since(start)
	pcancel()
	if err := <-perr; err != nil {
		b.Fatalf("processor: %v", err)
	}

	// What the processor wrote.
	outputs := map[int32][]*kgo.Record{} // by command partition, in order
	for _, topic := range []string{s.names.Events, s.names.Snapshots, s.names.Results} {
		err := kafkax.ReadAll(ctx, s.kafka, topic, func(r *kgo.Record) error {
			outputs[r.Partition] = append(outputs[r.Partition], &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// The command records the processor consumed (upstream and saga), per
	// partition: their count and the offset of the last one. Offsets alone
	// do not say: transaction markers take offsets too. Saga commands are
	// also records the processor wrote; the copy writes them again (to the
	// commands topic, past the offsets it reads).
	inputs := map[int32]int64{}
	lastInput := map[int32]int64{}
	err = kafkax.ReadAll(ctx, s.kafka, s.names.Commands, func(r *kgo.Record) error {
		inputs[r.Partition]++
		lastInput[r.Partition] = r.Offset
		for _, h := range r.Headers {
			if h.Key == processor.HeaderOrigin {
				outputs[r.Partition] = append(outputs[r.Partition], &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers})
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	consumed := int64(0)
	for _, n := range inputs {
		consumed += n
	}
	written, bytes := 0, 0
	for _, rs := range outputs {
		written += len(rs)
		for _, r := range rs {
			bytes += len(r.Key) + len(r.Value)
		}
	}

	// 2. The copy: same consumption, same writes, no logic.
	start = time.Now()
	copyGroup := s.kafka.TopicPrefix + "copy"
	if err := runCopy(ctx, s, copyGroup, inputs, lastInput, outputs); err != nil {
		b.Fatal(err)
	}
	copyDur := time.Since(start)

	procRate := float64(consumed) / procDur.Seconds()
	copyRate := float64(consumed) / copyDur.Seconds()
	b.ReportMetric(procRate, "cmds/s")
	b.ReportMetric(copyRate, "copy-cmds/s")
	b.ReportMetric(procRate/copyRate, "ratio")
	b.Logf("%d command records consumed (%d upstream + saga), %d records / %d bytes written; processor %s (%.0f cmds/s), copy %s (%.0f cmds/s), ratio %.2f",
		consumed, len(cmds), written, bytes, procDur.Round(time.Millisecond), procRate, copyDur.Round(time.Millisecond), copyRate, procRate/copyRate)
}

// runCopy consumes the commands topic up to inputs (per partition) in
// transactions and, for the i-th of n records of a partition, writes the
// outputs of that partition in the proportional slice, so that after the
// last input every output was written once.
func runCopy(ctx context.Context, s *stack, group string, inputs, lastInput map[int32]int64, outputs map[int32][]*kgo.Record) error {
	opts, err := kafkax.ClientOpts(s.kafka)
	if err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(s.names.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(group+"-copy"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequireStableFetchOffsets(),
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	done := map[int32]int64{}
	remaining := len(inputs)
	for _, n := range inputs {
		if n == 0 {
			remaining--
		}
	}
	for remaining > 0 {
		fs := sess.PollRecords(ctx, processor.DefaultMaxBatch)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		var out []*kgo.Record
		staged := map[int32]int64{}
		finished := 0
		fs.EachRecord(func(r *kgo.Record) {
			n := inputs[r.Partition]
			if r.Offset > lastInput[r.Partition] {
				return
			}
			all := outputs[r.Partition]
			i, ok := staged[r.Partition]
			if !ok {
				i = done[r.Partition]
			}
			from, to := int(i*int64(len(all))/n), int((i+1)*int64(len(all))/n)
			for _, o := range all[from:to] {
				c := *o
				out = append(out, &c)
			}
			staged[r.Partition] = i + 1
			if i+1 == n {
				finished++
			}
		})
		if len(out) > 0 {
			if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
				_, _ = sess.End(ctx, kgo.TryAbort)
				return fmt.Errorf("copy produce: %w", err)
			}
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		sess.AllowRebalance()
		if err != nil {
			return fmt.Errorf("copy commit: %w", err)
		}
		if !committed {
			continue // a rebalance aborted it; the session rewound, so redo
		}
		for p, i := range staged {
			done[p] = i
		}
		remaining -= finished
	}
	return nil
}

// waitCaughtUp waits until group has consumed every committed record of topic.
func waitCaughtUp(tb testing.TB, ctx context.Context, s *stack, group string) {
	tb.Helper()
	for {
		if done, err := kafkax.CaughtUp(ctx, s.kafka, group, s.names.Commands); err == nil && done {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("group %s did not catch up: %v", group, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
