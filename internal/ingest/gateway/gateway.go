// Package gateway is the write side's HTTP front door: it validates JSON
// commands, encodes them as Avro (single-object encoding) and produces them
// to the commands topic keyed by aggregate id, and, when asked to wait,
// answers with the outcome it reads back from the command-results topic.
//
// It does not decide anything: domain rules (does the account exist, are
// there funds) belong to the aggregate processors. The gateway only refuses
// what cannot be a command at all (unknown or internal types, missing or
// mistyped fields, amounts that are not positive integers, bad currency
// codes), so that such input never reaches Kafka.
//
// HTTP contract (see docs/producing-commands.md for the JSON shape):
//
//	POST /v1/commands[?wait=<duration>]        one JSON command
//	POST /v1/commands:batch[?wait=<duration>]  a JSON array or NDJSON of commands
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/tracing"
	"github.com/cqrs-ledger/ledger/topology"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxBatch     = 1000
	DefaultMaxWait      = 30 * time.Second

	// defaultProduceTimeout bounds how long a request waits for Kafka to take its
	// records before answering 503.
	defaultProduceTimeout = 10 * time.Second
	// maxWaiting bounds the requests waiting for results at once; beyond it a
	// request with ?wait= answers "pending" at once.
	maxWaiting = 100_000
	// headerCommandOffset is the processor's processor.HeaderCommandOffset:
	// the "<partition>/<offset>" of the command record a result answers.
	headerCommandOffset = "command-offset"
)

// Config configures a Gateway. Zero values take the documented defaults.
type Config struct {
	Kafka        config.Kafka // brokers, security and the topic prefix
	MaxBodyBytes int64        // request body limit, default 1 MiB; larger bodies get 413
	MaxBatch     int          // items per batch request, default 1000
	// MaxWait is the largest ?wait= accepted, default 30 s. The HTTP server's
	// WriteTimeout must exceed it.
	MaxWait    time.Duration
	Log        *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // metrics go here; nil for none
	Now        func() time.Time      // the clock for issued_at, default time.Now
	// TracerProvider, when set, traces each request (a server span that
	// continues the caller's traceparent) and the produce of its command
	// records, whose traceparent header carries the trace to the
	// processor. Nil: no span, no header (see docs/observability.md).
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c (after defaults).
func (c Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d: must be positive", c.MaxBodyBytes))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max batch %d: must be positive", c.MaxBatch))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("max wait %s: must be positive", c.MaxWait))
	}
	return errors.Join(errs...)
}

// Gateway is the HTTP command gateway. Its methods are safe for concurrent
// use; Run must be running for ?wait= to see results.
type Gateway struct {
	cfg            Config
	topics         topology.Names
	prod           *kgo.Client
	waiters        *waiters
	following      atomic.Bool // the results follower is positioned and polling
	produceTimeout time.Duration
	m              *metrics
}

// New builds a gateway and its idempotent producer (no connection is made
// yet; see Ready). Records are keyed by aggregate id and partitioned like
// Kafka's default partitioner (murmur2 of the key), so commands of one
// account keep their order and land where producers in any language would
// put them.
func New(cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	names := topology.NamesFor(cfg.Kafka.TopicPrefix)
	prod, err := kafkax.NewClient(cfg.Kafka, append([]kgo.Opt{
		kgo.DefaultProduceTopic(names.Commands),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RecordDeliveryTimeout(defaultProduceTimeout),
		// A request waits for its records: do not linger. Records buffered
		// while a produce request is in flight are still batched together.
		kgo.ProducerLinger(0),
	}, kafkax.TraceOpts(cfg.TracerProvider, "")...)...)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:            cfg,
		topics:         names,
		prod:           prod,
		waiters:        newWaiters(maxWaiting),
		produceTimeout: defaultProduceTimeout,
	}
	g.m, err = newMetrics(cfg.Registerer, g.waiters)
	if err != nil {
		prod.Close()
		return nil, err
	}
	return g, nil
}

// Routes registers POST /v1/commands and POST /v1/commands:batch on mux.
func (g *Gateway) Routes(mux *http.ServeMux) {
	tp := g.cfg.TracerProvider
	mux.Handle("POST /v1/commands", tracing.HTTPHandler(tp, http.MethodPost, "/v1/commands", http.HandlerFunc(g.handleOne)))
	mux.Handle("POST /v1/commands:batch", tracing.HTTPHandler(tp, http.MethodPost, "/v1/commands:batch", http.HandlerFunc(g.handleBatch)))
}

// Ready reports whether Kafka answers and the results follower is
// positioned, i.e. whether ?wait= can see outcomes.
func (g *Gateway) Ready(ctx context.Context) error {
	if err := g.prod.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if !g.following.Load() {
		return errors.New("command-results follower is not running yet")
	}
	return nil
}

// Close closes the producer without flushing: records not yet acknowledged
// fail, and their requests answer 503. Call it after the HTTP server has
// drained (every handler waits for its own records, so nothing is pending
// then) and after Run has returned or its context is cancelled.
func (g *Gateway) Close() {
	g.prod.Close()
}

// Run follows the command-results topic from its end (its last stable
// offset: results committed after Run started) and completes the waiting
// requests, until ctx is done; then it returns nil. Each gateway instance
// reads every partition, so any instance can answer any wait. It returns an
// error only if it cannot build its Kafka client; a missing topic or an
// unreachable broker is retried. Partitions added to the results topic after
// Run started are followed only after a restart.
func (g *Gateway) Run(ctx context.Context) error {
	cl, err := kafkax.NewClient(g.cfg.Kafka)
	if err != nil {
		return err
	}
	offsets, err := g.endOffsets(ctx, kadm.NewClient(cl))
	cl.Close()
	if err != nil {
		return nil // ctx done while positioning
	}
	cons, err := kafkax.NewClient(g.cfg.Kafka,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{g.topics.Results: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return err
	}
	defer cons.Close()
	g.following.Store(true)
	defer g.following.Store(false)
	g.cfg.Log.Info("following command results", "topic", g.topics.Results, "partitions", len(offsets))

	for {
		fetches := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			g.cfg.Log.Warn("fetch command results", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(g.onResult)
	}
}

// endOffsets lists the last stable offset of every partition of the results
// topic, retrying until it succeeds or ctx is done.
func (g *Gateway) endOffsets(ctx context.Context, adm *kadm.Client) (map[int32]kgo.Offset, error) {
	backoff := 200 * time.Millisecond
	for {
		listed, err := adm.ListCommittedOffsets(ctx, g.topics.Results)
		if err == nil {
			err = listed.Error()
		}
		if err == nil {
			offsets := map[int32]kgo.Offset{}
			listed.Each(func(o kadm.ListedOffset) {
				offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
			})
			if len(offsets) > 0 {
				return offsets, nil
			}
			err = errors.New("topic has no partitions")
		}
		g.cfg.Log.Warn("locating the end of command results; retrying", "topic", g.topics.Results, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (g *Gateway) onResult(r *kgo.Record) {
	v, err := codec.Default().Decode(r.Value)
	if err != nil {
		g.m.results.WithLabelValues("undecodable").Inc()
		g.cfg.Log.Warn("undecodable command result", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	res, ok := v.(*codec.CommandResult)
	if !ok {
		g.m.results.WithLabelValues("undecodable").Inc()
		g.cfg.Log.Warn("not a command result", "partition", r.Partition, "offset", r.Offset, "type", fmt.Sprintf("%T", v))
		return
	}
	g.m.results.WithLabelValues("ok").Inc()
	at, _ := kafkax.Header(r, headerCommandOffset)
	g.waiters.complete(res.AggregateID, res.CommandID, string(at), outcomeOf(res))
}

// item is one command of a request on its way through submit.
type item struct {
	index      int
	cmd        *command    // nil when invalid
	invalid    *FieldError // set when the item was refused
	produceErr error
	w          *waiter
	cancel     func()
	out        *outcome // the result, if it arrived in time
}

// submit produces the valid items concurrently (records of one aggregate
// keep their order) and, when wait > 0, waits up to wait after producing
// for their results. Waiters are registered before producing so that a
// fast result is never missed.
func (g *Gateway) submit(ctx context.Context, items []*item, wait time.Duration) {
	var valid []*item
	for _, it := range items {
		if it.cmd != nil {
			valid = append(valid, it)
		}
	}
	if len(valid) == 0 {
		return
	}
	if wait > 0 {
		for _, it := range valid {
			it.w, it.cancel = g.waiters.register(it.cmd.aggregateID, it.cmd.commandID)
		}
		defer func() {
			for _, it := range valid {
				it.cancel()
			}
		}()
	}

	pctx, cancel := context.WithTimeout(ctx, g.produceTimeout)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, it := range valid {
		value, err := codec.Default().Encode(it.cmd.record)
		if err != nil { // only codec limits can get here: the shape was validated
			it.invalid = &FieldError{Code: CodeInvalidCommand, Message: err.Error()}
			it.cmd = nil
			continue
		}
		rec := &kgo.Record{
			Key:     []byte(it.cmd.aggregateID),
			Value:   value,
			Headers: []kgo.RecordHeader{{Key: "type", Value: []byte(it.cmd.typ)}},
		}
		wg.Add(1)
		g.prod.Produce(pctx, rec, func(r *kgo.Record, err error) {
			it.produceErr = err
			if err == nil && it.w != nil {
				g.waiters.produced(it.w, r.Partition, r.Offset)
			}
			wg.Done()
		})
	}
	wg.Wait()
	g.m.produce.Observe(time.Since(start).Seconds())
	for _, it := range valid {
		switch {
		case it.cmd == nil:
			g.m.commands.WithLabelValues("unknown", "invalid").Inc()
		case it.produceErr != nil:
			g.m.commands.WithLabelValues(it.cmd.short(), "produce_failed").Inc()
			g.cfg.Log.Warn("produce command", "command_id", it.cmd.commandID, "err", it.produceErr)
		default:
			g.m.commands.WithLabelValues(it.cmd.short(), "produced").Inc()
		}
	}

	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	expired := false
	for _, it := range valid {
		if it.cmd == nil || it.produceErr != nil || it.w == nil {
			continue
		}
		if expired { // collect what already arrived
			select {
			case it.out = <-it.w.ch:
			default:
			}
			continue
		}
		select {
		case it.out = <-it.w.ch:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			expired = true
		}
	}
}
