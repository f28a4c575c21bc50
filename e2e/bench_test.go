package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// BenchmarkProcessorVsCopy measures, on the local broker, the aggregate
// processor's throughput with exactly-once transactions and the throughput
// of a plain transactional copy that is its ceiling: the copy consumes the
// same command records (upstream and saga) with the same kind of
// GroupTransactSession and writes the same records (same count, sizes,
// topics and partitions) that the processor wrote, without decoding or
// deciding anything. b.N is the number of upstream commands per round.
//
// Each round runs on fresh topics: the processor first, then the copy on
// what the processor wrote. Both are timed the same way, from the moment
// they own their partitions (the processor: and has restored them; restore
// has its own benchmark) to their last commit, so group joins and the
// detection of the end do not count. A short warm-up round comes first
// (the broker's JIT, page cache and segment files are cold after a start);
// the reported figures are the medians of benchRounds measured rounds, each
// of which is logged. The two run under the pprof labels phase=processor and
// phase=copy, for -cpuprofile with -tagfocus.
//
//	go test ./e2e -run '^$' -bench ProcessorVsCopy -benchtime 200000x
func BenchmarkProcessorVsCopy(b *testing.B) {
	const benchRounds = 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := processorVsCopyRound(ctx, b, min(b.N, 20000)); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	var rounds []roundResult
	for i := range benchRounds {
		r, err := processorVsCopyRound(ctx, b, b.N)
		if err != nil {
			b.Fatalf("round %d: %v", i+1, err)
		}
		b.Logf("round %d: %d command records consumed, %d records / %d bytes written; processor %s (%.0f cmds/s), copy %s (%.0f cmds/s), ratio %.2f",
			i+1, r.consumed, r.written, r.bytes, r.proc.Round(time.Millisecond), r.procRate(), r.copy.Round(time.Millisecond), r.copyRate(), r.ratio())
		rounds = append(rounds, r)
	}
	median := func(f func(roundResult) float64) float64 {
		vs := make([]float64, len(rounds))
		for i, r := range rounds {
			vs[i] = f(r)
		}
		sort.Float64s(vs)
		return vs[len(vs)/2]
	}
	b.ReportMetric(median(roundResult.procRate), "cmds/s")
	b.ReportMetric(median(roundResult.copyRate), "copy-cmds/s")
	b.ReportMetric(median(roundResult.ratio), "ratio")
}

// roundResult is one round of BenchmarkProcessorVsCopy.
type roundResult struct {
	consumed       int64 // command records, upstream and saga
	written, bytes int   // records and key+value bytes written
	proc, copy     time.Duration
}

func (r roundResult) procRate() float64 { return float64(r.consumed) / r.proc.Seconds() }
func (r roundResult) copyRate() float64 { return float64(r.consumed) / r.copy.Seconds() }
func (r roundResult) ratio() float64    { return r.procRate() / r.copyRate() }

// processorVsCopyRound runs the processor, then the copy, over n upstream
// commands on fresh topics.
func processorVsCopyRound(ctx context.Context, b *testing.B, n int) (roundResult, error) {
	var res roundResult
	s := newStack(b, 4)
	accounts := max(n/20, 10)
	cmds := workload.Generate(workload.Options{Seed: 9, Accounts: accounts, Commands: max(n-accounts, 0), IDPrefix: "b-"})
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds, nil); err != nil {
		return res, err
	}

	// 1. The processor, until it has consumed everything including the
	//    saga commands it produced itself.
	settle()
	watch := &commitWatch{Registerer: prometheus.NewRegistry()}
	pcfg := processor.Config{Kafka: s.kafka, Group: s.kafka.TopicPrefix + "processor", InstanceID: "bench",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: watch}
	p, err := processor.New(pcfg)
	if err != nil {
		return res, err
	}
	if watch.committed == nil {
		return res, errors.New("the processor registered no transactions counter")
	}
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	perr := make(chan error, 1)
	go pprof.Do(pctx, pprof.Labels("phase", "processor"), func(c context.Context) { perr <- p.Run(c) })
	if err := p.Ready(ctx); err != nil {
		return res, fmt.Errorf("processor: %w", err)
	}
	ready := time.Now()
	lastCommit := watch.follow(pctx)
	waitCaughtUp(b, ctx, s, pcfg.Group)
	pcancel()
	if err := <-perr; err != nil {
		return res, fmt.Errorf("processor: %w", err)
	}
	res.proc = (<-lastCommit).Sub(ready)

	// What the processor wrote.
	outputs := map[int32][]*kgo.Record{} // by command partition, in order
	// keep notes r as one of the records the copy writes again.
	keep := func(r *kgo.Record) {
		outputs[r.Partition] = append(outputs[r.Partition], &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers})
	}
	for _, topic := range []string{s.names.Events, s.names.Snapshots, s.names.Results} {
		err := kafkax.ReadAll(ctx, s.kafka, topic, func(r *kgo.Record) error {
			keep(r)
			return nil
		})
		if err != nil {
			return res, err
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
				keep(r)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, n := range inputs {
		res.consumed += n
	}
	for _, rs := range outputs {
		res.written += len(rs)
		for _, r := range rs {
			res.bytes += len(r.Key) + len(r.Value)
		}
	}

	// 2. The copy: same consumption, same writes, no logic.
	settle()
	pprof.Do(ctx, pprof.Labels("phase", "copy"), func(ctx context.Context) {
		res.copy, err = runCopy(ctx, s, s.kafka.TopicPrefix+"copy", inputs, lastInput, outputs)
	})
	return res, err
}

// settle lets the machine come to rest before a timed phase, so that
// neither phase pays for the I/O of what came before it (producing the
// commands, reading the outputs): it writes back dirty pages (a local
// broker's) and pauses briefly.
func settle() {
	syscall.Sync()
	time.Sleep(500 * time.Millisecond)
}

// commitWatch registers the processor's metrics and notes when its count of
// committed transactions last moved: the end of its last commit.
type commitWatch struct {
	prometheus.Registerer
	committed prometheus.Counter
}

func (w *commitWatch) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 8)
	c.Describe(descs)
	close(descs)
	for d := range descs {
		if cv, ok := c.(*prometheus.CounterVec); ok && strings.Contains(d.String(), `"ledger_processor_transactions_total"`) {
			w.committed = cv.WithLabelValues("committed")
		}
	}
	return w.Registerer.Register(c)
}

// follow samples the counter every millisecond until ctx ends, then sends
// the time it last changed.
func (w *commitWatch) follow(ctx context.Context) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		value := func() float64 {
			var m dto.Metric
			_ = w.committed.Write(&m)
			return m.GetCounter().GetValue()
		}
		last, at := value(), time.Now()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- at
				return
			case now := <-t.C:
				if v := value(); v != last {
					last, at = v, now
				}
			}
		}
	}()
	return out
}

// runCopy consumes the commands topic up to inputs (per partition) in
// transactions and, for the i-th of n records of a partition, writes the
// outputs of that partition in the proportional slice, so that after the
// last input every output was written once.
func runCopy(ctx context.Context, s *stack, group string, inputs, lastInput map[int32]int64, outputs map[int32][]*kgo.Record) (time.Duration, error) {
	opts, err := kafkax.ClientOpts(s.kafka)
	if err != nil {
		return 0, err
	}
	var assigned atomic.Pointer[time.Time]
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(s.names.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(group+"-copy"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequireStableFetchOffsets(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			now := time.Now()
			assigned.CompareAndSwap(nil, &now)
		}),
	)...)
	if err != nil {
		return 0, err
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
			return 0, err
		}
		if err := sess.Begin(); err != nil {
			return 0, err
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
				return 0, fmt.Errorf("copy produce: %w", err)
			}
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		sess.AllowRebalance()
		if err != nil {
			return 0, fmt.Errorf("copy commit: %w", err)
		}
		if !committed {
			continue // a rebalance aborted it; the session rewound, so redo
		}
		for p, i := range staged {
			done[p] = i
		}
		remaining -= finished
	}
	end := time.Now()
	start := assigned.Load()
	if start == nil {
		return 0, errors.New("copy: no partitions were assigned")
	}
	return end.Sub(*start), nil
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
