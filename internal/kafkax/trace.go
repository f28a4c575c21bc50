package kafkax

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceOpts returns the options that trace a client's records with
// franz-go's kotel plugin: a "<topic> publish" span per produced record,
// child of the record's Context, whose W3C trace context kotel writes into
// the record's traceparent (and tracestate) headers; and a "<topic> receive"
// span per fetched record, child of the context in its headers, left in the
// record's Context for the consumer's own spans. A malformed or missing
// traceparent starts a new trace; it is never an error.
//
// With tp nil (tracing off) it returns no option: no hook is installed and
// no header added. Give it only to clients whose records are one command's
// work (the gateway's producer, the processor's session, the projectors),
// not to clients that read whole topics (restores, followers, rebuilds),
// which would make a span per record read.
func TraceOpts(tp trace.TracerProvider, group string) []kgo.Opt {
	if tp == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(newTraceHooks(tp, group))}
}

func newTraceHooks(tp trace.TracerProvider, group string) traceHooks {
	topts := []kotel.TracerOpt{
		kotel.TracerProvider(tp),
		kotel.TracerPropagator(propagation.TraceContext{}),
	}
	if group != "" {
		topts = append(topts, kotel.ConsumerGroup(group))
	}
	return traceHooks{kotel.NewTracer(topts...)}
}

// traceHooks are kotel's tracing hooks minus control records (transaction
// markers, which a consumer with KeepControlRecords sees): they carry no
// trace context, so each would start a trace of its own.
type traceHooks struct{ t *kotel.Tracer }

var (
	_ kgo.HookProduceRecordBuffered   = traceHooks{}
	_ kgo.HookProduceRecordUnbuffered = traceHooks{}
	_ kgo.HookFetchRecordBuffered     = traceHooks{}
	_ kgo.HookFetchRecordUnbuffered   = traceHooks{}
)

func (h traceHooks) OnProduceRecordBuffered(r *kgo.Record) { h.t.OnProduceRecordBuffered(r) }

func (h traceHooks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	h.t.OnProduceRecordUnbuffered(r, err)
}

func (h traceHooks) OnFetchRecordBuffered(r *kgo.Record) {
	if !r.Attrs.IsControl() {
		h.t.OnFetchRecordBuffered(r)
	}
}

func (h traceHooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !r.Attrs.IsControl() {
		h.t.OnFetchRecordUnbuffered(r, polled)
	}
}
