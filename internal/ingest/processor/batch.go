package processor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// Bounds of the blocking calls of a transaction.
const (
	// flushTimeout bounds the produce of a batch's records (franz-go
	// retries them while the broker is away).
	flushTimeout = 40 * time.Second
	// endTimeout bounds GroupTransactSession.End. A healthy End takes
	// milliseconds; after a broker restart it was seen waiting for ever for
	// a heartbeat while the group manager waited for a rebalance that the
	// batch blocked (a deadlock only the bound breaks). Past it the outcome
	// is unknown: the state is restored from Kafka and, if the client is
	// unusable, the session replaced.
	endTimeout = 10 * time.Second
)

// registryRetry is the pause before a batch that needed an unavailable
// schema registry is polled again.
const registryRetry = time.Second

// resolveSchemas asks the schema registry for the ids of the batch's
// records in the Confluent wire format, before the transaction, so that
// handling them needs no I/O.
func (p *Processor) resolveSchemas(ctx context.Context, records []*kgo.Record) error {
	values := make([][]byte, 0, len(records))
	for _, r := range records {
		if codec.IsConfluent(r.Value) {
			values = append(values, r.Value)
		}
	}
	if len(values) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.cfg.Registry.Resolve(rctx, values...)
}

// errNotOwned: a polled record belongs to a partition whose state this
// processor does not hold (lost and not yet reassigned). The batch is
// aborted and the session rewinds; it is not fatal.
var errNotOwned = errors.New("partition is not owned or not restored")

// batch is one transaction's worth of work: the decisions are staged here
// and reach the partitions' state only if the transaction commits. Command
// partitions are independent (an aggregate lives in one), so the batch is
// split into one part per partition and the parts are handled in parallel;
// within a part, records are handled in offset order.
type batch struct {
	p   *Processor
	ctx context.Context // never cancelled: produce and End must not be cut short
	now time.Time

	parts []*part // in order of first appearance in the polled records
	// emit hands an output record to the producer; it is safe for
	// concurrent use. processBatch produces into the open transaction.
	emit func(*kgo.Record)

	mu         sync.Mutex
	produceErr error

	// Tracing (trace.go); nil when off.
	txnCtx  context.Context
	txnSpan trace.Span
}

// part is the share of a batch that comes from one owned command partition.
type part struct {
	b       *batch
	st      *partition
	records []*kgo.Record

	accounts map[string]domain.Account // staged account states
	dedupe   index                     // staged dedupe entries
	touched  []string                  // aggregates changed, in first-touch order
	outcomes [numOutcomes]int          // by outcome

	mem arena // the memory of the records written
	// Scratch reused from one command to the next.
	out  []*kgo.Record
	refs []codec.EventRef
	res  codec.CommandResult

	// Tracing (trace.go): the current command's span context (nil when
	// off or between commands) and the spans of the part's commands.
	cur   context.Context
	spans []cmdSpan
}

// newBatch splits records by partition. A record of a partition this
// processor does not own (lost and not yet reassigned) fails the batch with
// errNotOwned: it is aborted and the session rewinds.
func (p *Processor) newBatch(ctx context.Context, now time.Time, records []*kgo.Record) (*batch, error) {
	b := &batch{p: p, ctx: context.WithoutCancel(ctx), now: now}
	p.mu.Lock()
	defer p.mu.Unlock()
	byID := map[int32]*part{}
	for _, r := range records {
		pt := byID[r.Partition]
		if pt == nil {
			st := p.parts[r.Partition]
			if st == nil {
				return nil, fmt.Errorf("record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, errNotOwned)
			}
			pt = &part{b: b, st: st}
			byID[r.Partition] = pt
			b.parts = append(b.parts, pt)
		}
		pt.records = append(pt.records, r)
	}
	for _, pt := range b.parts {
		pt.accounts = make(map[string]domain.Account, len(pt.records))
		pt.dedupe = newIndex(len(pt.records))
	}
	return b, nil
}

// handleAll handles every part, in parallel when there are several, and
// stages their snapshots. An error is a failure of the processor itself.
func (b *batch) handleAll() error {
	workers := min(len(b.parts), runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for _, pt := range b.parts {
			if err := pt.handleAll(); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(b.parts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(b.parts) {
					return
				}
				errs[i] = b.parts[i].handleAll()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handleAll handles the part's records in order, then writes the latest
// state of every aggregate they changed.
func (pt *part) handleAll() error {
	for _, r := range pt.records {
		pt.startCommand(r)
		before := pt.outcomes
		err := pt.handle(r)
		pt.endCommand(before)
		if err != nil {
			return err
		}
	}
	return pt.snapshots()
}

// onProduced is the promise of every produced record.
func (b *batch) onProduced(_ *kgo.Record, err error) {
	if err != nil {
		b.mu.Lock()
		b.produceErr = errors.Join(b.produceErr, err)
		b.mu.Unlock()
	}
}

// processBatch runs one transaction over records. A nil error means the
// batch committed, aborted cleanly (rebalance) or ended with an unknown
// outcome that a resync repaired; an error is fatal for Run.
func (p *Processor) processBatch(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record) error {
	start := time.Now()
	b, internalErr := p.newBatch(ctx, start, records)
	if internalErr == nil && p.cfg.Registry != nil {
		internalErr = p.resolveSchemas(ctx, records)
	}
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("processor: begin transaction: %w", err)
	}
	b.startTxn(len(records))
	txnOutcome := "unknown" // how the spans end (trace.go)
	if internalErr == nil {
		promise := b.onProduced
		b.emit = func(rec *kgo.Record) { sess.Produce(b.ctx, rec, promise) }
		internalErr = b.handleAll()
		fctx, cancel := context.WithTimeout(b.ctx, flushTimeout)
		if err := sess.Client().Flush(fctx); err != nil && internalErr == nil {
			internalErr = fmt.Errorf("flush: %w", err)
		}
		cancel()
	}
	var produceErr error
	if b != nil {
		b.mu.Lock()
		produceErr = b.produceErr
		b.mu.Unlock()
	}
	try := kgo.TryCommit
	if internalErr != nil || produceErr != nil {
		try = kgo.TryAbort
	}
	// End is never cut short by a shutdown, but it is bounded: a broker
	// that went away during the commit left it waiting for ever (a
	// heartbeat that never came while the group manager waited for a
	// rebalance this batch blocked). Past the bound the outcome is unknown
	// and handled as such.
	endCtx, cancelEnd := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	committed, endErr := sess.End(endCtx, try)
	cancelEnd()
	p.m.batch.Observe(time.Since(start).Seconds())
	defer func() { b.endSpans(txnOutcome, errors.Join(internalErr, produceErr, endErr)) }()

	switch {
	case errors.Is(endErr, context.DeadlineExceeded):
		// End ran past its bound: the transaction may still be open on the
		// broker, and a restore in this session would wait for it (read
		// committed stops at it) until the transaction timeout. A new
		// session's producer fences it at once (InitProducerID aborts it),
		// then restores the state from Kafka.
		p.m.transactions.WithLabelValues("failed").Inc()
		p.log.Error("ending the transaction timed out; outcome unknown, replacing the session",
			"records", len(records), "err", endErr)
		return fmt.Errorf("processor: end transaction: %w", endErr)
	case endErr != nil:
		// The outcome is unknown: the broker may have committed. The
		// session rewound to what it believes is committed; make the
		// state match what Kafka actually holds before going on.
		p.m.transactions.WithLabelValues("failed").Inc()
		p.log.Error("ending the transaction failed; outcome unknown, restoring state from Kafka",
			"records", len(records), "err", endErr)
		if err := p.resync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopping anyway; resync dropped the stale state
			}
			return err
		}
	case committed:
		txnOutcome = "committed"
		b.apply()
		p.m.transactions.WithLabelValues("committed").Inc()
		p.countOutcomes(b)
	case try == kgo.TryCommit:
		// A commit that End reports as not done may still have been done:
		// franz-go retries an EndTxn commit answered UNKNOWN_SERVER_ERROR
		// as an abort that sends nothing and returns (false, nil), while
		// the broker may have committed. Ask the group coordinator which
		// offsets it holds; never decide the batch again on a guess.
		switch outcome := p.commitOutcome(ctx, b); outcome {
		case txnCommitted:
			txnOutcome = "committed"
			b.apply()
			p.m.transactions.WithLabelValues("committed").Inc()
			p.countOutcomes(b)
			p.log.Warn("End reported an abort, but the broker had committed the transaction; its state is applied and the rewound commands are answered as repeats",
				"records", len(records))
		case txnAborted:
			txnOutcome = "aborted"
			p.m.transactions.WithLabelValues("aborted").Inc()
			p.log.Info("transaction aborted; rewound to the committed offsets", "records", len(records))
		default:
			p.m.transactions.WithLabelValues("failed").Inc()
			p.log.Error("the outcome of an aborted commit is unknown; restoring state from Kafka", "records", len(records))
			if err := p.resync(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	default:
		txnOutcome = "aborted"
		p.m.transactions.WithLabelValues("aborted").Inc()
		p.log.Info("transaction aborted; rewound to the committed offsets",
			"records", len(records), "produce_err", produceErr, "err", internalErr)
	}
	switch {
	case errors.Is(internalErr, errNotOwned):
		p.log.Warn("batch aborted", "err", internalErr)
		return nil
	case errors.Is(internalErr, codec.ErrRegistryUnavailable):
		// The batch is polled again from the committed offsets; Ready
		// reports the stall once it lasts.
		p.log.Warn("batch aborted; retrying in 1 s", "err", internalErr)
		select {
		case <-ctx.Done():
		case <-time.After(registryRetry):
		}
		return nil
	case internalErr != nil:
		return fmt.Errorf("processor: %w", internalErr)
	case produceErr != nil:
		// franz-go retries what can be retried, so this is a record the
		// broker refuses (too large, not authorized, ...): retrying the
		// batch would fail the same way.
		return fmt.Errorf("processor: produce: %w", produceErr)
	}
	return nil
}

// countOutcomes counts the commands of a committed batch by outcome.
func (p *Processor) countOutcomes(b *batch) {
	for _, pt := range b.parts {
		for o, n := range pt.outcomes {
			if n > 0 {
				p.m.commands.WithLabelValues(outcomeLabels[o]).Add(float64(n))
			}
		}
	}
}

// What the group coordinator says became of a transaction End reported as
// not committed.
const (
	txnUnknown = iota
	txnCommitted
	txnAborted
)

// commitBound bounds how long commitOutcome waits for a pending
// transaction to resolve: longer than the transaction timeout (franz-go's
// default is 40 s), after which the broker aborts it.
const commitBound = 70 * time.Second

// commitOutcome asks the group coordinator for the committed offsets of
// the batch's partitions (require_stable: a pending transaction's offsets
// are waited for, never read half-way). All at the batch's end: the
// transaction committed. All before it: it aborted. Anything else (another
// member moved them, or no answer): unknown.
func (p *Processor) commitOutcome(ctx context.Context, b *batch) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitBound)
	defer cancel()
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		offs, err := p.adm.FetchOffsetsForTopics(ctx, p.cfg.Group, p.names.Commands)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			return b.outcomeFrom(offs, p.names.Commands)
		}
		p.log.Warn("reading the committed offsets after an aborted commit; retrying", "err", err)
		select {
		case <-ctx.Done():
			return txnUnknown
		case <-time.After(backoff):
		}
	}
}

// outcomeFrom compares the committed offsets with the batch's.
func (b *batch) outcomeFrom(offs kadm.OffsetResponses, topic string) int {
	committed, aborted := 0, 0
	for _, pt := range b.parts {
		end := pt.records[len(pt.records)-1].Offset + 1
		o, ok := offs.Lookup(topic, pt.st.id)
		switch {
		case ok && o.At == end:
			committed++
		case !ok || o.At < pt.records[0].Offset+1:
			aborted++
		}
	}
	switch len(b.parts) {
	case committed:
		return txnCommitted
	case aborted:
		return txnAborted
	}
	return txnUnknown
}

// apply moves the staged changes into the partitions' state.
func (b *batch) apply() {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	for _, pt := range b.parts {
		if b.p.parts[pt.st.id] != pt.st {
			continue // revoked or lost meanwhile: the next owner restores it
		}
		for k, a := range pt.accounts {
			pt.st.accounts[k] = a
		}
		pt.st.dedupe.merge(pt.dedupe)
	}
}

// handle processes one command record. Problems with the record go to the
// DLQ; the error return is for failures of the processor itself.
func (pt *part) handle(r *kgo.Record) error {
	p := pt.b.p
	if len(r.Key) == 0 {
		return pt.dlq(r, "", "empty key", nil)
	}
	if c, ok := kafkax.Header(r, HeaderControl); ok {
		return pt.control(r, string(c))
	}
	value := r.Value
	if id, ok := codec.ConfluentID(value); ok {
		// The Confluent wire format, read through the schema registry.
		if p.cfg.Registry == nil {
			return pt.dlq(r, "", fmt.Sprintf("Confluent wire format (schema id %d): this processor reads it only with a schema registry configured (SCHEMA_REGISTRY_URL)", id), nil)
		}
		var err error
		if value, err = p.cfg.Registry.SingleObject(value); err != nil {
			return pt.dlq(r, "", fmt.Sprintf("decode: %v", err), nil)
		}
	}
	v, err := p.cat.Decode(value)
	if err != nil {
		return pt.dlq(r, "", fmt.Sprintf("decode: %v", err), nil)
	}
	typ, _ := p.cat.Name(value)
	cmd, ok := toCommand(v)
	if !ok {
		return pt.dlq(r, typ, typ+" is not a command", nil)
	}
	pt.describe(cmd)
	env := cmd.Env()
	if env.CommandID == "" {
		return pt.dlq(r, typ, "command_id is empty", nil)
	}
	in := &input{r: r, cmd: cmd, request: fingerprint(cmd)}
	in.saga = domain.IsInternal(cmd) && header(r, HeaderOrigin) == OriginProcessor && signedBy(p.cfg.SagaKey, r)
	in.origin = originUpstream
	if in.saga {
		in.origin = originProcessor
	}
	// A command outside the input bounds (only a direct Avro producer can
	// send one: the gateway refuses it) is dead-lettered with a rejected
	// result; nothing of it enters the state.
	if b := domain.CheckBounds(cmd); b != nil {
		return pt.dlq(r, typ, "out of bounds: "+domain.Clip(b.Error()), in)
	}
	// An id seen before is answered before anything else, so that a
	// repeat of a dead-lettered command gets its first outcome too.
	if first, ok := pt.seen(env.CommandID, in.saga); ok {
		return pt.again(in, typ, first)
	}
	switch want := kafkax.KeyPartition(r.Key, p.nparts); {
	case want != r.Partition:
		return pt.dlq(r, typ, fmt.Sprintf("misrouted: key hashes to partition %d with Kafka's murmur2 partitioner", want), in)
	case env.AggregateID != string(r.Key):
		return pt.dlq(r, typ, fmt.Sprintf("key %q is not the aggregate_id %q", domain.Clip(string(r.Key)), domain.Clip(env.AggregateID)), in)
	}

	state := pt.account(env.AggregateID)
	var d domain.Decision
	switch {
	case domain.IsInternal(cmd) && !in.saga:
		d.Rejection = &domain.Rejection{Reason: domain.ReasonInvalidCommand,
			Message: typ + " is internal: only the processor may issue it"}
	case !in.saga && domain.ReservedCommandID(env.CommandID):
		d.Rejection = &domain.Rejection{Reason: domain.ReasonInvalidCommand, Message: domain.ReservedCommandIDMessage(env.CommandID)}
	default:
		d = domain.Decide(state, cmd)
	}
	next := domain.Fold(state, d.Events)

	out, res, err := pt.outputs(in, d, next)
	if err != nil {
		// Our own records did not encode (limits): the command cannot be
		// processed, and retrying will not help.
		return pt.dlq(r, typ, fmt.Sprintf("encode outputs: %v", err), in)
	}
	if len(d.Events) > 0 {
		if _, ok := pt.accounts[env.AggregateID]; !ok {
			pt.touched = append(pt.touched, env.AggregateID)
		}
		pt.accounts[env.AggregateID] = next
	}
	pt.dedupe.put(env.CommandID, in.saga, summarize(res, in.request))
	if d.Rejection != nil {
		pt.outcomes[outcomeRejected]++
	} else {
		pt.outcomes[outcomeAccepted]++
	}
	for _, rec := range out {
		pt.emit(rec)
	}
	return nil
}

// input is a decoded command record on its way through handle.
type input struct {
	r       *kgo.Record
	cmd     domain.Command
	request [16]byte // fingerprint
	saga    bool     // a saga command the processor issued
	origin  []byte   // HeaderOrigin value of its result
}

// again answers a command id seen before, writing nothing but a result:
// the same request gets its first outcome, verbatim (marked as a repeat);
// a different request under the same id is refused with
// idempotency_key_reused, and the first outcome stands. Either record
// carries the first outcome in HeaderDedupe, so that compaction keeping
// only it loses nothing.
func (pt *part) again(in *input, typ string, first firstOutcome) error {
	env := in.cmd.Env()
	res, mark := first.result(env.CommandID, env.AggregateID, env.CorrelationID), HeaderDuplicate
	if first.sameRequest(in.request) {
		pt.outcomes[outcomeDuplicate]++
	} else {
		res = pt.rejection(in, domain.ReasonIdempotencyKeyReused, fmt.Sprintf(
			"command_id %q was already used for a different request (another account, type or body); "+
				"that request's outcome stands and this one is not applied: send a new command_id", domain.Clip(env.CommandID)))
		mark = HeaderReused
		pt.outcomes[outcomeReused]++
	}
	rec, err := pt.result(in, res, first, mark)
	if err != nil {
		return pt.dlq(in.r, typ, fmt.Sprintf("encode the answer to a repeated command id: %v", err), nil)
	}
	pt.emit(rec)
	return nil
}

// rejection is the result that rejects in, a command the processor does
// not decide (a reused id, a dead letter), at the aggregate's current
// version.
func (pt *part) rejection(in *input, reason domain.Reason, message string) *codec.CommandResult {
	env := in.cmd.Env()
	return &codec.CommandResult{
		CommandID:     env.CommandID,
		AggregateID:   env.AggregateID,
		CommandType:   in.cmd.Type(),
		CorrelationID: env.CorrelationID,
		Status:        codec.StatusRejected,
		Reason:        string(reason),
		Message:       message,
		Version:       pt.account(env.AggregateID).Version,
		Events:        []codec.EventRef{},
		ProcessedAt:   pt.b.now,
	}
}

// seen returns the first outcome of the command id if it was processed
// within the dedupe window, in this batch or a committed one.
func (pt *part) seen(id string, saga bool) (firstOutcome, bool) {
	if o, ok := pt.dedupe.get(id, saga); ok {
		return o, true
	}
	o, ok := pt.st.dedupe.get(id, saga)
	return o, ok && o.at >= pt.b.now.Add(-pt.b.p.cfg.DedupeWindow).UnixMilli()
}

// account returns the aggregate's state as of this batch.
func (pt *part) account(id string) domain.Account {
	if a, ok := pt.accounts[id]; ok {
		return a
	}
	return pt.st.accounts[id]
}

// outputs builds the records a decision writes: its events, its result and
// its saga commands (snapshots are written once per batch). The slice and
// the result are scratch, valid until the next call.
func (pt *part) outputs(in *input, d domain.Decision, next domain.Account) ([]*kgo.Record, *codec.CommandResult, error) {
	p := pt.b.p
	r, cmd := in.r, in.cmd
	env := cmd.Env()
	out := pt.out[:0]
	refs := pt.refs[:0]
	for _, e := range d.Events {
		v, err := fromEvent(e)
		if err != nil {
			return nil, nil, err
		}
		m := e.Meta()
		key := pt.mem.done(strconv.AppendInt(append(append(pt.mem.buf(), m.AggregateID...), '/'), m.Version, 10))
		rec, err := pt.record(p.names.Events, r.Partition, key, v)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rec)
		refs = append(refs, codec.EventRef{EventID: m.EventID, Type: e.Type(), Version: m.Version})
	}
	pt.refs = refs

	res := &pt.res
	*res = codec.CommandResult{
		CommandID:     env.CommandID,
		AggregateID:   env.AggregateID,
		CommandType:   cmd.Type(),
		CorrelationID: env.CorrelationID,
		Status:        codec.StatusAccepted,
		Version:       next.Version,
		Events:        refs,
		ProcessedAt:   pt.b.now,
	}
	if d.Rejection != nil {
		res.Status = codec.StatusRejected
		res.Reason = string(d.Rejection.Reason)
		res.Message = d.Rejection.Message
	}
	rec, err := pt.result(in, res, summarize(res, in.request), "")
	if err != nil {
		return nil, nil, err
	}
	out = append(out, rec)

	for _, c := range d.Commands {
		v, err := fromSagaCommand(c)
		if err != nil {
			return nil, nil, err
		}
		target := pt.mem.copyBytes(c.Env().AggregateID)
		rec, err := pt.record(p.names.Commands, kafkax.KeyPartition(target, p.nparts), target, v,
			kgo.RecordHeader{Key: HeaderOrigin, Value: originProcessor})
		if err != nil {
			return nil, nil, err
		}
		if len(p.cfg.SagaKey) > 0 {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderOriginMAC, Value: sagaMAC(p.cfg.SagaKey, rec.Key, rec.Value)})
		}
		out = append(out, rec)
	}
	pt.out = out
	return out, res, nil
}

// snapshots writes the latest state of every aggregate the part changed.
func (pt *part) snapshots() error {
	for _, id := range pt.touched {
		rec, err := pt.record(pt.b.p.names.Snapshots, pt.st.id, pt.mem.copyBytes(id), toSnapshot(pt.accounts[id]))
		if err != nil {
			return fmt.Errorf("snapshot of %q: %w", id, err)
		}
		pt.emit(rec)
	}
	return nil
}

// Header values shared by the records the processor writes; franz-go only
// reads them.
var (
	originUpstream  = []byte(OriginUpstream)
	originProcessor = []byte(OriginProcessor)
	markTrue        = []byte("true")
)

// result encodes res, the answer to in, into a command-results record keyed
// by the command id, carrying first (the id's first outcome) in
// HeaderDedupe, the command record's position in HeaderCommandOffset and,
// when mark is set, the header mark=true.
func (pt *part) result(in *input, res *codec.CommandResult, first firstOutcome, mark string) (*kgo.Record, error) {
	m := &pt.mem
	hs := [4]kgo.RecordHeader{
		{Key: HeaderOrigin, Value: in.origin},
		{Key: HeaderDedupe, Value: m.done(first.appendHeader(m.buf()))},
		{Key: HeaderCommandOffset, Value: m.done(appendOffset(m.buf(), in.r))},
		{Key: mark, Value: markTrue},
	}
	n := 3
	if mark != "" {
		n = 4
	}
	return pt.record(pt.b.p.names.Results, in.r.Partition, m.copyBytes(res.CommandID), res, hs[:n]...)
}

// appendOffset appends "<partition>/<offset>" of r.
func appendOffset(b []byte, r *kgo.Record) []byte {
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, '/')
	return strconv.AppendInt(b, r.Offset, 10)
}

// record encodes v into a record for topic/partition with a type header
// followed by hs.
func (pt *part) record(topic string, partition int32, key []byte, v any, hs ...kgo.RecordHeader) (*kgo.Record, error) {
	val, typeHeader, err := pt.b.p.cat.AppendEncodeNamed(pt.mem.buf(), v)
	if err != nil {
		return nil, err
	}
	rec := pt.mem.record()
	rec.Topic, rec.Partition, rec.Key, rec.Value = topic, partition, key, pt.mem.done(val)
	rec.Headers = append(pt.mem.headers(1+len(hs)), kgo.RecordHeader{Key: HeaderType, Value: typeHeader})
	rec.Headers = append(rec.Headers, hs...)
	if size, limit := recordSize(rec)+traceHeaderBytes(pt.traceCtx()), pt.b.p.recordLimit(topic); size > limit {
		return nil, fmt.Errorf("%s record of %d bytes is over the %d-byte record limit of %s", typeHeader, size, limit, topic)
	}
	return rec, nil
}

// recordSize is an upper bound of what r takes in a produce request.
func recordSize(r *kgo.Record) int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// control handles a control record (HeaderControl). ControlSnapshot marks
// the key's aggregate changed, so the batch writes its snapshot again; an
// aggregate the partition does not hold is nothing to do.
func (pt *part) control(r *kgo.Record, what string) error {
	p := pt.b.p
	if what != ControlSnapshot {
		return pt.dlq(r, "", fmt.Sprintf("unknown control %q: want %q", domain.Clip(what), ControlSnapshot), nil)
	}
	if want := kafkax.KeyPartition(r.Key, p.nparts); want != r.Partition {
		return pt.dlq(r, "", fmt.Sprintf("misrouted: key hashes to partition %d with Kafka's murmur2 partitioner", want), nil)
	}
	id := string(r.Key)
	a := pt.account(id)
	if a.Version == 0 {
		p.log.Info("snapshot asked for an aggregate this partition does not hold", "aggregate", domain.Clip(id))
		return nil
	}
	if _, ok := pt.accounts[id]; !ok {
		pt.touched = append(pt.touched, id)
	}
	pt.accounts[id] = a
	return nil
}

// dlq copies r to the DLQ topic with the reason in its headers. When the
// record is a command with an id (in is set), the command also gets its
// final outcome: a rejected result with the reason dead_lettered that
// points at the DLQ record, which a repeat of the id is answered with.
func (pt *part) dlq(r *kgo.Record, typ, reason string, in *input) error {
	p := pt.b.p
	hs := []kgo.RecordHeader{
		{Key: HeaderError, Value: []byte(reason)},
		{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		{Key: HeaderSourcePartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	}
	if typ != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderType, Value: []byte(typ)})
	}
	for _, k := range []string{HeaderAttempt, HeaderRetryOf} {
		if v, ok := kafkax.Header(r, k); ok {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: v})
		}
	}
	rec := &kgo.Record{
		Topic:     p.names.DLQ,
		Partition: r.Partition % p.dlqParts,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   hs,
	}
	if size, limit := recordSize(rec)+traceHeaderBytes(pt.traceCtx()), p.recordLimit(rec.Topic); size > limit {
		// A command at the very limit (the reason headers do not fit
		// beside it), or a DLQ topic with a lower limit than the
		// commands topic. The DLQ record points at it.
		rec.Value = nil
		reason += fmt.Sprintf(" (the %d-byte value is left out of this record, which would be over the %d-byte record limit of %s; read it at the source offset)", len(r.Value), limit, rec.Topic)
		hs[0].Value = []byte(reason)
	}
	pt.emit(rec)
	pt.outcomes[outcomeDLQ]++
	p.log.Warn("record sent to the DLQ", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
	if in == nil {
		return nil
	}
	res := pt.rejection(in, domain.ReasonDeadLettered, fmt.Sprintf(
		"%s; the command was copied to %s with source-topic=%s source-partition=%d source-offset=%d",
		domain.Clip(reason), p.names.DLQ, r.Topic, r.Partition, r.Offset))
	first := summarize(res, in.request)
	out, err := pt.result(in, res, first, "")
	if err != nil {
		// Only ids at the record limit get here: the DLQ record is the
		// outcome.
		p.log.Warn("no result for a dead-lettered command", "offset", r.Offset, "err", err)
		return nil
	}
	if domain.CheckCommandID(in.cmd) == nil {
		// An id out of bounds is not remembered (its repeat is
		// dead-lettered again, the same way): the index holds bounded ids.
		pt.dedupe.put(res.CommandID, in.saga, first)
	}
	pt.emit(out)
	return nil
}
