package projector_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

const partitions = 3

type env struct {
	kafka  config.Kafka
	names  topology.Names
	adm    *kadm.Client
	rdb    *redis.Client
	prefix string // redis key prefix
}

func setup(t *testing.T) env {
	t.Helper()
	prefix := testenv.TopicPrefix(t)
	e := env{
		kafka: testenv.KafkaConfig(t, prefix, "projector-test"),
		names: topology.NamesFor(prefix),
		adm:   kadm.NewClient(testenv.KafkaClient(t)),
	}
	e.rdb, e.prefix = testenv.RedisClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{e.names.Events, e.names.Results} {
		if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	return e
}

func (e env) sink(t *testing.T) *redissink.Sink {
	t.Helper()
	s, err := redissink.New(e.rdb, redissink.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func record(t *testing.T, topic, key, agg string, v any) *kgo.Record {
	t.Helper()
	b, err := codec.Default().Encode(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Partition: kafkax.KeyPartition([]byte(agg), partitions)}
}

// produceHistory writes h to the events topic in chunks: plainly,
// transactionally, and transactionally after an aborted transaction of
// forged events that take the versions of the real ones (if any leaked
// into a view, the real event would be a duplicate and the view wrong).
// Each rewrite, if any, changes the i-th real record before it is produced.
func produceHistory(t *testing.T, e env, events []projection.Event, rewrite ...func(i int, r *kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	plain := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	txn := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("projector-test-"+testenv.ID(t)))
	inTxn := func(recs []*kgo.Record, end kgo.TransactionEndTry) {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		if err := txn.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	const chunk = 40
	for i, start := 0, 0; start < len(events); i, start = i+1, start+chunk {
		var recs, forged []*kgo.Record
		seen := map[string]bool{}
		for j, ev := range events[start:min(start+chunk, len(events))] {
			r := record(t, e.names.Events, ev.AggregateID+"/"+strconv.FormatInt(ev.Version, 10), ev.AggregateID, ev.Value)
			for _, f := range rewrite {
				f(start+j, r)
			}
			recs = append(recs, r)
			if !seen[ev.AggregateID] {
				seen[ev.AggregateID] = true
				f := &codec.FundsDeposited{EventID: "forged-" + ev.EventID, AggregateID: ev.AggregateID, Version: ev.Version,
					CommandID: "forged", OccurredAt: ev.OccurredAt, Amount: 1 << 40, Currency: "EUR", BalanceAfter: 1 << 40, Reference: "aborted"}
				forged = append(forged, record(t, e.names.Events, ev.AggregateID+"/"+strconv.FormatInt(ev.Version, 10), ev.AggregateID, f))
			}
		}
		switch i % 3 {
		case 0:
			if err := plain.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		case 1:
			inTxn(recs, kgo.TryCommit)
		case 2:
			inTxn(forged, kgo.TryAbort)
			inTxn(recs, kgo.TryCommit)
		}
	}
}

// committed reports whether group has committed every partition of topics up to its end.
func committed(ctx context.Context, t *testing.T, e env, group string, topics ...string) bool {
	t.Helper()
	ends, err := e.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	offs, err := e.adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := offs.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!ok || c.At < o.Offset) {
			done = false
		}
	})
	return done
}

func waitCommitted(t *testing.T, e env, group string, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for !committed(ctx, t, e, group, topics...) {
		select {
		case <-ctx.Done():
			t.Fatalf("group %s did not commit to the end of %v", group, topics)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start runs a projector until the test ends.
func start(t *testing.T, cfg projector.Config) *projector.Projector {
	t.Helper()
	p, _ := startStoppable(t, cfg)
	return p
}

// startStoppable runs a projector until stop is called or the test ends.
func startStoppable(t *testing.T, cfg projector.Config) (*projector.Projector, func()) {
	t.Helper()
	p, err := projector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projector: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// dump returns DUMP of every key under prefix.
func dump(t *testing.T, rdb *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Dump(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatalf("dump %s: %v", iter.Val(), err)
		}
		out[iter.Val()] = v
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProjectsCommittedEventsToRedis(t *testing.T) {
	e := setup(t)
	h := projectiontest.Generate(21, "", 10, 400)
	produceHistory(t, e, h.Events)

	// Command outcomes, one rejected, on the results topic.
	now := time.Now().UTC().Truncate(time.Millisecond)
	plain := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var results []*kgo.Record
	for i := range 5 {
		cr := &codec.CommandResult{CommandID: fmt.Sprintf("cmd-%d", i), AggregateID: "acc-1", CommandType: "ledger.commands.DepositFunds",
			Status: "ACCEPTED", Version: int64(i + 1), Events: []codec.EventRef{}, ProcessedAt: now}
		if i == 4 {
			cr.Status, cr.Reason = "REJECTED", "account_closed"
		}
		results = append(results, record(t, e.names.Results, cr.CommandID, cr.AggregateID, cr))
	}
	if err := plain.ProduceSync(context.Background(), results...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sink := e.sink(t)
	reg := prometheus.NewRegistry()
	p := start(t, projector.Config{Kafka: e.kafka, Sink: sink, Results: sink, MaxBatch: 64, MaxDelay: 50 * time.Millisecond, Registerer: reg})
	if got, want := p.Group(), e.kafka.TopicPrefix+"projector-redis"; got != want {
		t.Fatalf("group %q, want %q", got, want)
	}
	waitCommitted(t, e, p.Group(), e.names.Events, e.names.Results)
	projectiontest.CheckHistory(t, sink, h)
	if err := p.Ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}
	o, ok, err := sink.CommandOutcome(context.Background(), "cmd-4", "")
	if err != nil || !ok || o.Status != "rejected" || o.Reason != "account_closed" {
		t.Fatalf("outcome cmd-4: %+v ok=%v err=%v", o, ok, err)
	}
	// The gauge is set right after the commit the broker already shows.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lag := gauge(t, reg, "ledger_projector_lag")
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %v after committing everything", lag)
		}
	}

	// A second group replays everything over the live view: byte for byte the same.
	before := dump(t, e.rdb, e.prefix)
	if len(before) < len(h.Accounts) {
		t.Fatalf("only %d keys", len(before))
	}
	p2 := start(t, projector.Config{Kafka: e.kafka, Group: e.kafka.TopicPrefix + "replay", Sink: e.sink(t), MaxDelay: 20 * time.Millisecond})
	waitCommitted(t, e, p2.Group(), e.names.Events)
	after := dump(t, e.rdb, e.prefix)
	if len(after) != len(before) {
		t.Fatalf("replay: %d keys, before %d", len(after), len(before))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("replay changed %s", k)
		}
	}
}

// failingSink fails its first n applies.
type failingSink struct {
	projection.Sink
	mu      sync.Mutex
	n       int
	calls   int
	onFail  func()
	batches [][]string // event ids of each failed call
}

func (f *failingSink) Apply(ctx context.Context, batch []projection.Event) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.n
	if fail {
		ids := make([]string, len(batch))
		for i, e := range batch {
			ids[i] = e.EventID
		}
		f.batches = append(f.batches, ids)
	}
	hook := f.onFail
	f.mu.Unlock()
	if fail {
		if hook != nil {
			hook()
		}
		return errors.New("injected failure")
	}
	return f.Sink.Apply(ctx, batch)
}

func TestFailingSinkRetriesWithoutCommitting(t *testing.T) {
	e := setup(t)
	h := projectiontest.Generate(22, "", 6, 200)
	produceHistory(t, e, h.Events)

	group := e.kafka.TopicPrefix + "failing"
	var readyErrs, commitsWhileFailing int
	var ages []float64 // ledger_projector_lag_seconds at each failure
	var p *projector.Projector
	var pmu sync.Mutex
	reg := prometheus.NewRegistry()
	fs := &failingSink{Sink: e.sink(t), n: 4}
	fs.onFail = func() {
		ages = append(ages, gauge(t, reg, "ledger_projector_lag_seconds"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Each attempt announces its write by committing the offsets the
		// batch starts at (0 here, a fresh group): no progress may be
		// committed while it fails.
		if offs, err := e.adm.FetchOffsets(ctx, group); err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.At > 0 {
					commitsWhileFailing++
				}
			})
		}
		pmu.Lock()
		if p != nil && p.Ready(ctx) != nil {
			readyErrs++
		}
		pmu.Unlock()
	}
	pmu.Lock()
	p = start(t, projector.Config{Kafka: e.kafka, Group: group, Sink: fs, MaxBatch: 5000, MaxDelay: 300 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Registerer: reg})
	pmu.Unlock()
	waitCommitted(t, e, group, e.names.Events)
	projectiontest.CheckHistory(t, fs.Sink.(projection.View), h)

	fs.mu.Lock()
	defer fs.mu.Unlock()
	if commitsWhileFailing != 0 {
		t.Fatalf("offsets committed while the sink failed (%d times)", commitsWhileFailing)
	}
	// The first failure happens before Ready can fail; every later one sees it.
	if readyErrs < fs.n-1 {
		t.Fatalf("Ready failed %d times during %d failures", readyErrs, fs.n)
	}
	// Each retry is the same batch: no new records polled while failing.
	for i := 1; i < len(fs.batches); i++ {
		if fmt.Sprint(fs.batches[i]) != fmt.Sprint(fs.batches[0]) {
			t.Fatalf("retry %d applied a different batch (%d events, first %d)", i, len(fs.batches[i]), len(fs.batches[0]))
		}
	}
	if r := counter(t, reg, "ledger_projector_retries_total"); r < float64(fs.n) {
		t.Fatalf("retries metric %v, want ≥ %d", r, fs.n)
	}
	if r := counter(t, reg, "ledger_projector_apply_errors_total"); r != float64(fs.n) {
		t.Fatalf("apply errors metric %v, want %d", r, fs.n)
	}
	if err := p.Ready(context.Background()); err != nil {
		t.Fatalf("ready after recovery: %v", err)
	}
	// The lag in seconds: the age of the oldest waiting event, growing
	// while the sink fails, 0 once it is applied.
	if len(ages) < 2 || ages[0] <= 0 || ages[len(ages)-1] <= ages[0] {
		t.Fatalf("lag seconds at the failures: %v, want positive and growing", ages)
	}
	if age := gauge(t, reg, "ledger_projector_lag_seconds"); age != 0 {
		t.Fatalf("lag seconds %v after everything was applied", age)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// gauge sums every series of a gauge.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				found = true
				sum += m.GetGauge().GetValue()
			}
		}
	}
	if !found {
		t.Fatalf("no %s series", name)
	}
	return sum
}

func TestConfigValidate(t *testing.T) {
	err := projector.Config{Kafka: config.Kafka{Brokers: "", TopicPrefix: "bad prefix"}}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"no sink", "topic-prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestRebalanceKeepsViewsExact runs two members of one group while events
// arrive: partitions move when the second joins and again when the first
// leaves, and the views still end up exactly the fold.
func TestRebalanceKeepsViewsExact(t *testing.T) {
	e := setup(t)
	h := projectiontest.Generate(23, "", 12, 600)
	half := len(h.Events) / 2
	group := e.kafka.TopicPrefix + "rebalance"
	cfg := projector.Config{Kafka: e.kafka, Group: group, Sink: e.sink(t), MaxBatch: 50, MaxDelay: 20 * time.Millisecond}
	_, stop1 := startStoppable(t, cfg)
	produceHistory(t, e, h.Events[:half])
	cfg.Sink = e.sink(t)
	start(t, cfg) // joins while the first member is consuming
	waitMembers(t, e, group, 2)
	produceHistory(t, e, h.Events[half:half+half/2])
	stop1()
	produceHistory(t, e, h.Events[half+half/2:])
	waitCommitted(t, e, group, e.names.Events)
	projectiontest.CheckHistory(t, e.sink(t), h)
}

// waitMembers waits until n members of group each own a partition.
func waitMembers(t *testing.T, e env, group string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		gs, err := e.adm.DescribeGroups(ctx, group)
		if err == nil {
			owning := 0
			for _, m := range gs[group].Members {
				if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && len(a.Topics[0].Partitions) > 0 {
					owning++
				}
			}
			if owning >= n {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s: %d members never owned partitions", group, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
