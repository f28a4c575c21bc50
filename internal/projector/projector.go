// Package projector runs a projection sink as a Kafka consumer group: it
// reads the events (and optionally the command-results) topic read_committed,
// applies records in batches bounded by size and time, and commits the
// offsets of a batch only after the sink reports it durable. A failing sink
// keeps its batch: the projector backs off and retries the same batch
// without fetching more, so memory stays bounded and nothing is skipped.
//
// Delivery is at least once; the sinks make it effectively once by applying
// an event only when its version is the next one of its aggregate. Records
// that do not decode (tombstones, malformed bytes, unknown schemas or event
// types) are counted in ledger_projector_skipped_total{reason} and skipped.
//
// Metrics, each labelled sink="<Sink.Name()>": ledger_projector_events_applied_total,
// ledger_projector_outcomes_applied_total, ledger_projector_batches_total,
// ledger_projector_apply_errors_total, ledger_projector_retries_total,
// ledger_projector_commit_errors_total, ledger_projector_skipped_total{reason} and
// the gauge ledger_projector_lag{topic,partition} (high watermark of the last
// fetch minus the committed offset; transaction markers are committed too, so
// it reaches 0 when caught up).
//
// Rebalances are not held back while a batch is applied: the client blocks
// them (kgo.BlockRebalanceOnPoll) only from a poll to the next
// AllowRebalance, and the Run loop allows them after each poll and after
// each apply attempt. A partition can therefore move to another member while
// this one writes it. Write fencing (fence.go) makes that safe: every apply
// is announced with a deadline in the group's offset metadata, and a new
// owner writes nothing before an unfinished announced write's deadline.
// Records of partitions taken away are dropped before the next attempt;
// after a successful apply they are committed too, which tells the new
// owner the write is done.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/topology"
)

// ResultSink applies command outcomes (the command-results topic). Like
// projection.Sink: it returns when the batch is durable, must be idempotent
// per command id, and an error means nothing may be assumed applied.
type ResultSink interface {
	ApplyOutcomes(ctx context.Context, batch []projection.Outcome) error
}

// The ClickHouse projector's defaults in `projector serve`: an INSERT costs
// ClickHouse mostly per part written (a file per column of each table), so
// its batches wait a little to fill and may be large.
const (
	ClickHouseMaxBatch = 20000
	ClickHouseMaxDelay = 200 * time.Millisecond
)

// Config configures a projector. Zero values mean the documented defaults.
type Config struct {
	Kafka config.Kafka
	// Group is the consumer group; default "<topic prefix>projector-<sink name>".
	Group string
	// Sink receives the events. Required.
	Sink projection.Sink
	// Results, when set, also receives the command-results topic (same group).
	Results ResultSink
	// MaxBatch is the most records applied in one batch. Default 5000.
	MaxBatch int
	// MaxDelay is how long a batch may wait to fill up before it is
	// applied. The default, 0, applies what a poll returned at once: while
	// one batch is applied the next accumulates in the client, so batches
	// grow by themselves under load and nothing waits when there is none.
	MaxDelay time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff between retries
	// of a failed batch. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Log receives the projector's logs. Default slog.Default().
	Log *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// OnAssigned, when set, is called after partitions are assigned, from the
	// client's group goroutine (concurrently with Sink.Apply): a sink that
	// caches store state flags itself there and drops its cache before its
	// next Apply, since another instance may have written meanwhile.
	OnAssigned func()
	// SessionTimeout is how long the group waits for a crashed member before
	// reassigning its partitions; 0 means franz-go's default (45s).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for this member to
	// finish its batch and rejoin before evicting it; 0 means franz-go's
	// default (60s).
	RebalanceTimeout time.Duration
	// WriteDeadline bounds one apply of a batch: nothing is written to the
	// store after it, and a member taking over a partition whose previous
	// owner died mid-write waits for it (see fence.go); a retry after a
	// failed apply gets up to 8 times as long. Default 3s.
	WriteDeadline time.Duration
	// ClockSkew is the most the members' clocks may differ. Default 1s.
	ClockSkew time.Duration
	// StallTimeout: Ready fails once records have waited this long past
	// committed offsets that do not move (a projector stuck on a batch).
	// Default 30s.
	StallTimeout time.Duration
	// InstanceID is the member's static group instance id (KIP-345), if it
	// has one.
	InstanceID string
	// TracerProvider, when set, traces every event applied: a span per
	// event, child of the trace context in its record's headers (trace.go).
	// Nil: no hook, no span.
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 5000
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.WriteDeadline <= 0 {
		c.WriteDeadline = 3 * time.Second
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = time.Second
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.Group == "" && c.Sink != nil {
		c.Group = DefaultGroup(c.Kafka.TopicPrefix, c.Sink.Name())
	}
}

// DefaultGroup is the consumer group of a sink: "<prefix>projector-<sink name>",
// e.g. ledger.projector-redis.
func DefaultGroup(topicPrefix, sinkName string) string {
	return topicPrefix + "projector-" + sinkName
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Sink == nil {
		errs = append(errs, errors.New("projector: no sink"))
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("projector: max delay %s: must not be negative", c.MaxDelay))
	}
	return errors.Join(errs...)
}

// item is one fetched record, decoded once.
type item struct {
	rec     *kgo.Record
	event   *projection.Event   // nil: not for the sink (control record, skipped)
	outcome *projection.Outcome // nil: not for the result sink
}

type tp struct {
	topic     string
	partition int32
}

// Projector is one member of a projector group. Run drives it; Ready may be
// called from any goroutine.
type Projector struct {
	cfg         Config
	cl          *kgo.Client
	eventsTopic string
	m           *metrics
	tracer      trace.Tracer // nil: tracing off

	// owned by the Run goroutine
	pending  []item
	first    time.Time // when the first pending record arrived
	failures int       // consecutive failed applies of the pending batch
	next     map[tp]int64
	hw       map[tp]int64
	topicIDs map[string][16]byte // for the announce's OffsetCommit v10+

	mu        sync.Mutex // guards revoked, failing and notBefore
	revoked   map[tp]bool
	failing   error
	notBefore time.Time          // no store write before it: a previous owner may still be writing
	awaiting  map[string][]int32 // the partitions notBefore is for
	owned     map[tp]bool        // assigned partitions
	// stuckSince is since when a partition this member owns has had
	// records past its committed offset that did not move (watchLag).
	stuckSince time.Time
}

// New connects a projector; Run starts consuming.
func New(cfg Config) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	names := topology.NamesFor(cfg.Kafka.TopicPrefix)
	m, err := newMetrics(cfg.Registerer, cfg.Sink.Name())
	if err != nil {
		return nil, err
	}
	p := &Projector{
		cfg:         cfg,
		eventsTopic: names.Events,
		m:           m,
		next:        map[tp]int64{},
		hw:          map[tp]int64{},
		revoked:     map[tp]bool{},
		owned:       map[tp]bool{},
	}
	topics := []string{names.Events}
	if cfg.Results != nil {
		topics = append(topics, names.Results)
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Transaction markers come through so their offsets are committed too;
		// otherwise the committed offset stops before the last marker and the
		// lag never reaches zero.
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoke),
		kgo.OnPartitionsLost(p.revoke),
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.RebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(cfg.RebalanceTimeout))
	}
	opts = append(opts, kafkax.TraceOpts(cfg.TracerProvider, cfg.Group)...)
	if cfg.TracerProvider != nil {
		p.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	cl, err := kafkax.NewClient(cfg.Kafka, opts...)
	if err != nil {
		return nil, err
	}
	p.cl = cl
	return p, nil
}

// Group is the consumer group the projector is a member of.
func (p *Projector) Group() string { return p.cfg.Group }

// Ready fails while the sink is failing (the last apply of the pending batch
// returned an error) or does not answer a ping, and when the projector is
// stalled: records have waited past committed offsets that did not move for
// StallTimeout.
func (p *Projector) Ready(ctx context.Context) error {
	p.mu.Lock()
	err, stuck := p.failing, p.stuckSince
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("projector %s: sink failing: %w", p.cfg.Group, err)
	}
	if !stuck.IsZero() && time.Since(stuck) > p.cfg.StallTimeout {
		return fmt.Errorf("projector %s: stalled: records wait past committed offsets that have not moved for %s",
			p.cfg.Group, time.Since(stuck).Round(time.Second))
	}
	if err := p.cfg.Sink.Ping(ctx); err != nil {
		return fmt.Errorf("projector %s: sink %s: %w", p.cfg.Group, p.cfg.Sink.Name(), err)
	}
	return nil
}

// Run consumes until ctx ends, then leaves the group and closes the client;
// call it once. Only a closed client ends it early with an error. Whatever
// was not applied and committed is fetched again by the next owner of its
// partition.
func (p *Projector) Run(ctx context.Context) error {
	defer p.cl.Close()
	defer p.leaveIfStatic()
	defer p.cl.AllowRebalance()
	log := p.cfg.Log.With("group", p.cfg.Group, "sink", p.cfg.Sink.Name())
	log.Info("projector started", "events", p.eventsTopic, "results", p.cfg.Results != nil)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go p.watchLag(wctx)
	for {
		if ctx.Err() != nil {
			log.Info("projector stopping", "uncommitted", len(p.pending))
			return nil
		}
		p.prune()
		if !p.due() {
			if err := p.poll(ctx, log); err != nil {
				return err
			}
			p.cl.AllowRebalance()
			continue
		}
		err := p.flush(ctx, log)
		// Between attempts a rebalance may proceed; revoke drops what it takes away.
		p.cl.AllowRebalance()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		wait := p.backoff()
		log.Warn("apply failed, retrying the same batch", "err", err, "records", len(p.pending), "attempt", p.failures, "backoff", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
			p.m.retries.Inc()
		}
		t.Stop()
	}
}

// leaveIfStatic leaves the group explicitly when the member is static
// (InstanceID): closing the client does not (KIP-345), and on a graceful
// stop the others should take over at once. A crashed static member is
// waited for instead, so that its restart gets its partitions back at once.
func (p *Projector) leaveIfStatic() {
	if p.cfg.InstanceID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(p.cl).LeaveGroup(ctx, kadm.LeaveGroup(p.cfg.Group).InstanceIDs(p.cfg.InstanceID).Reason("shutdown")); err != nil {
		p.cfg.Log.Warn("leaving the group as a static member", "group", p.cfg.Group, "err", err)
	}
}

func (p *Projector) backoff() time.Duration {
	d := p.cfg.MinBackoff
	for i := 1; i < p.failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.cfg.MaxBackoff)
}

// due reports whether the pending batch should be applied now: it is full,
// has waited MaxDelay (0: at once), or is being retried.
func (p *Projector) due() bool {
	if len(p.pending) == 0 {
		return false
	}
	return len(p.pending) >= p.cfg.MaxBatch || p.failures > 0 || time.Since(p.first) >= p.cfg.MaxDelay
}

func (p *Projector) poll(ctx context.Context, log *slog.Logger) error {
	pctx := ctx
	if len(p.pending) > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, p.cfg.MaxDelay-time.Since(p.first))
		defer cancel()
	}
	fs := p.cl.PollRecords(pctx, p.cfg.MaxBatch-len(p.pending))
	if fs.IsClientClosed() {
		return kgo.ErrClientClosed
	}
	fs.EachError(func(topic string, part int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		log.Warn("fetch error", "topic", topic, "partition", part, "err", err)
	})
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		k := tp{fp.Topic, fp.Partition}
		if len(fp.Records) > 0 {
			if _, ok := p.next[k]; !ok {
				p.next[k] = fp.Records[0].Offset
			}
		}
		if fp.HighWatermark > 0 {
			p.hw[k] = fp.HighWatermark
		}
		p.updateLag(k)
	})
	fs.EachRecord(func(r *kgo.Record) {
		if len(p.pending) == 0 {
			p.first = time.Now()
		}
		p.m.age.Waiting(r.Topic, r.Partition, r.Timestamp)
		p.pending = append(p.pending, p.decode(r, log))
	})
	return nil
}

func (p *Projector) decode(r *kgo.Record, log *slog.Logger) item {
	it := item{rec: r}
	var err error
	it.event, it.outcome, err = decodeRecord(r, p.eventsTopic)
	if err != nil {
		reason := "malformed"
		switch {
		case errors.Is(err, projection.ErrTombstone):
			reason = "tombstone"
		case errors.Is(err, projection.ErrUnknownEvent):
			reason = "unknown_type"
		case errors.Is(err, codec.ErrUnknownSchema):
			reason = "unknown_schema"
		}
		p.m.skipped.WithLabelValues(reason).Inc()
		if reason != "tombstone" {
			log.Error("skipping record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason, "err", err)
		}
	}
	return it
}

// decodeRecord decodes a record of the events topic into an event and one
// of the command-results topic (any other topic) into an outcome; a control
// record decodes to neither.
func decodeRecord(r *kgo.Record, eventsTopic string) (*projection.Event, *projection.Outcome, error) {
	if r.Attrs.IsControl() {
		return nil, nil, nil
	}
	if r.Topic == eventsTopic {
		e, err := projection.FromRecord(r)
		if err != nil {
			return nil, nil, err
		}
		return &e, nil, nil
	}
	if projection.IsReuseRefusal(r) {
		return nil, nil, nil // the id's outcome is its first one
	}
	o, err := projection.OutcomeFromRecord(r)
	if err != nil {
		return nil, nil, err
	}
	return nil, &o, nil
}

// apply writes events to sink, then outcomes to results (if not nil): the
// live projector and the rebuild's replay apply a batch the same way.
func apply(ctx context.Context, sink projection.Sink, results ResultSink, events []projection.Event, outcomes []projection.Outcome) error {
	if len(events) > 0 {
		if err := sink.Apply(ctx, events); err != nil {
			return fmt.Errorf("sink %s: apply %d events: %w", sink.Name(), len(events), err)
		}
		if err := redact(ctx, sink, events); err != nil {
			return err
		}
	}
	if len(outcomes) > 0 && results != nil {
		if err := results.ApplyOutcomes(ctx, outcomes); err != nil {
			return fmt.Errorf("apply %d command outcomes: %w", len(outcomes), err)
		}
	}
	return nil
}

// redact hands the redacted copies among events (an erasure's) to sink,
// when it is a projection.Redactor, so that it blanks what it holds of them.
func redact(ctx context.Context, sink projection.Sink, events []projection.Event) error {
	r, ok := sink.(projection.Redactor)
	if !ok {
		return nil
	}
	var red []projection.Event
	for _, e := range events {
		if e.Redacted {
			red = append(red, e)
		}
	}
	if len(red) == 0 {
		return nil
	}
	if err := r.Redact(ctx, red); err != nil {
		return fmt.Errorf("sink %s: redact %d events: %w", sink.Name(), len(red), err)
	}
	return nil
}

func countRedacted(events []projection.Event) int {
	n := 0
	for _, e := range events {
		if e.Redacted {
			n++
		}
	}
	return n
}

// flush applies the pending batch and, once the sinks report it durable,
// commits its offsets synchronously.
func (p *Projector) flush(ctx context.Context, log *slog.Logger) error {
	var events []projection.Event
	var outcomes []projection.Outcome
	for _, it := range p.pending {
		if it.event != nil {
			events = append(events, *it.event)
		}
		if it.outcome != nil {
			outcomes = append(outcomes, *it.outcome)
		}
	}
	err := p.awaitPrevious(ctx)
	if err == nil {
		// A write that ran out of time is retried with a longer deadline
		// (up to 8×): a slow store still makes progress, and the deadline
		// is announced, so a successor waits for whichever applies.
		deadline := time.Now().Add(p.cfg.WriteDeadline << min(p.failures, maxDeadlineShift))
		if err = p.announce(ctx, deadline); err == nil {
			actx, cancel := context.WithDeadline(ctx, deadline)
			spans := p.startSpans()
			err = apply(actx, p.cfg.Sink, p.cfg.Results, events, outcomes)
			endSpans(spans, err)
			cancel()
		}
	}
	if err != nil {
		p.failures++
		p.m.applyErrors.Inc()
		p.setFailing(err)
		return err
	}
	p.setFailing(nil)
	p.failures = 0
	if n := countRedacted(events); n > 0 {
		log.Info("applied an erasure's redacted copies", "events", n)
	}
	p.m.batches.Inc()
	p.m.events.Add(float64(len(events)))
	p.m.outcomes.Add(float64(len(outcomes)))

	// The batch is applied: a failed commit only means it is delivered again
	// later, which the sinks ignore by version. A shutdown must not cut the
	// commit short, hence WithoutCancel.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Every applied record is committed, also of partitions revoked during
	// the apply: the commit tells their new owner the write is done (see
	// fence.go), and it cannot undo the new owner's progress, which waits
	// for it.
	var commit []*kgo.Record
	for _, it := range p.pending {
		commit = append(commit, it.rec)
		p.m.age.Done(it.rec.Topic, it.rec.Partition)
	}
	p.prune()
	if err := p.cl.CommitRecords(cctx, commit...); err != nil {
		p.m.commitErrors.Inc()
		log.Warn("commit failed; the batch will be delivered again", "err", err, "records", len(commit))
	} else {
		for _, r := range commit {
			k := tp{r.Topic, r.Partition}
			if r.Offset+1 > p.next[k] {
				p.next[k] = r.Offset + 1
			}
		}
		for k := range p.next {
			p.updateLag(k)
		}
	}
	clear(p.pending)
	p.pending = p.pending[:0]
	return nil
}

func (p *Projector) setFailing(err error) {
	p.mu.Lock()
	p.failing = err
	p.mu.Unlock()
}

func (p *Projector) updateLag(k tp) {
	hw, ok := p.hw[k]
	if !ok {
		return
	}
	next, ok := p.next[k]
	if !ok {
		return
	}
	p.m.lag.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Set(float64(max(hw-next, 0)))
}

// prune drops pending records of partitions revoked or lost since the last
// call: they are not ours to apply or commit any more.
func (p *Projector) prune() {
	p.mu.Lock()
	if len(p.revoked) == 0 {
		p.mu.Unlock()
		return
	}
	revoked := p.revoked
	p.revoked = map[tp]bool{}
	p.mu.Unlock()
	kept := p.pending[:0]
	for _, it := range p.pending {
		if !revoked[tp{it.rec.Topic, it.rec.Partition}] {
			kept = append(kept, it)
		}
	}
	clear(p.pending[len(kept):])
	p.pending = kept
	for k := range revoked {
		delete(p.next, k)
		delete(p.hw, k)
		p.m.lag.DeleteLabelValues(k.topic, strconv.Itoa(int(k.partition)))
		p.m.age.Drop(k.topic, k.partition)
	}
	if len(p.pending) == 0 {
		// Nothing left to retry: readiness is decided by the next apply.
		p.failures = 0
		p.setFailing(nil)
	}
}

// revoke runs in the client's group goroutine; it only records what was
// taken away, the Run goroutine drops it (prune) before applying or committing.
func (p *Projector) revoke(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, parts := range lost {
		for _, part := range parts {
			p.revoked[tp{t, part}] = true
			delete(p.owned, tp{t, part})
		}
	}
	if len(lost) > 0 {
		p.cfg.Log.Info("partitions revoked", "group", p.cfg.Group, "partitions", lost)
	}
}

// assigned forgets a revocation of a partition assigned again before prune
// saw it: records fetched under the new assignment must not be dropped
// (that would skip them); old ones still pending are applied again, which
// the sinks ignore by version. It uses the client it is given: the group
// can assign partitions before New has stored p.cl.
func (p *Projector) assigned(ctx context.Context, cl *kgo.Client, got map[string][]int32) {
	p.awaitOwners(ctx, cl, got)
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, parts := range got {
		for _, part := range parts {
			delete(p.revoked, tp{t, part})
			p.owned[tp{t, part}] = true
		}
	}
	if len(got) > 0 {
		p.cfg.Log.Info("partitions assigned", "group", p.cfg.Group, "partitions", got)
		if p.cfg.OnAssigned != nil {
			p.cfg.OnAssigned()
		}
	}
}

// maxDeadlineShift: a retried apply gets up to WriteDeadline << 3.
const maxDeadlineShift = 3

// awaitOwners runs in the client's group goroutine after an assignment: it
// reads whether a previous owner of the partitions announced a write it
// may not have finished, and defers this member's writes until that write's
// deadline (see fence.go). When it cannot tell, it waits the longest
// deadline an apply can announce.
func (p *Projector) awaitOwners(ctx context.Context, cl *kgo.Client, got map[string][]int32) {
	if len(got) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	until, err := p.previousDeadline(ctx, cl, got)
	if err != nil {
		// A previous owner retrying a write may have announced the longest
		// deadline a retry gets.
		p.cfg.Log.Warn("cannot read the previous owners' write deadlines; waiting the longest write deadline", "err", err)
		until = time.Now().Add(p.cfg.WriteDeadline << maxDeadlineShift)
	}
	if until.IsZero() {
		return
	}
	until = until.Add(p.cfg.ClockSkew)
	p.mu.Lock()
	if until.After(p.notBefore) {
		p.notBefore = until
	}
	if p.awaiting == nil {
		p.awaiting = map[string][]int32{}
	}
	for t, parts := range got {
		p.awaiting[t] = append(p.awaiting[t], parts...)
	}
	p.mu.Unlock()
}
