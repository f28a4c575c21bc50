package projector

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (Config.TracerProvider set; see docs/observability.md).
//
// The consumer carries kotel's hooks (kafkax.TraceOpts): every record
// fetched gets a "<topic> receive" span, child of the trace context in its
// traceparent header, which the processor wrote from the span of the
// command that made the event. A batch holds events of many commands, so it
// is not one span: each event (and each command outcome, for a sink that
// takes them) gets its own span, "project <sink>" (or "project <sink>
// outcome"), child of its record's receive span, from the start of the
// batch's apply to its end, with the batch's size and attempt; a failed
// apply ends them with an error and the retry makes new ones. So one
// command's trace reaches each of its events in each sink.
//
// Off (nil tracer) none of this runs.

// tracerName is the instrumentation scope of the projector's spans.
const tracerName = "github.com/cqrs-ledger/ledger/internal/projector"

// startSpans starts the spans of the pending batch's events and outcomes;
// nil when tracing is off.
func (p *Projector) startSpans() []trace.Span {
	if p.tracer == nil {
		return nil
	}
	sink := p.cfg.Sink.Name()
	batch := attribute.Int("ledger.batch.records", len(p.pending))
	attempt := attribute.Int("ledger.batch.attempt", p.failures+1)
	spans := make([]trace.Span, 0, len(p.pending))
	for _, it := range p.pending {
		var name string
		var attrs []attribute.KeyValue
		switch {
		case it.event != nil:
			name = "project " + sink
			attrs = []attribute.KeyValue{
				attribute.String("ledger.event_id", it.event.EventID),
				attribute.String("ledger.aggregate_id", it.event.AggregateID),
				attribute.Int64("ledger.version", it.event.Version),
				attribute.String("ledger.event.type", strings.TrimPrefix(it.event.Type, "ledger.events.")),
			}
		case it.outcome != nil && p.cfg.Results != nil:
			name = "project " + sink + " outcome"
			attrs = []attribute.KeyValue{
				attribute.String("ledger.command_id", it.outcome.CommandID),
				attribute.String("ledger.aggregate_id", it.outcome.AggregateID),
			}
		default:
			continue
		}
		parent := it.rec.Context
		if parent == nil {
			parent = context.Background()
		}
		_, span := p.tracer.Start(parent, name,
			trace.WithAttributes(append(attrs, attribute.String("ledger.sink", sink), batch, attempt)...))
		spans = append(spans, span)
	}
	return spans
}

// endSpans ends spans, with err's status when the apply failed.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, "apply failed")
		}
		s.End()
	}
}
