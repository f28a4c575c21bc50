package tracing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/gateway"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

// The span tree of one command, across the whole pipeline on kfake (an
// in-process Kafka with transactions): gateway → processor → projector,
// with an in-memory exporter. Runs without any service.

const waitTimeout = 30 * time.Second

// pipeline is a gateway, a processor and a projector (memory view, events
// and outcomes) on one kfake cluster, all traced by tp (nil: off).
type pipeline struct {
	url   string
	kafka config.Kafka
	names topology.Names
	mem   *projection.Memory
	cl    *kgo.Client // a plain client of the cluster
}

// onKfake returns the connection settings of a new kfake cluster, with
// the ledger's topics under prefix, and a plain client of it.
func onKfake(t *testing.T, prefix string) (config.Kafka, *kgo.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kcfg := config.Kafka{Brokers: strings.Join(cluster.ListenAddrs(), ","), TopicPrefix: prefix, ClientID: "tracing-test"}
	cl, err := kafkax.NewClient(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	testenv.Topology(t, kadm.NewClient(cl), prefix, 3)
	return kcfg, cl
}

// onStack is onKfake on the shared Kafka of the local stack (SASL, TLS,
// ACLs), under a prefix of the test's own.
func onStack(t *testing.T) (config.Kafka, *kgo.Client) {
	t.Helper()
	prefix := testenv.TopicPrefix(t)
	cl := testenv.KafkaClient(t)
	testenv.Topology(t, kadm.NewClient(cl), prefix, 3)
	return testenv.KafkaConfig(t, prefix, "tracing-test"), cl
}

func startPipeline(t *testing.T, kcfg config.Kafka, cl *kgo.Client, tp trace.TracerProvider) *pipeline {
	t.Helper()
	names := topology.NamesFor(kcfg.TopicPrefix)
	log := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	running := 0
	t.Cleanup(func() {
		cancel()
		for range running {
			if err := <-done; err != nil {
				t.Errorf("pipeline: %v", err)
			}
		}
	})
	sagaKey := make([]byte, processor.MinSagaKeyBytes)
	_, _ = rand.Read(sagaKey)
	proc, err := processor.New(processor.Config{Kafka: kcfg, InstanceID: "trace", Log: log, SagaKey: sagaKey, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	mem := projection.NewMemory()
	proj, err := projector.New(projector.Config{Kafka: kcfg, Sink: mem, Results: mem, Log: log, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Kafka: kcfg, Log: log, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	for _, run := range []func(context.Context) error{proc.Run, proj.Run, gw.Run} {
		running++
		go func() { done <- run(ctx) }()
	}
	mux := http.NewServeMux()
	gw.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	rctx, rcancel := context.WithTimeout(ctx, waitTimeout)
	defer rcancel()
	for _, ready := range []func(context.Context) error{proc.Ready, gw.Ready} {
		for ready(rctx) != nil {
			if rctx.Err() != nil {
				t.Fatalf("pipeline not ready: %v", ready(rctx))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return &pipeline{url: srv.URL, kafka: kcfg, names: names, mem: mem, cl: cl}
}

// post sends one command with ?wait= and the given request headers, and
// returns the answer's status and body.
func (p *pipeline) post(t *testing.T, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url+"/v1/commands?wait=20s", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return resp.StatusCode, out
}

func (p *pipeline) mustAccept(t *testing.T, body string, headers map[string]string) {
	t.Helper()
	if code, out := p.post(t, body, headers); code != http.StatusOK || out["status"] != "accepted" {
		t.Fatalf("%s: %d %v", body, code, out)
	}
}

// waitAccount waits until the memory view has the account at version ≥ v.
func (p *pipeline) waitAccount(t *testing.T, id string, v int64) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(20 * time.Millisecond) {
		a, ok, _ := p.mem.Account(context.Background(), id)
		if ok && a.Version >= v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("account %s never reached version %d in the view", id, v)
		}
	}
}

// spans is what the exporter holds, indexed.
type spans struct {
	t   *testing.T
	all tracetest.SpanStubs
}

func (s spans) attr(st tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range st.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// find returns the spans named name (of trace tid, unless zero) whose
// attribute key has the value want (unless key is empty).
func (s spans) find(tid trace.TraceID, name, key, want string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, st := range s.all {
		if st.Name != name || (tid.IsValid() && st.SpanContext.TraceID() != tid) {
			continue
		}
		if key != "" {
			if v, ok := s.attr(st, key); !ok || v.Emit() != want {
				continue
			}
		}
		out = append(out, st)
	}
	return out
}

// one is find that wants exactly one span.
func (s spans) one(tid trace.TraceID, name, key, want string) tracetest.SpanStub {
	s.t.Helper()
	got := s.find(tid, name, key, want)
	if len(got) != 1 {
		s.t.Fatalf("want one span %q (%s=%s) in trace %s, have %d; spans:\n%s", name, key, want, tid, len(got), s.dump(tid))
	}
	return got[0]
}

// children returns the spans whose parent is parent, named name.
func (s spans) children(parent tracetest.SpanStub, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, st := range s.all {
		if st.Name == name && st.Parent.SpanID() == parent.SpanContext.SpanID() && st.Parent.TraceID() == parent.SpanContext.TraceID() {
			out = append(out, st)
		}
	}
	return out
}

// child is the one child of parent named name whose attribute key is want
// (any, when key is empty).
func (s spans) child(parent tracetest.SpanStub, name, key, want string) tracetest.SpanStub {
	s.t.Helper()
	var match []tracetest.SpanStub
	for _, st := range s.children(parent, name) {
		if v, ok := s.attr(st, key); key == "" || (ok && v.Emit() == want) {
			match = append(match, st)
		}
	}
	if len(match) != 1 {
		s.t.Fatalf("span %q: want one child %q (%s=%s), have %d; trace:\n%s", parent.Name, name, key, want, len(match), s.dump(parent.SpanContext.TraceID()))
	}
	return match[0]
}

// dump prints trace tid as a tree.
func (s spans) dump(tid trace.TraceID) string {
	var b strings.Builder
	var walk func(parent trace.SpanID, depth int)
	walk = func(parent trace.SpanID, depth int) {
		for _, st := range s.all {
			if st.SpanContext.TraceID() == tid && st.Parent.SpanID() == parent && st.SpanContext.SpanID() != parent {
				fmt.Fprintf(&b, "%s%s %v\n", strings.Repeat("  ", depth), st.Name, st.Attributes)
				walk(st.SpanContext.SpanID(), depth+1)
			}
		}
	}
	roots := map[trace.SpanID]bool{}
	ids := map[trace.SpanID]bool{}
	for _, st := range s.all {
		if st.SpanContext.TraceID() == tid {
			ids[st.SpanContext.SpanID()] = true
		}
	}
	for _, st := range s.all {
		if st.SpanContext.TraceID() == tid && !ids[st.Parent.SpanID()] {
			roots[st.Parent.SpanID()] = true
		}
	}
	for r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// TestSpanTreeOfACommand drives a transfer through the gateway with the
// caller's traceparent, and asserts its trace: one trace id from the
// caller's span to the projection of the saga's credit, with each span the
// child of the one before it, the processor's command spans linked to
// their transaction, and the transaction's outcome on them. A malformed
// traceparent (on an HTTP request, on a record a direct producer wrote)
// starts a new trace and breaks nothing.
func TestSpanTreeOfACommand(t *testing.T) {
	kcfg, cl := onKfake(t, "trace.")
	checkSpanTree(t, kcfg, cl)
}

// TestSpanTreeOnTheStack is TestSpanTreeOfACommand on the local stack's
// Kafka.
func TestSpanTreeOnTheStack(t *testing.T) {
	kcfg, cl := onStack(t)
	checkSpanTree(t, kcfg, cl)
}

func checkSpanTree(t *testing.T, kcfg config.Kafka, cl *kgo.Client) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := startPipeline(t, kcfg, cl, tp)

	p.mustAccept(t, `{"type":"OpenAccount","account_id":"acc-a","owner":"A","currency":"EUR"}`, nil)
	p.mustAccept(t, `{"type":"DepositFunds","account_id":"acc-a","amount":1000}`, nil)
	// A malformed traceparent from a caller: a new trace, nothing else.
	p.mustAccept(t, `{"type":"OpenAccount","account_id":"acc-b","owner":"B","currency":"EUR"}`,
		map[string]string{"traceparent": "00-not-a-trace-context", "tracestate": "=,=,"})

	// The command whose trace is asserted, from a caller's span.
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	p.mustAccept(t, `{"type":"TransferFunds","command_id":"tr-1","transfer_id":"tr-1","from_account_id":"acc-a","to_account_id":"acc-b","amount":300}`,
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", "tracestate": "vendor=x"})

	// A direct Avro producer's record with a malformed traceparent header.
	val, err := codec.Default().Encode(&codec.OpenAccount{CommandID: "direct-c", AggregateID: "acc-c", Owner: "C", Currency: "EUR",
		IssuedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.names.Commands, Key: []byte("acc-c"), Value: val,
		Partition: kafkax.KeyPartition([]byte("acc-c"), 3),
		Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("ledger.commands.OpenAccount")},
			{Key: "traceparent", Value: []byte{0xff, '-', 0}}, {Key: "tracestate", Value: bytes.Repeat([]byte{','}, 600)}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	p.waitAccount(t, "acc-b", 2) // the credit is projected
	p.waitAccount(t, "acc-c", 1) // the direct command is processed and projected
	tid, _ := trace.TraceIDFromHex(callerTrace)
	var s spans
	// The projection's spans end after the view has the batch.
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(20 * time.Millisecond) {
		s = spans{t: t, all: exp.GetSpans()}
		if len(s.find(tid, "project memory", "ledger.event.type", "TransferCredited")) > 0 &&
			len(s.find(tid, "project memory outcome", "ledger.command_id", "acc-a/3/credit")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the credit's projection span never came; trace:\n%s", s.dump(tid))
		}
	}
	t.Logf("trace of the transfer:\n%s", s.dump(tid))

	// Gateway: the server span continues the caller's span.
	server := s.one(tid, "POST /v1/commands", "", "")
	if server.Parent.SpanID().String() != callerSpan || !server.Parent.IsRemote() {
		t.Errorf("server span's parent %s (remote %v), want the caller's %s", server.Parent.SpanID(), server.Parent.IsRemote(), callerSpan)
	}
	if server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span kind %s", server.SpanKind)
	}
	if got := server.SpanContext.TraceState().Get("vendor"); got != "x" {
		t.Errorf("tracestate vendor=%q, want the caller's x", got)
	}
	n := p.names
	publish := s.child(server, n.Commands+" publish", "", "")

	// Processor: receive → process TransferFunds, linked to its transaction.
	receive := s.child(publish, n.Commands+" receive", "", "")
	debit := s.child(receive, "process TransferFunds", "ledger.command_id", "tr-1")
	checkCommandSpan(t, s, debit)

	// The debit's outputs continue the trace: its event, its result and
	// the saga's credit command.
	debitEvent := s.child(debit, n.Events+" publish", "", "")
	s.child(debit, n.Results+" publish", "", "")
	creditCmd := s.child(debit, n.Commands+" publish", "", "")

	// The saga: the credit is processed in the same trace.
	credit := s.child(s.child(creditCmd, n.Commands+" receive", "", ""), "process CreditTransfer", "ledger.command_id", "acc-a/3/credit")
	checkCommandSpan(t, s, credit)
	creditEvent := s.child(credit, n.Events+" publish", "", "")

	// Projector: a span per event, child of the event record's receive.
	s.child(s.child(debitEvent, n.Events+" receive", "", ""), "project memory", "ledger.event.type", "TransferDebited")
	s.child(s.child(creditEvent, n.Events+" receive", "", ""), "project memory", "ledger.event.type", "TransferCredited")
	// ... and per outcome, from the results topic.
	s.child(s.child(s.child(credit, n.Results+" publish", "", ""), n.Results+" receive", "", ""),
		"project memory outcome", "ledger.command_id", "acc-a/3/credit")

	// One tree: every span of the trace but the server span has its parent
	// in the trace.
	inTrace := map[trace.SpanID]bool{}
	for _, st := range s.all {
		if st.SpanContext.TraceID() == tid {
			inTrace[st.SpanContext.SpanID()] = true
		}
	}
	for _, st := range s.all {
		if st.SpanContext.TraceID() == tid && st.SpanContext.SpanID() != server.SpanContext.SpanID() && !inTrace[st.Parent.SpanID()] {
			t.Errorf("span %q of the trace has no parent in it", st.Name)
		}
	}

	// Every event record carries a trace context, and the projector's
	// transaction markers (control records) get no span: no receive span of
	// the events topic is a root.
	for _, st := range s.find(trace.TraceID{}, n.Events+" receive", "", "") {
		if !st.Parent.IsValid() {
			t.Errorf("a root span %q at offset %v: a record without trace context, or a control record", st.Name, st.Attributes)
		}
	}

	// The malformed traceparent from a caller: a new root, still accepted.
	for _, st := range s.find(trace.TraceID{}, "POST /v1/commands", "", "") {
		if st.Parent.IsValid() && st.SpanContext.TraceID() != tid {
			t.Errorf("a request without a valid traceparent has a parent: %v", st.Parent)
		}
	}
	// The direct record with a malformed traceparent: processed in a new
	// trace (its receive span is a root).
	direct := s.one(trace.TraceID{}, "process OpenAccount", "ledger.aggregate_id", "acc-c")
	if direct.SpanContext.TraceID() == tid {
		t.Error("the direct command joined the transfer's trace")
	}
	var parent *tracetest.SpanStub
	for i, st := range s.all {
		if st.SpanContext.SpanID() == direct.Parent.SpanID() {
			parent = &s.all[i]
		}
	}
	if parent == nil || parent.Name != n.Commands+" receive" || parent.Parent.IsValid() {
		t.Errorf("the direct command's span: want the child of a root receive span, have parent %+v", parent)
	}
}

// checkCommandSpan checks what every processor command span has: a link
// to its transaction's span, whose trace is another (a batch spans many
// commands), and the event telling how the transaction ended.
func checkCommandSpan(t *testing.T, s spans, cmd tracetest.SpanStub) {
	t.Helper()
	if v, _ := s.attr(cmd, "ledger.outcome"); v.AsString() != "accepted" {
		t.Errorf("%s: outcome %q", cmd.Name, v.Emit())
	}
	if len(cmd.Links) != 1 {
		t.Fatalf("%s: %d links, want 1 (its transaction)", cmd.Name, len(cmd.Links))
	}
	txn := cmd.Links[0].SpanContext
	found := false
	for _, st := range s.all {
		if st.SpanContext.SpanID() == txn.SpanID() {
			found = true
			if st.Name != "processor transaction" || st.Parent.IsValid() {
				t.Errorf("%s links to %q (parent %v), want a root processor transaction", cmd.Name, st.Name, st.Parent)
			}
			if v, _ := s.attr(st, "ledger.transaction"); v.AsString() != "committed" {
				t.Errorf("transaction span: outcome %q", v.Emit())
			}
			if txn.TraceID() == cmd.SpanContext.TraceID() {
				t.Errorf("transaction span in the command's trace")
			}
		}
	}
	if !found {
		t.Errorf("%s: its transaction's span was not exported", cmd.Name)
	}
	committed := false
	for _, ev := range cmd.Events {
		for _, a := range ev.Attributes {
			if ev.Name == "transaction" && a.Key == "ledger.transaction" && a.Value.AsString() == "committed" {
				committed = true
			}
		}
	}
	if !committed {
		t.Errorf("%s: no event transaction{ledger.transaction=committed}: %v", cmd.Name, cmd.Events)
	}
}

// TestOffAddsNoTraceHeaders: with tracing off (no provider), the same
// pipeline writes no trace header on any record of any topic, even for a
// caller that sends a traceparent.
func TestOffAddsNoTraceHeaders(t *testing.T) {
	kcfg, cl := onKfake(t, "notrace.")
	p := startPipeline(t, kcfg, cl, nil)
	tp := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	p.mustAccept(t, `{"type":"OpenAccount","account_id":"acc-a","owner":"A","currency":"EUR"}`, tp)
	p.mustAccept(t, `{"type":"OpenAccount","account_id":"acc-b","owner":"B","currency":"EUR"}`, tp)
	p.mustAccept(t, `{"type":"DepositFunds","account_id":"acc-a","amount":1000}`, tp)
	p.mustAccept(t, `{"type":"TransferFunds","transfer_id":"tr-1","from_account_id":"acc-a","to_account_id":"acc-b","amount":300}`, tp)
	p.waitAccount(t, "acc-b", 2)

	n := p.names
	cl, err := kafkax.NewClient(p.kafka, kgo.ConsumeTopics(n.Commands, n.Events, n.Snapshots, n.Results),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	for deadline := time.Now().Add(waitTimeout); seen[n.Events] < 4 || seen[n.Commands] < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("records read: %v", seen)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Topic]++
			for _, h := range r.Headers {
				if h.Key == "traceparent" || h.Key == "tracestate" {
					t.Errorf("%s/%d@%d has a %s header with tracing off", r.Topic, r.Partition, r.Offset, h.Key)
				}
			}
		})
	}
	t.Logf("records read, none with a trace header: %v", seen)
}
