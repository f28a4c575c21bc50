package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

const waitTimeout = 30 * time.Second

// env is one test's topics and the clients to drive them.
type env struct {
	t     *testing.T
	kafka config.Kafka
	names topology.Names
	prod  *kgo.Client
	reg   *prometheus.Registry
}

// newEnv declares the ledger topology with 3 partitions under a prefix of
// the test's own.
func newEnv(t *testing.T) *env {
	t.Helper()
	prefix := testenv.TopicPrefix(t)
	names := testenv.Topology(t, kadm.NewClient(testenv.KafkaClient(t)), prefix, 3)
	return &env{
		t:     t,
		kafka: testenv.KafkaConfig(t, prefix, "processor-test"),
		names: names,
		prod: testenv.KafkaClient(t,
			kgo.DefaultProduceTopic(names.Commands),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
			// Up to Kafka's default max.message.bytes, as a Java
			// producer with max.request.size 1 MiB may send.
			kgo.ProducerBatchMaxBytes(1_048_588),
		),
		reg: prometheus.NewRegistry(),
	}
}

// running is a processor whose Run goroutine the test controls.
type running struct {
	p *processor.Processor
	// stop cancels Run and returns its error; if the test never calls
	// it, cleanup does and fails the test on an error.
	stop func() error
	// done is closed when Run has returned.
	done <-chan struct{}
}

// start runs a processor of the test's group and waits until it is ready;
// opts adjust its configuration.
func (e *env) start(instance string, opts ...func(*processor.Config)) *running {
	e.t.Helper()
	cfg := processor.Config{
		Kafka:      e.kafka,
		InstanceID: instance,
		Log:        testLogger(e.t),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"instance": instance}, e.reg),
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := processor.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		runErr = p.Run(ctx)
		close(done)
	}()
	var once sync.Once
	var stopped bool // by the test
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitTimeout):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	e.t.Cleanup(func() {
		if err := stop(); err != nil && !stopped {
			e.t.Errorf("processor %s: %v", instance, err)
		}
	})
	rctx, rcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer rcancel()
	if err := p.Ready(rctx); err != nil {
		e.t.Fatalf("processor %s not ready: %v", instance, err)
	}
	return &running{p: p, done: done, stop: func() error {
		stopped = true
		return stop()
	}}
}

// send produces commands (generated codec types) keyed by their aggregate.
func (e *env) send(cmds ...any) {
	e.t.Helper()
	for _, c := range cmds {
		val, err := codec.Default().Encode(c)
		if err != nil {
			e.t.Fatal(err)
		}
		e.sendRaw(aggregateOf(c), val)
	}
}

// sendTo produces raw bytes to one partition of the commands topic, whatever
// the key hashes to.
func (e *env) sendTo(partition int32, key, value []byte) {
	e.t.Helper()
	cl := testenv.KafkaClient(e.t, kgo.DefaultProduceTopic(e.names.Commands), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: key, Value: value, Partition: partition}).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// sendRaw produces raw bytes to the commands topic.
func (e *env) sendRaw(key string, value []byte, headers ...kgo.RecordHeader) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r := &kgo.Record{Key: []byte(key), Value: value, Headers: headers}
	if err := e.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

func aggregateOf(c any) string {
	switch c := c.(type) {
	case *codec.OpenAccount:
		return c.AggregateID
	case *codec.DepositFunds:
		return c.AggregateID
	case *codec.WithdrawFunds:
		return c.AggregateID
	case *codec.TransferFunds:
		return c.AggregateID
	case *codec.CreditTransfer:
		return c.AggregateID
	case *codec.RefundTransfer:
		return c.AggregateID
	case *codec.CloseAccount:
		return c.AggregateID
	}
	panic(fmt.Sprintf("not a command: %T", c))
}

// reader accumulates every committed record of one topic.
type reader struct {
	t    *testing.T
	cl   *kgo.Client
	recs []*kgo.Record
}

func (e *env) reader(topic string) *reader {
	return &reader{t: e.t, cl: testenv.KafkaClient(e.t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)}
}

// until polls until cond holds on everything read so far.
func (r *reader) until(what string, cond func([]*kgo.Record) bool) []*kgo.Record {
	r.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond(r.recs) {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; have %d records", what, len(r.recs))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := r.cl.PollFetches(ctx)
		cancel()
		r.recs = append(r.recs, fs.Records()...)
	}
	return r.recs
}

// results waits for the results of ids and returns them by command id (the
// last one of each id).
func (r *reader) results(ids ...string) map[string]*codec.CommandResult {
	r.t.Helper()
	byID := func(recs []*kgo.Record) map[string]*codec.CommandResult {
		out := map[string]*codec.CommandResult{}
		for _, rec := range recs {
			var res codec.CommandResult
			if err := codec.Default().DecodeInto(rec.Value, &res); err != nil {
				r.t.Fatalf("result %s: %v", rec.Key, err)
			}
			if _, seen := out[string(rec.Key)]; seen && answersAgain(rec) {
				continue // keep the first outcome
			}
			out[string(rec.Key)] = &res
		}
		return out
	}
	recs := r.until("results "+strings.Join(ids, ","), func(recs []*kgo.Record) bool {
		have := byID(recs)
		for _, id := range ids {
			if have[id] == nil {
				return false
			}
		}
		return true
	})
	return byID(recs)
}

// answersAgain reports whether a result answers a command id seen before (a
// repeat, or a refused reuse of the id): it is not the id's first outcome.
func answersAgain(r *kgo.Record) bool {
	return headerOf(r, processor.HeaderDuplicate) != "" || headerOf(r, processor.HeaderReused) != ""
}

// countKey counts the records with key, leaving out the answers to command
// ids seen before (answersAgain): they are not outcomes of their own.
func countKey(recs []*kgo.Record, key string) int {
	n := 0
	for _, r := range recs {
		if string(r.Key) == key && !answersAgain(r) {
			n++
		}
	}
	return n
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func decode[T any](t *testing.T, r *kgo.Record) *T {
	t.Helper()
	v := new(T)
	if err := codec.Default().DecodeInto(r.Value, v); err != nil {
		t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
	}
	return v
}

// Command builders with the envelope filled in.

var issued = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func open(id, acc, currency string) *codec.OpenAccount {
	return &codec.OpenAccount{CommandID: id, AggregateID: acc, IssuedAt: issued, Owner: "owner of " + acc, Currency: currency}
}

func deposit(id, acc string, amount int64) *codec.DepositFunds {
	return &codec.DepositFunds{CommandID: id, AggregateID: acc, IssuedAt: issued, Amount: amount, Reference: "dep"}
}

func withdraw(id, acc string, amount int64) *codec.WithdrawFunds {
	return &codec.WithdrawFunds{CommandID: id, AggregateID: acc, IssuedAt: issued, Amount: amount, Reference: "wd"}
}

func transfer(id, from, to string, amount int64) *codec.TransferFunds {
	return &codec.TransferFunds{CommandID: id, AggregateID: from, IssuedAt: issued,
		TransferID: "tr-" + id, FromAccountID: from, ToAccountID: to, Amount: amount}
}

// testLogger logs through t until the test has finished.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// waitCounter waits until the counter name{labels} (summed over the
// processors registered in e.reg) reaches want.
func (e *env) waitCounter(name string, labels map[string]string, want float64) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got float64
	for {
		mfs, err := e.reg.Gather()
		if err != nil {
			e.t.Fatal(err)
		}
		got = 0
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				have := map[string]string{}
				for _, lp := range m.GetLabel() {
					have[lp.GetName()] = lp.GetValue()
				}
				for k, v := range labels {
					if have[k] != v {
						continue metrics
					}
				}
				got += m.GetCounter().GetValue()
			}
		}
		if got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != want {
		e.t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}
