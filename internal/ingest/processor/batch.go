package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// errNotOwned: a polled record belongs to a partition whose state this
// processor does not hold (lost and not yet reassigned). The batch is
// aborted and the session rewinds; it is not fatal.
var errNotOwned = errors.New("partition is not owned or not restored")

// batch is one transaction's worth of work: the decisions are staged here
// and reach the partitions' state only if the transaction commits.
type batch struct {
	p    *Processor
	sess *kgo.GroupTransactSession
	ctx  context.Context // never cancelled: produce and End must not be cut short
	now  time.Time

	parts    map[int32]*partition                // owned partitions at the start
	accounts map[int32]map[string]domain.Account // staged account states
	dedupe   map[int32]map[uint64]firstOutcome   // staged dedupe entries
	touched  []touchedAggregate                  // in first-touch order
	outcomes map[string]int                      // by outcome label

	mu         sync.Mutex
	produceErr error
}

type touchedAggregate struct {
	partition int32
	id        string
}

// processBatch runs one transaction over records. A nil error means the
// batch committed, aborted cleanly (rebalance) or ended with an unknown
// outcome that a resync repaired; an error is fatal for Run.
func (p *Processor) processBatch(ctx context.Context, sess *kgo.GroupTransactSession, records []*kgo.Record) error {
	start := time.Now()
	b := &batch{
		p:        p,
		sess:     sess,
		ctx:      context.WithoutCancel(ctx),
		now:      start,
		parts:    map[int32]*partition{},
		accounts: map[int32]map[string]domain.Account{},
		dedupe:   map[int32]map[uint64]firstOutcome{},
		outcomes: map[string]int{},
	}
	p.mu.Lock()
	for id, st := range p.parts {
		b.parts[id] = st
	}
	p.mu.Unlock()

	if err := sess.Begin(); err != nil {
		return fmt.Errorf("processor: begin transaction: %w", err)
	}
	var internalErr error
	for _, r := range records {
		if internalErr = b.handle(r); internalErr != nil {
			break
		}
	}
	if internalErr == nil {
		internalErr = b.snapshots()
	}
	if err := sess.Client().Flush(b.ctx); err != nil && internalErr == nil {
		internalErr = fmt.Errorf("flush: %w", err)
	}
	b.mu.Lock()
	produceErr := b.produceErr
	b.mu.Unlock()

	try := kgo.TryCommit
	if internalErr != nil || produceErr != nil {
		try = kgo.TryAbort
	}
	committed, endErr := sess.End(b.ctx, try)
	p.m.batch.Observe(time.Since(start).Seconds())

	switch {
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
		b.apply()
		p.m.transactions.WithLabelValues("committed").Inc()
		for o, n := range b.outcomes {
			p.m.commands.WithLabelValues(o).Add(float64(n))
		}
	default:
		p.m.transactions.WithLabelValues("aborted").Inc()
		p.log.Info("transaction aborted; rewound to the committed offsets",
			"records", len(records), "produce_err", produceErr, "err", internalErr)
	}
	switch {
	case errors.Is(internalErr, errNotOwned):
		p.log.Warn("batch aborted", "err", internalErr)
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

// apply moves the staged changes into the partitions' state.
func (b *batch) apply() {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	for id, accs := range b.accounts {
		st := b.parts[id]
		if b.p.parts[id] != st {
			continue // revoked or lost meanwhile: the next owner restores it
		}
		for k, a := range accs {
			st.accounts[k] = a
		}
	}
	for id, d := range b.dedupe {
		st := b.parts[id]
		if b.p.parts[id] != st {
			continue
		}
		for h, o := range d {
			st.dedupe[h] = o
		}
	}
}

// handle processes one command record. Problems with the record go to the
// DLQ; the error return is for failures of the processor itself.
func (b *batch) handle(r *kgo.Record) error {
	p := b.p
	st := b.parts[r.Partition]
	if st == nil {
		return fmt.Errorf("record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, errNotOwned)
	}
	if len(r.Key) == 0 {
		return b.dlq(r, "", "empty key")
	}
	if want := kafkax.KeyPartition(r.Key, p.nparts); want != r.Partition {
		return b.dlq(r, "", fmt.Sprintf("misrouted: key hashes to partition %d with Kafka's murmur2 partitioner", want))
	}
	v, err := p.cat.Decode(r.Value)
	if err != nil {
		return b.dlq(r, "", fmt.Sprintf("decode: %v", err))
	}
	typ, _ := p.cat.Name(r.Value)
	cmd, ok := toCommand(v)
	if !ok {
		return b.dlq(r, typ, typ+" is not a command")
	}
	env := cmd.Env()
	switch {
	case env.AggregateID != string(r.Key):
		return b.dlq(r, typ, fmt.Sprintf("key %q is not the aggregate_id %q", clip(string(r.Key)), clip(env.AggregateID)))
	case env.CommandID == "":
		return b.dlq(r, typ, "command_id is empty")
	}

	internal := domain.IsInternal(cmd)
	fromProcessor := header(r, HeaderOrigin) == OriginProcessor
	saga := internal && fromProcessor
	h := p.dedupeKey(env.CommandID, saga)
	if first, ok := b.seen(st, h); ok {
		// A repeat writes nothing new; it is answered with its first
		// outcome (marked as a repeat), so that request-reply works
		// however long ago the first one was.
		b.outcomes[outcomeDuplicate]++
		rec, err := b.record(p.names.Results, r.Partition, env.CommandID, first.result(env.CommandID, env.AggregateID, env.CorrelationID))
		if err != nil {
			return b.dlq(r, typ, fmt.Sprintf("encode repeated result: %v", err))
		}
		origin := OriginUpstream
		if saga {
			origin = OriginProcessor
		}
		rec.Headers = append(rec.Headers,
			kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin)},
			kgo.RecordHeader{Key: HeaderDuplicate, Value: []byte("true")})
		b.produce(rec)
		return nil
	}

	state := b.account(st, env.AggregateID)
	var d domain.Decision
	switch {
	case internal && !fromProcessor:
		d.Rejection = &domain.Rejection{Reason: domain.ReasonInvalidCommand,
			Message: typ + " is internal: only the processor may issue it"}
	case !internal && domain.ReservedCommandID(env.CommandID):
		d.Rejection = &domain.Rejection{Reason: domain.ReasonInvalidCommand,
			Message: fmt.Sprintf("command_id %q: the suffixes %s and %s are reserved for saga commands",
				clip(env.CommandID), domain.CreditSuffix, domain.RefundSuffix)}
	default:
		d = domain.Decide(state, cmd)
	}
	next := domain.Fold(state, d.Events)

	out, res, err := b.outputs(r, cmd, d, next, saga)
	if err != nil {
		// Our own records did not encode (limits): the command cannot be
		// processed, and retrying will not help.
		return b.dlq(r, typ, fmt.Sprintf("encode outputs: %v", err))
	}
	if len(d.Events) > 0 {
		accs := b.accounts[st.id]
		if accs == nil {
			accs = map[string]domain.Account{}
			b.accounts[st.id] = accs
		}
		if _, ok := accs[env.AggregateID]; !ok {
			b.touched = append(b.touched, touchedAggregate{st.id, env.AggregateID})
		}
		accs[env.AggregateID] = next
	}
	dd := b.dedupe[st.id]
	if dd == nil {
		dd = map[uint64]firstOutcome{}
		b.dedupe[st.id] = dd
	}
	dd[h] = summarize(res)
	if d.Rejection != nil {
		b.outcomes[outcomeRejected]++
	} else {
		b.outcomes[outcomeAccepted]++
	}
	for _, rec := range out {
		b.produce(rec)
	}
	return nil
}

// seen returns the first outcome of the command hashed to h if it was
// processed within the dedupe window, in this batch or a committed one.
func (b *batch) seen(st *partition, h uint64) (firstOutcome, bool) {
	if o, ok := b.dedupe[st.id][h]; ok {
		return o, true
	}
	o, ok := st.dedupe[h]
	return o, ok && o.at >= b.now.Add(-b.p.cfg.DedupeWindow).UnixMilli()
}

// account returns the aggregate's state as of this batch.
func (b *batch) account(st *partition, id string) domain.Account {
	if a, ok := b.accounts[st.id][id]; ok {
		return a
	}
	return st.accounts[id]
}

// outputs builds the records a decision writes: its events, its result and
// its saga commands (snapshots are written once per batch).
func (b *batch) outputs(r *kgo.Record, cmd domain.Command, d domain.Decision, next domain.Account, saga bool) ([]*kgo.Record, *codec.CommandResult, error) {
	p := b.p
	env := cmd.Env()
	var out []*kgo.Record
	refs := make([]codec.EventRef, 0, len(d.Events))
	for _, e := range d.Events {
		v, err := fromEvent(e)
		if err != nil {
			return nil, nil, err
		}
		rec, err := b.record(p.names.Events, r.Partition, e.Meta().AggregateID+"/"+strconv.FormatInt(e.Meta().Version, 10), v)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rec)
		refs = append(refs, codec.EventRef{EventID: e.Meta().EventID, Type: e.Type(), Version: e.Meta().Version})
	}

	res := &codec.CommandResult{
		CommandID:     env.CommandID,
		AggregateID:   env.AggregateID,
		CommandType:   cmd.Type(),
		CorrelationID: env.CorrelationID,
		Status:        statusAccepted,
		Version:       next.Version,
		Events:        refs,
		ProcessedAt:   b.now,
	}
	if d.Rejection != nil {
		res.Status = statusRejected
		res.Reason = string(d.Rejection.Reason)
		res.Message = d.Rejection.Message
	}
	rec, err := b.record(p.names.Results, r.Partition, env.CommandID, res)
	if err != nil {
		return nil, nil, err
	}
	origin := OriginUpstream
	if saga {
		origin = OriginProcessor
	}
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin)})
	out = append(out, rec)

	for _, c := range d.Commands {
		v, err := fromSagaCommand(c)
		if err != nil {
			return nil, nil, err
		}
		target := c.Env().AggregateID
		part := kafkax.KeyPartition([]byte(target), p.nparts)
		rec, err := b.record(p.names.Commands, part, target, v)
		if err != nil {
			return nil, nil, err
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(OriginProcessor)})
		out = append(out, rec)
	}
	return out, res, nil
}

// snapshots writes the latest state of every aggregate the batch touched.
func (b *batch) snapshots() error {
	for _, t := range b.touched {
		a := b.accounts[t.partition][t.id]
		rec, err := b.record(b.p.names.Snapshots, t.partition, t.id, toSnapshot(a))
		if err != nil {
			return fmt.Errorf("snapshot of %q: %w", t.id, err)
		}
		b.produce(rec)
	}
	return nil
}

// record encodes v into a record for topic/partition with a type header.
func (b *batch) record(topic string, partition int32, key string, v any) (*kgo.Record, error) {
	val, err := b.p.cat.Encode(v)
	if err != nil {
		return nil, err
	}
	typ, err := b.p.cat.Name(val)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic:     topic,
		Partition: partition,
		Key:       []byte(key),
		Value:     val,
		Headers:   []kgo.RecordHeader{{Key: HeaderType, Value: []byte(typ)}},
	}, nil
}

// dlq copies r to the DLQ topic with the reason in its headers.
func (b *batch) dlq(r *kgo.Record, typ, reason string) error {
	hs := []kgo.RecordHeader{
		{Key: HeaderError, Value: []byte(reason)},
		{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		{Key: HeaderSourcePartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	}
	if typ != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderType, Value: []byte(typ)})
	}
	b.produce(&kgo.Record{
		Topic:     b.p.names.DLQ,
		Partition: r.Partition % b.p.dlqParts,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   hs,
	})
	b.outcomes[outcomeDLQ]++
	b.p.log.Warn("record sent to the DLQ", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
	return nil
}

func (b *batch) produce(rec *kgo.Record) {
	b.sess.Produce(b.ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			b.mu.Lock()
			b.produceErr = errors.Join(b.produceErr, err)
			b.mu.Unlock()
		}
	})
}

// clip bounds user-supplied strings quoted in messages.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
