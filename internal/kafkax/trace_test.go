package kafkax

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceOptsOffIsNothing(t *testing.T) {
	if opts := TraceOpts(nil, "g"); len(opts) != 0 {
		t.Fatalf("tracing off: %d options, want none", len(opts))
	}
}

// tracedHooks returns the hooks TraceOpts installs, over an in-memory exporter.
func tracedHooks(t *testing.T) (traceHooks, *tracetest.InMemoryExporter, trace.TracerProvider) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts := TraceOpts(tp, "g")
	if len(opts) != 1 {
		t.Fatalf("tracing on: %d options, want one (the hooks)", len(opts))
	}
	return newTraceHooks(tp, "g"), exp, tp
}

// TestTraceHooks: a produced record gets a traceparent header carrying its
// publish span, child of the record's context; a fetched record with a
// malformed traceparent or tracestate starts a new trace (never an error or
// a panic). (Control records, which get no span, are covered by
// internal/tracing's TestSpanTreeOfACommand: kgo.RecordAttrs cannot be made
// here.)
func TestTraceHooks(t *testing.T) {
	h, exp, tp := tracedHooks(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	r := &kgo.Record{Topic: "t", Key: []byte("k"), Context: ctx, Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("x")}}}
	h.OnProduceRecordBuffered(r)
	h.OnProduceRecordUnbuffered(r, nil)
	parent.End()
	tpHeader, ok := Header(r, "traceparent")
	if !ok || len(tpHeader) != 55 {
		t.Fatalf("traceparent %q (%v), want a 55-byte W3C traceparent", tpHeader, ok)
	}
	if r.Headers[0].Key != "type" || len(r.Headers) != 2 {
		t.Errorf("headers %v: want type first, then only traceparent", r.Headers)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "t publish" || spans[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v: want t publish, child of parent", spans)
	}

	// Consuming it continues the trace.
	in := &kgo.Record{Topic: "t", Headers: r.Headers}
	h.OnFetchRecordBuffered(in)
	if got := trace.SpanContextFromContext(in.Context); got.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("receive span in trace %s, want %s", got.TraceID(), parent.SpanContext().TraceID())
	}
	h.OnFetchRecordUnbuffered(in, true)

	for _, bad := range [][]kgo.RecordHeader{
		{{Key: "traceparent", Value: []byte("00-zz-zz-01")}},
		{{Key: "traceparent", Value: []byte{0xff, 0, '-'}}, {Key: "tracestate", Value: []byte("=,=,=")}},
		{{Key: "traceparent", Value: []byte("00-00000000000000000000000000000000-0000000000000000-01")}},
		{{Key: "traceparent"}},
	} {
		in := &kgo.Record{Topic: "t", Headers: bad}
		h.OnFetchRecordBuffered(in)
		sc := trace.SpanContextFromContext(in.Context)
		if !sc.IsValid() || sc.TraceID() == parent.SpanContext().TraceID() {
			t.Errorf("headers %v: span context %v, want a new trace", bad, sc)
		}
		h.OnFetchRecordUnbuffered(in, true)
	}

}
