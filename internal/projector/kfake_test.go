package projector_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/topology"
)

// The projector's commit and revoke logic on kfake, an in-process Kafka:
// these run without any service (make test-unit).

// kfakeEnv is a kfake cluster holding the events topic of h.
func kfakeEnv(t *testing.T, h projectiontest.History) (config.Kafka, topology.Names, *kadm.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	const prefix = "kfake."
	kcfg := config.Kafka{Brokers: strings.Join(cluster.ListenAddrs(), ","), TopicPrefix: prefix, ClientID: "projector-kfake-test"}
	names := topology.NamesFor(prefix)
	cl, err := kafkax.NewClient(kcfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, names.Events); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, ev := range h.Events {
		b, err := codec.Default().Encode(ev.Value)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: names.Events, Key: []byte(ev.AggregateID + "/" + strconv.FormatInt(ev.Version, 10)),
			Value: b, Partition: kafkax.KeyPartition([]byte(ev.AggregateID), partitions)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return kcfg, names, adm
}

// committedAll reports whether group committed every partition of topic to its end.
func committedAll(t *testing.T, adm *kadm.Client, group, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		if c, ok := offs.Lookup(o.Topic, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
			done = false
		}
	})
	return done
}

func waitAllCommitted(t *testing.T, adm *kadm.Client, group, topic string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !committedAll(t, adm, group, topic); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not commit to the end of %s", group, topic)
		}
	}
}

// TestKfakeCommitsOnlyWhatWasApplied: while the sink fails, the projector
// commits nothing past where the batch starts and retries the same batch;
// once the sink takes it, everything is committed and the view is exact.
func TestKfakeCommitsOnlyWhatWasApplied(t *testing.T) {
	h := projectiontest.Generate(51, "", 6, 200)
	kcfg, names, adm := kfakeEnv(t, h)
	group := kcfg.TopicPrefix + "failing"
	mem := projection.NewMemory()
	var commitsWhileFailing int
	fs := &failingSink{Sink: mem, n: 3}
	fs.onFail = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if offs, err := adm.FetchOffsets(ctx, group); err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.At > 0 {
					commitsWhileFailing++
				}
			})
		}
	}
	start(t, projector.Config{Kafka: kcfg, Group: group, Sink: fs, MaxBatch: 5000, MaxDelay: 100 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	waitAllCommitted(t, adm, group, names.Events)
	projectiontest.CheckHistory(t, mem, h)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.calls <= fs.n {
		t.Fatalf("the sink was called %d times; the test wants %d failures first", fs.calls, fs.n)
	}
	if commitsWhileFailing != 0 {
		t.Errorf("offsets committed while the sink failed (%d times)", commitsWhileFailing)
	}
	for i := 1; i < len(fs.batches); i++ {
		if strings.Join(fs.batches[i], ",") != strings.Join(fs.batches[0], ",") {
			t.Errorf("retry %d applied another batch (%d events, first %d)", i, len(fs.batches[i]), len(fs.batches[0]))
		}
	}
	if st := mem.Stats(); st.Duplicates != 0 || st.Gaps != 0 {
		t.Errorf("view stats %+v: nothing may be applied twice or out of order", st)
	}
}

// sharedSink is one view written by two members of a group (they take
// turns), counting what they apply.
type sharedSink struct {
	mu      sync.Mutex
	mem     *projection.Memory
	gate    chan struct{} // the first Apply of member "stalled" waits on it
	entered chan struct{}
	once    sync.Once
	// stalled is true while the stalled member's first Apply is in
	// flight; overlaps counts the other member's Apply calls started
	// meanwhile (what write fencing must prevent).
	stalled  atomic.Bool
	overlaps atomic.Int64
}

type memberSink struct {
	*sharedSink
	stall bool
}

func (s memberSink) Name() string                   { return "shared" }
func (s memberSink) Ping(ctx context.Context) error { return nil }
func (s memberSink) Apply(ctx context.Context, batch []projection.Event) error {
	if s.stall {
		first := false
		s.once.Do(func() {
			first = true
			s.stalled.Store(true)
			close(s.entered)
			<-s.gate
		})
		if first {
			// The window ends once the held-up write below is done.
			defer s.stalled.Store(false)
		}
	} else if s.stalled.Load() {
		s.overlaps.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem.Apply(ctx, batch)
}

// TestKfakeRevokeDuringApply: a member stalls inside Apply while a second
// member joins and the rebalance moves partitions to it. Released, the
// stalled member finishes its write; the new owner writes nothing of those
// partitions before the announced write is done or its deadline passed
// (write fencing): no Apply of the new owner starts while the stalled one
// is in flight. The shared view applies every event once, in order, and
// ends exact, and the group commits everything. Redeliveries are allowed:
// the stalled member's offsets may not commit once its partitions moved,
// so the new owner reads them again and the view skips them by version
// (projection.Memory counts them as Duplicates).
func TestKfakeRevokeDuringApply(t *testing.T) {
	h := projectiontest.Generate(52, "", 9, 300)
	kcfg, names, adm := kfakeEnv(t, h)
	group := kcfg.TopicPrefix + "revoke"
	shared := &sharedSink{mem: projection.NewMemory(), gate: make(chan struct{}), entered: make(chan struct{})}
	cfg := projector.Config{Kafka: kcfg, Group: group, MaxBatch: 5000, MaxDelay: 20 * time.Millisecond,
		RebalanceTimeout: 2 * time.Second, SessionTimeout: 6 * time.Second, WriteDeadline: 3 * time.Second}
	a := cfg
	a.Sink = memberSink{shared, true}
	start(t, a)
	select {
	case <-shared.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first member never applied")
	}
	b := cfg
	b.Sink = memberSink{shared, false}
	start(t, b)
	time.Sleep(1500 * time.Millisecond) // the rebalance is under way
	close(shared.gate)
	waitAllCommitted(t, adm, group, names.Events)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	projectiontest.CheckHistory(t, shared.mem, h)
	if n := shared.overlaps.Load(); n > 0 {
		t.Errorf("the new owner applied %d batches while the stalled write was in flight", n)
	}
	st := shared.mem.Stats()
	if st.Gaps != 0 || st.Applied != int64(len(h.Events)) {
		t.Errorf("view stats %+v, want %d applied once each, in order", st, len(h.Events))
	}
	t.Logf("view stats %+v (duplicates: redeliveries skipped by version)", st)
}
