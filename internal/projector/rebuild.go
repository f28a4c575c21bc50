package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/topology"
)

// Rebuilds and generations.
//
// A rebuild (Replay) reads the events topic (and command-results, when the
// view has a ResultSink) from offset 0 with its own partition consumer —
// not a group — read_committed, into a sink of a NEW generation of a view,
// first up to the high watermarks captured at start, then in catch-up passes
// to newer high watermarks until a pass is small. Its final positions are
// exact: everything before them is applied to the new generation.
//
// The live projector of generation N consumes in group GenerationGroup(…, N).
// The rebuild commits its final positions as that group's offsets before
// readers or live projectors are switched, so a live projector that
// follows the switch (Follower) resumes exactly where the rebuild stopped:
// no event is skipped in the new generation, and the few applied twice are
// ignored by version.

// GenerationGroup is the consumer group of the live projector of generation
// gen of sink: DefaultGroup for generation 0, "<DefaultGroup>-g<gen>" after.
func GenerationGroup(topicPrefix, sinkName string, gen int) string {
	g := DefaultGroup(topicPrefix, sinkName)
	if gen > 0 {
		g += "-g" + strconv.Itoa(gen)
	}
	return g
}

// Positions are the next offsets to read, by topic and partition.
type Positions map[string]map[int32]int64

// ReplayConfig configures a Replay. Zero values mean the documented defaults.
type ReplayConfig struct {
	Kafka config.Kafka
	// Sink receives the events. Required.
	Sink projection.Sink
	// Results, when set, also receives the command-results topic.
	Results ResultSink
	// MaxBatch is the most records applied at once. Default 20000: a
	// replay has no latency to keep, and ClickHouse's cost is mostly per
	// INSERT.
	MaxBatch int
	// SmallLag ends the catch-up: a pass that read at most this many records
	// is the last. Default 500.
	SmallLag int64
	// MaxPasses bounds the catch-up passes after the first. Default 20.
	MaxPasses int
	// Progress, when set, is called after every applied batch with the
	// records read so far and the current target (sum of high watermarks).
	Progress func(done, total int64)
	// Log receives the logs. Default slog.Default().
	Log *slog.Logger
}

// Replay reads topics from offset 0 into a sink, in passes; see Run and
// CatchUp. It is used by one goroutine.
type Replay struct {
	cfg    ReplayConfig
	topics []string
	events string
	cl     *kgo.Client
	adm    *kadm.Client
	pos    Positions
	done   int64
	total  int64

	// Applied counts the events and outcomes applied (redeliveries included).
	Applied int64
	// Skipped counts records that did not decode (tombstones included).
	Skipped int64
}

// NewReplay connects a replay; Close releases it.
func NewReplay(cfg ReplayConfig) (*Replay, error) {
	if cfg.Sink == nil {
		return nil, errors.New("replay: no sink")
	}
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 50000
	}
	if cfg.SmallLag <= 0 {
		cfg.SmallLag = 500
	}
	if cfg.MaxPasses <= 0 {
		cfg.MaxPasses = 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	names := topology.NamesFor(cfg.Kafka.TopicPrefix)
	topics := []string{names.Events}
	if cfg.Results != nil {
		topics = append(topics, names.Results)
	}
	admCl, err := kafkax.NewClient(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	r := &Replay{cfg: cfg, topics: topics, events: names.Events, adm: kadm.NewClient(admCl), pos: Positions{}}
	// Positions begin at the log start offsets: records before them are
	// gone (command-results expire), and a partition whose records all
	// expired must not look unfinished.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := r.adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		admCl.Close()
		return nil, fmt.Errorf("replay: list start offsets: %w", err)
	}
	starts := map[string]map[int32]kgo.Offset{}
	listed.Each(func(o kadm.ListedOffset) {
		if starts[o.Topic] == nil {
			starts[o.Topic] = map[int32]kgo.Offset{}
			r.pos[o.Topic] = map[int32]int64{}
		}
		starts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		r.pos[o.Topic][o.Partition] = max(o.Offset, 0)
	})
	for _, t := range topics {
		if len(starts[t]) == 0 {
			admCl.Close()
			return nil, fmt.Errorf("replay: topic %s has no partitions (does it exist?)", t)
		}
	}
	cl, err := kafkax.NewClient(cfg.Kafka,
		kgo.ConsumePartitions(starts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers advance the positions past the end of every transaction,
		// so a pass ends even when a partition ends with a marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		admCl.Close()
		return nil, err
	}
	r.cl = cl
	return r, nil
}

// Close releases the clients.
func (r *Replay) Close() {
	r.cl.Close()
	r.adm.Close()
}

// Positions returns a copy of the positions reached: every record before
// them is applied.
func (r *Replay) Positions() Positions {
	out := Positions{}
	for t, parts := range r.pos {
		out[t] = map[int32]int64{}
		for p, o := range parts {
			out[t][p] = o
		}
	}
	return out
}

// ends lists the high watermarks (not the last stable offsets: an open
// transaction must not end a pass early; ARCHITECTURE.md, Known pitfalls).
func (r *Replay) ends(ctx context.Context) (map[string]map[int32]int64, error) {
	listed, err := r.adm.ListEndOffsets(ctx, r.topics...)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("replay: list end offsets: %w", err)
	}
	out := map[string]map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = max(o.Offset, 0)
	})
	for _, t := range r.topics {
		if len(out[t]) == 0 {
			return nil, fmt.Errorf("replay: topic %s has no partitions (does it exist?)", t)
		}
	}
	return out, nil
}

// Run replays to the high watermarks captured when it starts, then catches
// up in passes until one reads at most SmallLag records (or MaxPasses).
func (r *Replay) Run(ctx context.Context) error {
	if _, err := r.CatchUp(ctx); err != nil {
		return err
	}
	for i := 0; i < r.cfg.MaxPasses; i++ {
		n, err := r.CatchUp(ctx)
		if err != nil {
			return err
		}
		r.cfg.Log.Info("replay catch-up pass", "pass", i+1, "records", n)
		if n <= r.cfg.SmallLag {
			return nil
		}
	}
	return nil
}

// CatchUp is one pass: it captures the high watermarks and applies every
// committed record up to them (and whatever the fetches bring beyond), and
// returns how many records (markers included) it read.
func (r *Replay) CatchUp(ctx context.Context) (int64, error) {
	target, err := r.ends(ctx)
	if err != nil {
		return 0, err
	}
	r.total = 0
	for _, parts := range target {
		for _, o := range parts {
			r.total += o
		}
	}
	behind := func() bool {
		for t, parts := range target {
			for p, end := range parts {
				if r.pos[t][p] < end {
					return true
				}
			}
		}
		return false
	}
	var read int64
	for behind() {
		fs := r.cl.PollRecords(ctx, r.cfg.MaxBatch)
		if err := ctx.Err(); err != nil {
			return read, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return read, fmt.Errorf("replay: %w", ferr)
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := r.apply(ctx, recs); err != nil {
			return read, err
		}
		for _, rec := range recs {
			if rec.Offset+1 > r.pos[rec.Topic][rec.Partition] {
				read += rec.Offset + 1 - r.pos[rec.Topic][rec.Partition]
				r.pos[rec.Topic][rec.Partition] = rec.Offset + 1
			}
		}
		r.done = 0
		for _, parts := range r.pos {
			for _, o := range parts {
				r.done += o
			}
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(r.done, max(r.total, r.done))
		}
	}
	return read, nil
}

// apply decodes recs and applies them, retrying with backoff while the
// store fails (the sinks are idempotent) until ctx ends.
func (r *Replay) apply(ctx context.Context, recs []*kgo.Record) error {
	var events []projection.Event
	var outcomes []projection.Outcome
	for _, rec := range recs {
		e, o, err := decodeRecord(rec, r.events)
		switch {
		case err != nil:
			r.Skipped++
		case e != nil:
			events = append(events, *e)
		case o != nil:
			outcomes = append(outcomes, *o)
		}
	}
	wait := 100 * time.Millisecond
	for {
		err := apply(ctx, r.cfg.Sink, r.cfg.Results, events, outcomes)
		if err == nil {
			r.Applied += int64(len(events) + len(outcomes))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		r.cfg.Log.Warn("replay: apply failed, retrying", "err", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
