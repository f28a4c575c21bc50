package processor

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/domain"
)

// Tracing (Config.TracerProvider set; see docs/observability.md).
//
// The session's client carries kotel's hooks (kafkax.TraceOpts): every
// command record fetched gets a "<commands topic> receive" span, child of
// the trace context in its traceparent header (the gateway's produce, a
// saga command's processor, or any upstream producer that sets one), and
// every record produced a "<topic> publish" span, child of the record's
// Context, whose context kotel writes into the record's headers.
//
// A transaction covers many commands of many traces, so it cannot be the
// parent of them all. Each command gets its own span, "process <type>",
// child of its record's receive span: one command stays one trace. The
// records it writes (events, result, saga commands, DLQ copy) are produced
// with that span's context, so their publish spans and headers continue the
// command's trace, into the projectors and into the saga's next command.
// The transaction is a span of its own, "processor transaction", the root
// of a trace per batch holding the snapshots' publish spans; every command
// span links to it, and ends when the transaction does, with an event
// "transaction" naming how it ended (committed, aborted, unknown): a
// command's work is done only when its transaction commits. A command in an
// aborted batch is processed again later, in another span of the same
// trace.
//
// Off (nil tracer), none of this runs: no hook, no span, no header; each
// function below returns at its first nil check.

// tracerName is the instrumentation scope of the processor's own spans.
const tracerName = "github.com/cqrs-ledger/ledger/internal/ingest/processor"

// Attribute keys of the processor's spans.
const (
	attrCommandID   = attribute.Key("ledger.command_id")
	attrAggregateID = attribute.Key("ledger.aggregate_id")
	attrCommandType = attribute.Key("ledger.command.type")
	attrOutcome     = attribute.Key("ledger.outcome")
	attrRecords     = attribute.Key("ledger.records")
	attrTxnOutcome  = attribute.Key("ledger.transaction")
)

// cmdSpan is the span of one command of a batch.
type cmdSpan struct {
	span trace.Span
	ctx  context.Context
}

// startTxn starts the batch's transaction span.
func (b *batch) startTxn(records int) {
	if b == nil || b.p.tracer == nil {
		return
	}
	t := b.p.tracer
	b.txnCtx, b.txnSpan = t.Start(b.ctx, "processor transaction",
		trace.WithNewRoot(),
		trace.WithAttributes(attrRecords.Int(records)))
}

// startCommand starts the span of the command in r, child of the context
// kotel's receive hook left in r.Context, and makes it the context of the
// records the command writes.
func (pt *part) startCommand(r *kgo.Record) {
	t := pt.b.p.tracer
	if t == nil {
		return
	}
	parent := r.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, span := t.Start(parent, "process command",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.LinkFromContext(pt.b.txnCtx)),
		trace.WithAttributes(
			attribute.String("messaging.destination.name", r.Topic),
			attribute.Int("messaging.destination.partition.id", int(r.Partition)),
			attribute.Int64("messaging.kafka.offset", r.Offset),
		))
	pt.cur = ctx
	pt.spans = append(pt.spans, cmdSpan{span: span, ctx: ctx})
}

// describe names the current command's span after its decoded command.
func (pt *part) describe(cmd domain.Command) {
	if pt.cur == nil {
		return
	}
	span := trace.SpanFromContext(pt.cur)
	if !span.IsRecording() {
		return
	}
	env := cmd.Env()
	short := strings.TrimPrefix(cmd.Type(), "ledger.commands.")
	span.SetName("process " + short)
	span.SetAttributes(attrCommandID.String(env.CommandID), attrAggregateID.String(env.AggregateID),
		attrCommandType.String(short))
}

// endCommand records the outcome of the current command (the counter of
// pt.outcomes that moved since before).
func (pt *part) endCommand(before [numOutcomes]int) {
	if pt.cur == nil {
		return
	}
	span := trace.SpanFromContext(pt.cur)
	pt.cur = nil
	if !span.IsRecording() {
		return
	}
	for o := range pt.outcomes {
		if pt.outcomes[o] != before[o] {
			span.SetAttributes(attrOutcome.String(outcomeLabels[o]))
			return
		}
	}
}

// traceCtx is the context the records written now are produced with: the
// current command's, or the transaction's between commands; nil when off.
func (pt *part) traceCtx() context.Context {
	if pt.cur != nil {
		return pt.cur
	}
	return pt.b.txnCtx
}

// emit hands rec to the producer with the current command's context (the
// transaction's between commands), so that kotel's publish span and the
// headers continue that trace.
func (pt *part) emit(rec *kgo.Record) {
	if ctx := pt.traceCtx(); ctx != nil {
		rec.Context = ctx
	}
	pt.b.emit(rec)
}

// endSpans ends every command span and the transaction span with how the
// transaction ended: "committed", "aborted" or "unknown".
func (b *batch) endSpans(outcome string, err error) {
	if b == nil || b.txnSpan == nil {
		return
	}
	ev := trace.WithAttributes(attrTxnOutcome.String(outcome))
	for _, pt := range b.parts {
		for _, s := range pt.spans {
			s.span.AddEvent("transaction", ev)
			if outcome != "committed" {
				s.span.SetStatus(codes.Error, "transaction "+outcome)
			}
			s.span.End()
		}
	}
	b.txnSpan.SetAttributes(attrTxnOutcome.String(outcome))
	if err != nil {
		b.txnSpan.RecordError(err)
	}
	if outcome != "committed" {
		b.txnSpan.SetStatus(codes.Error, "transaction "+outcome)
	}
	b.txnSpan.End()
}

// traceHeaderBytes is what kotel adds to a record produced with ctx: the
// traceparent header and, when the trace has one, the tracestate header.
// Record limits are checked before kotel runs, so they count it.
func traceHeaderBytes(ctx context.Context) int {
	if ctx == nil {
		return 0
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return 0
	}
	n := len("traceparent") + len("00-") + 32 + 1 + 16 + 1 + 2
	if ts := sc.TraceState(); ts.Len() > 0 {
		n += len("tracestate") + len(ts.String())
	}
	return n
}
