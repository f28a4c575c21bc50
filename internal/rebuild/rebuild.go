// Package rebuild replays the events topic from the beginning into a fresh
// generation of a view and switches readers and the live projectors to it,
// while the live projection keeps serving:
//
//		lock → replay → pause → catch up → switch → clean
//
//	  - lock: the view's rebuild lock (a lease, lock.go) is held from start to
//	    end, so two rebuilds of a view never interleave.
//	  - replay: the next generation is prepared empty (leftovers of an
//	    interrupted attempt dropped) and the events (and, for a view that
//	    applies them, the command outcomes) are replayed into it from offset
//	    0 with a partition consumer of the rebuild's own (projector.Replay), to
//	    the high watermarks at start, then in catch-up passes.
//	  - pause: a view whose switch must not race live writes asks the live
//	    projectors to stop writing and waits until the old generation's group
//	    is empty (ClickHouse: a RENAME of the live tables). A view whose
//	    generations live side by side does not pause (Redis: the live
//	    projector moves to the new group by itself).
//	  - catch up: the last records, then the positions become the committed
//	    offsets of the new generation's live group, so that it starts exactly
//	    where the replay stopped.
//	  - switch: readers and live projectors move to the new generation, only
//	    while the lock is surely held.
//	  - clean: once the old group is empty, the old generation's data and its
//	    group go.
//
// A failure after the pause and before the switch abandons it (the view
// settles it: the live projectors resume with the generation in force);
// a rebuild that lost its lock abandons nothing, because what the view
// records is no longer its own, and the live projectors settle the switch
// themselves once the lock has lapsed.
//
// Each store implements View in its own package (chsink.RebuildView,
// redissink.RebuildView); this package holds the algorithm and the Kafka
// group steps.
package rebuild

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projector"
)

// View is what a rebuild needs of one view's store.
type View interface {
	// Name is the view's name, as in its projector group ("redis", …).
	Name() string
	// Lock is the view's rebuild lock.
	Lock() LockStore
	// Current returns the generation in force. A switch an earlier rebuild
	// left unfinished is settled first (this rebuild holds the lock, so
	// that rebuild is gone).
	Current(ctx context.Context) (int, error)
	// Prepare empties generation gen and returns the sink its replay
	// writes; a sink that is also a projector.ResultSink gets the command
	// outcomes too. where describes it for the output.
	Prepare(ctx context.Context, gen int) (sink projection.Sink, where string, err error)
	// Pauses reports whether the live projectors must stop writing before
	// Switch.
	Pauses() bool
	// Pause asks the live projectors to stop writing until Switch or
	// Abandon.
	Pause(ctx context.Context, gen int) error
	// Switch makes gen the generation readers and live projectors use.
	Switch(ctx context.Context, gen int) error
	// Abandon ends a Pause that no Switch followed; it returns the
	// generation now in force.
	Abandon(ctx context.Context, gen int) (int, error)
	// Clean removes the data of every generation but gen (the old one,
	// and leftovers of rebuilds that could not clean up), once the old
	// generation's group is empty; it describes what it removed.
	Clean(ctx context.Context, gen int) (string, error)
}

// Config configures Run.
type Config struct {
	Kafka config.Kafka
	View  View
	// SwitchTimeout bounds the wait for the live projectors to leave the
	// old generation's group; default 1 minute.
	SwitchTimeout time.Duration
	// Progress, when set, is told how many records of how many the replay
	// has applied; Done is called when the replay ends.
	Progress func(done, total int64)
	Done     func()
	// Log receives the rebuild's logs; default slog.Default().
	Log *slog.Logger
	// Out receives the one-line summary; default os.Stdout.
	Out io.Writer
}

// Run rebuilds cfg.View (see the package documentation).
func Run(ctx context.Context, cfg Config) (err error) {
	start := time.Now()
	if cfg.SwitchTimeout <= 0 {
		cfg.SwitchTimeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	v, name := cfg.View, cfg.View.Name()

	outer := ctx
	lock, ctx, err := Take(ctx, v.Lock(), cfg.Log.With("view", name))
	if err != nil {
		return err
	}
	defer lock.Release(context.WithoutCancel(outer))

	old, err := v.Current(ctx)
	if err != nil {
		return err
	}
	gen := old + 1
	log := cfg.Log.With("view", name, "generation", gen)
	sink, where, err := v.Prepare(ctx, gen)
	if err != nil {
		return err
	}
	rcfg := projector.ReplayConfig{Kafka: cfg.Kafka, Sink: sink, Progress: cfg.Progress, Log: log}
	if rs, ok := sink.(projector.ResultSink); ok {
		rcfg.Results = rs
	}
	rp, err := projector.NewReplay(rcfg)
	if err != nil {
		return err
	}
	defer rp.Close()
	log.Info("replaying", "from_generation", old, "into", where)
	err = rp.Run(ctx)
	if cfg.Done != nil {
		cfg.Done()
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}

	oldGroup := projector.GenerationGroup(cfg.Kafka.TopicPrefix, sink.Name(), old)
	newGroup := projector.GenerationGroup(cfg.Kafka.TopicPrefix, sink.Name(), gen)
	var pauseAt time.Time
	if v.Pauses() {
		if err := v.Pause(ctx, gen); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				return
			}
			if lerr := lock.Check(); lerr != nil {
				log.Error("switch abandoned without the lock; the live projectors settle it when the lock lapses", "err", lerr)
				return
			}
			cur, aerr := v.Abandon(context.WithoutCancel(outer), gen)
			if aerr != nil {
				log.Error("could not settle the switch; the live projectors settle it when the lock lapses", "err", aerr)
				return
			}
			log.Warn("switch abandoned; live projectors resume", "current", cur)
		}()
		if err := kafkax.WaitGroupEmpty(ctx, cfg.Kafka, oldGroup, cfg.SwitchTimeout); err != nil {
			return fmt.Errorf("live projectors did not pause: %w", err)
		}
		pauseAt = time.Now()
	}
	n, err := rp.CatchUp(ctx)
	if err != nil {
		return fmt.Errorf("final catch-up: %w", err)
	}
	if err := kafkax.CommitGroupOffsets(ctx, cfg.Kafka, newGroup, rp.Positions()); err != nil {
		return err
	}
	if err := lock.Check(); err != nil {
		return fmt.Errorf("not switching: %w", err)
	}
	if err := v.Switch(ctx, gen); err != nil {
		return err
	}
	paused := ""
	if !pauseAt.IsZero() {
		paused = time.Since(pauseAt).Round(time.Millisecond).String()
	}
	log.Info("switched", "group", newGroup, "writes_paused", paused)

	if !v.Pauses() {
		// The live projectors leave the old group within a poll interval.
		if err := kafkax.WaitGroupEmpty(ctx, cfg.Kafka, oldGroup, cfg.SwitchTimeout); err != nil {
			log.Warn("old group still has members; deleting the old generation anyway", "err", err)
		}
	}
	removed, err := v.Clean(ctx, gen)
	if err != nil {
		return fmt.Errorf("drop generation %d: %w", old, err)
	}
	if err := kafkax.DeleteGroup(ctx, cfg.Kafka, oldGroup); err != nil {
		log.Warn("could not delete the old group", "err", err)
	}
	log.Info("rebuild done", "records_applied", rp.Applied, "skipped", rp.Skipped, "final_catch_up", n,
		"removed", removed, "took", time.Since(start).String())
	summary := fmt.Sprintf("%s: generation %d live (%s), %d records applied, generation %d dropped (%s)",
		name, gen, where, rp.Applied, old, removed)
	if paused != "" {
		summary += ", writes paused " + paused
	}
	_, _ = fmt.Fprintf(cfg.Out, "%s, in %s\n", summary, time.Since(start).Round(time.Millisecond))
	return nil
}
