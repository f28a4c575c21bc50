package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/topology"
)

// Record headers the processor writes (and, for HeaderOrigin, reads).
const (
	// HeaderType carries the Avro full name of the value, on every record
	// the processor writes (DLQ records: when the value's schema is known).
	HeaderType = "type"
	// HeaderOrigin on a command marks a saga command the processor issued
	// (OriginProcessor); only such records may carry CreditTransfer or
	// RefundTransfer. On a command result it names the id space of the
	// command: OriginProcessor for saga commands, OriginUpstream otherwise.
	HeaderOrigin    = "origin"
	OriginProcessor = "processor"
	OriginUpstream  = "upstream"
	// HeaderDuplicate marks a command result that answers a repeated
	// request (same command id, same request) with its first outcome,
	// verbatim; it is not a new outcome.
	HeaderDuplicate = "duplicate"
	// HeaderReused marks a command result that refuses a request whose
	// command id was already used for a different request
	// (idempotency_key_reused); the first request's outcome stands.
	HeaderReused = "reused"
	// HeaderDedupe on every command result carries the first outcome of its
	// command id in a compact binary form (see firstOutcome.appendHeader):
	// whichever record of an id survives compaction, a restore recovers the
	// id's first outcome from it, without decoding the value.
	HeaderDedupe = "dedupe"
	// HeaderCommandOffset on every command result names the command record
	// it answers, as "<partition>/<offset>" of the commands topic, so that a
	// waiter can tell its own answer from another request's under the same
	// command id.
	HeaderCommandOffset = "command-offset"

	// HeaderControl on a command record asks the processor for something
	// other than a command; its key is the aggregate. ControlSnapshot
	// (value empty) writes the aggregate's snapshot again in the
	// processor's transaction: ledgerctl erase sends it so that a snapshot
	// written before snapshots left out the owner is superseded.
	HeaderControl   = "control"
	ControlSnapshot = "snapshot"

	// DLQ headers: why the record was not processed and where it was read.
	HeaderError           = "error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
	// HeaderAttempt on a command that ledgerctl dlq retry re-produced
	// counts the tries (2 for the first retry); HeaderRetryOf names the DLQ
	// record it came from ("<partition>/<offset>"). A command dead-lettered
	// again keeps both on its new DLQ record.
	HeaderAttempt = "dlq-attempt"
	HeaderRetryOf = "dlq-retry-of"
	// HeaderRetried marks a record ledgerctl dlq retry writes to the DLQ
	// itself, in the transaction of the retry, naming the DLQ record it
	// retried ("<partition>/<offset>"): no selection retries that record
	// again.
	HeaderRetried = "dlq-retried"
)

// ErrStopped is returned by Ready once Run has returned.
var ErrStopped = errors.New("processor: stopped")

const (
	// pruneEvery is how often expired entries are removed from the dedupe
	// index.
	pruneEvery = time.Minute
	// maxRecordBytes bounds every record the processor writes: Kafka's
	// default max.message.bytes (1 MiB + 12), which the topology keeps.
	// The producer's batch limit is raised to it (franz-go's default is
	// 1,000,012), so that any command a Kafka producer could write can at
	// least be copied to the DLQ. An output over it sends its command to
	// the DLQ instead of failing the transaction over and over.
	maxRecordBytes = 1_048_588
	// minRecordLimit is the smallest batch limit franz-go accepts.
	minRecordLimit = 512
	// recordOverhead is what a record batch holding one record adds to the
	// record's key, value and headers (batch header, record framing).
	recordOverhead = 512
	// metadataMinAge bounds the pause after a CONCURRENT_TRANSACTIONS
	// produce error (see Run).
	metadataMinAge = 100 * time.Millisecond
)

// Processor is the aggregate processor. Create it with New and call Run
// once; Ready may be called from any goroutine.
type Processor struct {
	cfg    Config
	static bool // cfg.InstanceID was given: static group membership
	names  topology.Names
	log    *slog.Logger
	m      *metrics
	cat    *codec.Catalog
	tracer trace.Tracer // nil: tracing off (trace.go)

	started atomic.Bool

	// Set by Run before the group session starts, read-only afterwards.
	nparts    int32 // partitions of every aggregate-keyed topic
	dlqParts  int32
	limits    map[string]int // record limit per output topic; see recordLimit
	adm       *kadm.Client
	failRun   context.CancelCauseFunc
	lastPrune time.Time

	mu        sync.Mutex
	parts     map[int32]*partition // owned and restored command partitions
	joined    bool                 // an assignment was received and handled
	restoring int                  // restores in progress
	fatal     error                // set once; Run returns it
	stateCh   chan struct{}        // closed and replaced whenever readiness may change
	// busySince is when the batch in progress was polled; zero between
	// batches. Ready reports a stall when it is older than StallTimeout.
	busySince time.Time
}

// partition is the in-memory state of one owned partition. Once published in
// Processor.parts its maps are only touched by the Run goroutine.
type partition struct {
	id       int32
	accounts map[string]domain.Account
	dedupe   index // command id → its first outcome
}

// New validates cfg (after applying defaults) and registers the metrics. It
// does no I/O; Run connects.
func New(cfg Config) (*Processor, error) {
	static := cfg.InstanceID != ""
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("processor config: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("processor metrics: %w", err)
	}
	var tracer trace.Tracer
	if cfg.TracerProvider != nil {
		tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	return &Processor{
		tracer:  tracer,
		static:  static,
		cfg:     cfg,
		names:   topology.NamesFor(cfg.Kafka.TopicPrefix),
		log:     cfg.Log.With("component", "processor", "group", cfg.Group),
		m:       m,
		cat:     codec.Default(),
		parts:   map[int32]*partition{},
		stateCh: make(chan struct{}),
	}, nil
}

// Ready returns nil once the processor has joined its group and restored
// every partition it was assigned (possibly none, when the group has more
// members than partitions); before that, and while a (re)assignment is
// being restored, it blocks until that is done or ctx ends (returning
// ctx.Err()). Once Run has returned it returns Run's error, or ErrStopped.
// It fails at once while the processor is stalled: polled commands whose
// transaction has not ended for StallTimeout (a hung commit, a broker that
// does not answer).
func (p *Processor) Ready(ctx context.Context) error {
	for {
		p.mu.Lock()
		fatal, ready, ch, busy := p.fatal, p.joined && p.restoring == 0, p.stateCh, p.busySince
		p.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if !busy.IsZero() && time.Since(busy) > p.cfg.StallTimeout {
			return fmt.Errorf("processor: stalled: a batch polled %s ago has not ended its transaction (stall timeout %s)",
				time.Since(busy).Round(time.Second), p.cfg.StallTimeout)
		}
		if reg := p.cfg.Registry; reg != nil {
			if since := reg.FailingSince(); !since.IsZero() && time.Since(since) > p.cfg.StallTimeout {
				return fmt.Errorf("processor: stalled: the schema registry has not answered for %s (commands in the Confluent wire format wait for it)",
					time.Since(since).Round(time.Second))
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes Ready callers; p.mu must be held.
func (p *Processor) notifyLocked() {
	close(p.stateCh)
	p.stateCh = make(chan struct{})
}

func (p *Processor) setBusy(t time.Time) {
	p.mu.Lock()
	p.busySince = t
	p.mu.Unlock()
}

// setFatal records the first fatal error and stops Run's polling.
func (p *Processor) setFatal(err error) {
	p.mu.Lock()
	if p.fatal == nil {
		p.fatal = err
		p.notifyLocked()
	}
	p.mu.Unlock()
	if p.failRun != nil {
		p.failRun(err)
	}
}

// Run joins the group and processes commands until ctx is done or a fatal
// error occurs. On ctx's end it finishes the transaction in progress (never
// cancelling a commit half-way), then leaves the group. It returns nil after
// a graceful stop, otherwise the error; it may be called only once.
func (p *Processor) Run(ctx context.Context) (err error) {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("processor: Run called twice")
	}
	defer func() {
		p.mu.Lock()
		if p.fatal == nil {
			p.fatal = ErrStopped
			if err != nil {
				p.fatal = err
			}
		}
		p.joined = false
		p.notifyLocked()
		p.mu.Unlock()
	}()

	adminCl, err := kafkax.NewClient(p.cfg.Kafka)
	if err != nil {
		return err
	}
	defer adminCl.Close()
	p.adm = kadm.NewClient(adminCl)
	if err := p.checkTopics(ctx); err != nil {
		return err
	}

	// A session that fails (a broker that went away mid-commit, a restore
	// that could not finish) is replaced by a new one after a backoff, with
	// new clients and the state restored from Kafka: the processor keeps
	// running by itself. Only being fenced by another instance with the
	// same id ends Run, since that instance now does this one's work.
	for attempt := 0; ; attempt++ {
		err := p.runSession(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if fenced(err) {
			return err
		}
		wait := min(time.Duration(1<<min(attempt, 5))*time.Second, 30*time.Second)
		p.m.restarts.Inc()
		p.log.Error("processor session failed; starting a new one", "err", err, "in", wait)
		p.mu.Lock()
		p.fatal = err // Ready fails until the new session has restored
		p.joined = false
		clear(p.parts)
		p.notifyLocked()
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		p.mu.Lock()
		p.fatal = nil
		p.notifyLocked()
		p.mu.Unlock()
	}
}

// fenced reports whether err means another instance took this one's
// transactional or group instance id.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.FencedInstanceID) ||
		errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// runSession runs one group transact session until ctx ends (nil) or it
// fails.
func (p *Processor) runSession(ctx context.Context) (err error) {
	runCtx, failRun := context.WithCancelCause(ctx)
	defer failRun(nil)
	p.failRun = failRun

	opts, err := kafkax.ClientOpts(p.cfg.Kafka)
	if err != nil {
		return err
	}
	opts = append(opts,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.names.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// With Kafka 4's transactions (KIP-890), a produce that follows
		// a commit before the broker has written the commit markers is
		// answered CONCURRENT_TRANSACTIONS. franz-go retries it after a
		// metadata refresh, and refreshes are at least MetadataMinAge
		// apart (default 5 s): the processor stalled for up to 5 s now
		// and then. A short minimum age bounds that stall.
		kgo.MetadataMinAge(metadataMinAge),
		kgo.TransactionalID(p.cfg.Group+"-"+p.cfg.InstanceID),
		// Deprecated as a no-op: franz-go now always requests stable
		// offsets (KIP-447). Kept so that the requirement is explicit.
		//lint:ignore SA1019 documents a hard requirement of this design
		kgo.RequireStableFetchOffsets(),
		// Batches stay within each topic's max.message.bytes, so a topic
		// set below Kafka's default takes many small records too.
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 { return int32(p.recordLimit(topic)) }),
		// Every output record's partition is set explicitly.
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Rebalances (and the assignment callbacks that touch the state)
		// wait until a polled batch's transaction has ended.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.WithLogger(kgoLogger{p.log}),
	)
	opts = append(opts, kafkax.TraceOpts(p.cfg.TracerProvider, p.cfg.Group)...)
	if p.static {
		opts = append(opts, kgo.InstanceID(p.cfg.InstanceID))
	}
	if d := p.cfg.SessionTimeout; d > 0 {
		opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(min(3*time.Second, d/3)))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("processor: kafka session: %w", err)
	}
	// Initialise the producer id now, not at the first transaction: that
	// fences a predecessor with the same transactional id (a crashed
	// process, or this process's previous session) and aborts its open
	// transaction, which the restore of the partitions would otherwise
	// wait for (read_committed stops at it) until the transaction timeout.
	pctx, cancelPID := context.WithTimeout(ctx, 30*time.Second)
	_, _, pidErr := sess.Client().ProducerID(pctx)
	cancelPID()
	if pidErr != nil {
		sess.Close()
		return fmt.Errorf("processor: initialise the transactional producer: %w", pidErr)
	}
	p.log.Info("processor starting", "commands", p.names.Commands, "partitions", p.nparts,
		"transactional_id", p.cfg.Group+"-"+p.cfg.InstanceID)
	defer func() {
		// Leaves the group; the revoke callback drops every partition.
		sess.CloseAllowingRebalance()
		if p.static && ctx.Err() != nil {
			// A static member does not leave by closing (KIP-345): a
			// crashed one is waited for, so that its restart gets its
			// partitions back at once. A graceful stop leaves, so that
			// the others take over at once.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if _, lerr := p.adm.LeaveGroup(lctx, kadm.LeaveGroup(p.cfg.Group).InstanceIDs(p.cfg.InstanceID).Reason("shutdown")); lerr != nil {
				p.log.Warn("leaving the group as a static member", "err", lerr)
			}
			cancel()
		}
		p.log.Info("processor stopped", "err", err)
	}()

	for {
		fetches := sess.PollRecords(runCtx, p.cfg.MaxBatch)
		if fetches.IsClientClosed() {
			return errors.New("processor: kafka client closed")
		}
		if runCtx.Err() != nil {
			// Nothing polled is processed: no transaction is open, and
			// the next owner starts from the committed offsets.
			sess.AllowRebalance()
			if cause := context.Cause(runCtx); ctx.Err() == nil {
				return cause
			}
			return nil
		}
		fetches.EachError(func(t string, part int32, err error) {
			p.log.Warn("fetch error", "topic", t, "partition", part, "err", err)
		})
		var batchErr error
		if records := fetches.Records(); len(records) > 0 {
			for _, r := range records {
				p.m.age.Waiting(r.Topic, r.Partition, r.Timestamp)
			}
			p.setBusy(time.Now())
			batchErr = p.processBatch(ctx, sess, records)
			p.setBusy(time.Time{})
			if batchErr == nil {
				for _, r := range records {
					p.m.age.Done(r.Topic, r.Partition)
				}
			}
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if n := len(fp.Records); n > 0 && fp.HighWatermark > 0 {
				p.m.lag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(max(fp.HighWatermark-fp.Records[n-1].Offset-1, 0)))
			}
		})
		p.maybePrune()
		sess.AllowRebalance()
		if batchErr != nil {
			p.setFatal(batchErr)
			return batchErr
		}
	}
}

// checkTopics loads the partition counts and checks co-partitioning.
func (p *Processor) checkTopics(ctx context.Context) error {
	n := p.names
	keyed := []string{n.Commands, n.Events, n.Snapshots, n.Results}
	details, err := p.adm.ListTopics(ctx, append(keyed, n.DLQ)...)
	if err != nil {
		return fmt.Errorf("processor: list topics: %w", err)
	}
	count := func(topic string) (int32, error) {
		d, ok := details[topic]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return 0, fmt.Errorf("processor: topic %s is missing or unreadable (apply the topology first): %v", topic, d.Err)
		}
		return int32(len(d.Partitions)), nil
	}
	var errs []error
	for _, t := range keyed {
		c, err := count(t)
		switch {
		case err != nil:
			errs = append(errs, err)
		case p.nparts == 0:
			p.nparts = c
		case c != p.nparts:
			errs = append(errs, fmt.Errorf("processor: topic %s has %d partitions, %s has %d: aggregate-keyed topics must be co-partitioned", t, c, n.Commands, p.nparts))
		}
	}
	c, err := count(n.DLQ)
	if err != nil {
		errs = append(errs, err)
	}
	p.dlqParts = c
	if len(errs) == 0 {
		p.readTopicConfigs(ctx)
	}
	return errors.Join(errs...)
}

// readTopicConfigs reads what the processor needs of the topics' configs:
// the record limit of every topic it writes (max.message.bytes, capped at
// maxRecordBytes), and the command-results retention, with a warning when
// it is shorter than the dedupe window (a restore could then not remember
// every command id of the window; the retention is the topology's
// business, so it only warns). A config it cannot read keeps Kafka's
// default, with a warning.
func (p *Processor) readTopicConfigs(ctx context.Context) {
	n := p.names
	topics := []string{n.Events, n.Snapshots, n.Results, n.Commands, n.DLQ}
	p.limits = make(map[string]int, len(topics))
	for _, t := range topics {
		p.limits[t] = maxRecordBytes
	}
	rcs, err := p.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		p.log.Warn("cannot read the topics' configs; assuming Kafka's defaults", "err", err)
		return
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			p.log.Warn("cannot read a topic's config; assuming Kafka's defaults", "topic", rc.Name, "err", rc.Err)
			continue
		}
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch {
			case c.Key == "max.message.bytes":
				if v, err := strconv.Atoi(*c.Value); err == nil && v < p.limits[rc.Name] {
					p.limits[rc.Name] = max(v, minRecordLimit)
				}
			case c.Key == "retention.ms" && rc.Name == n.Results:
				ms, err := strconv.ParseInt(*c.Value, 10, 64)
				if err == nil && ms >= 0 && time.Duration(ms)*time.Millisecond < p.cfg.DedupeWindow {
					p.log.Warn("command-results retention is shorter than the dedupe window; ids older than the retention are forgotten on restore",
						"retention", time.Duration(ms)*time.Millisecond, "dedupe_window", p.cfg.DedupeWindow)
				}
			}
		}
	}
}

// recordLimit is the largest record batch the processor writes to topic.
func (p *Processor) recordLimit(topic string) int {
	if l, ok := p.limits[topic]; ok {
		return l
	}
	return maxRecordBytes
}

// commandPartitions returns the commands topic's partitions in assigned.
func (p *Processor) commandPartitions(assigned map[string][]int32) []int32 {
	ps := append([]int32(nil), assigned[p.names.Commands]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func (p *Processor) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	parts := p.commandPartitions(assigned)
	p.mu.Lock()
	p.restoring++
	p.notifyLocked()
	p.mu.Unlock()

	var restored map[int32]*partition
	var err error
	if len(parts) > 0 {
		restored, err = p.restore(ctx, parts)
	}

	p.mu.Lock()
	p.restoring--
	p.joined = true
	for id, st := range restored {
		p.parts[id] = st
	}
	p.m.partitions.Set(float64(len(p.parts)))
	p.notifyLocked()
	p.mu.Unlock()
	switch {
	case err != nil && ctx.Err() != nil:
		// Closing: the partitions will be restored by their next owner.
	case err != nil:
		p.setFatal(fmt.Errorf("processor: restore partitions %v: %w", parts, err))
	case len(parts) > 0:
		p.log.Info("partitions assigned and restored", "partitions", parts)
	}
}

func (p *Processor) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	p.drop("revoked", p.commandPartitions(revoked))
}

func (p *Processor) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.drop("lost", p.commandPartitions(lost))
}

func (p *Processor) drop(why string, parts []int32) {
	if len(parts) == 0 {
		return
	}
	p.mu.Lock()
	for _, id := range parts {
		delete(p.parts, id)
		p.m.age.Drop(p.names.Commands, id)
		p.m.lag.DeleteLabelValues(p.names.Commands, strconv.Itoa(int(id)))
	}
	p.m.partitions.Set(float64(len(p.parts)))
	p.mu.Unlock()
	p.log.Info("partitions "+why+"; state dropped", "partitions", parts)
}

// resync replaces the state of every owned partition with a fresh restore,
// after a transaction whose outcome is unknown. It runs in the Run goroutine
// while rebalances are blocked, so the set of owned partitions is stable.
func (p *Processor) resync(ctx context.Context) error {
	p.mu.Lock()
	ids := make([]int32, 0, len(p.parts))
	for id := range p.parts {
		ids = append(ids, id)
	}
	p.restoring++
	p.notifyLocked()
	p.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	var restored map[int32]*partition
	var err error
	if len(ids) > 0 {
		restored, err = p.restore(ctx, ids)
	}

	p.mu.Lock()
	p.restoring--
	if err == nil {
		for id, st := range restored {
			if _, owned := p.parts[id]; owned {
				p.parts[id] = st
			}
		}
	} else {
		// Stale state must never be used: forget it all.
		clear(p.parts)
		p.m.partitions.Set(0)
	}
	p.notifyLocked()
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("processor: restore after a failed transaction: %w", err)
	}
	return nil
}

// maybePrune removes expired dedupe entries, at most once per pruneEvery.
func (p *Processor) maybePrune() {
	now := time.Now()
	if now.Sub(p.lastPrune) < pruneEvery {
		return
	}
	p.lastPrune = now
	cutoff := now.Add(-p.cfg.DedupeWindow).UnixMilli()
	p.mu.Lock()
	parts := make([]*partition, 0, len(p.parts))
	for _, st := range p.parts {
		parts = append(parts, st)
	}
	p.mu.Unlock()
	for _, st := range parts {
		st.dedupe.prune(cutoff)
	}
}

// kgoLogger forwards franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	k.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}
