package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Generation is what a live projector should do: project generation Gen,
// or, while Paused, nothing (a rebuild is about to promote Gen and needs
// the live group empty; see cmd/projector).
type Generation struct {
	Gen    int
	Paused bool
}

// FollowConfig configures a Follower.
type FollowConfig struct {
	// Watch reads the current Generation; it is polled every Interval. An
	// error keeps the running projector as it is. Required.
	Watch func(ctx context.Context) (Generation, error)
	// Build returns the projector configuration of generation gen (its sink
	// writing that generation, its group GenerationGroup(…, gen)). The
	// Registerer set there is replaced by the Follower's. Required.
	Build func(ctx context.Context, gen int) (Config, error)
	// Interval between Watch calls. Default 1s.
	Interval time.Duration
	// MaxPause is how long a pause may last before Ready reports it: a
	// switch normally pauses writes for about a second, one whose rebuild
	// died is settled after the rebuild lock lapses, and one that lasts
	// longer needs a person. Default 2 min.
	MaxPause time.Duration
	// Registerer receives the metrics of the running projector; they are
	// unregistered when it stops.
	Registerer prometheus.Registerer
	// Log receives the logs. Default slog.Default().
	Log *slog.Logger
}

// Follower runs the live projector of the current generation and, when a
// rebuild switches generations, stops it (leaving its group) and starts
// the projector of the new one, whose group offsets the rebuild committed.
type Follower struct {
	cfg FollowConfig

	mu          sync.Mutex
	cur         *Projector
	state       Generation
	known       bool
	reason      error
	pausedSince time.Time // when state became paused
}

// NewFollower returns a follower; Run starts it.
func NewFollower(cfg FollowConfig) (*Follower, error) {
	if cfg.Watch == nil || cfg.Build == nil {
		return nil, errors.New("follower: Watch and Build are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = 2 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Follower{cfg: cfg, reason: errors.New("starting")}, nil
}

// Ready is the running projector's Ready; while paused for a switch it is
// nil for up to MaxPause, and before the first generation is known it is an
// error.
func (f *Follower) Ready(ctx context.Context) error {
	f.mu.Lock()
	p, st, reason, since := f.cur, f.state, f.reason, f.pausedSince
	f.mu.Unlock()
	switch {
	case p != nil:
		return p.Ready(ctx)
	case reason != nil:
		return reason
	case st.Paused:
		if d := time.Since(since); d > f.cfg.MaxPause {
			return fmt.Errorf("writes paused for %s by a switch to generation %d that has not ended (see the logs)", d.Round(time.Second), st.Gen)
		}
		return nil
	}
	return errors.New("no projector running")
}

// Generation returns the generation being followed.
func (f *Follower) Generation() Generation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *Follower) set(p *Projector, st Generation, reason error) {
	f.mu.Lock()
	if st.Paused && (!f.state.Paused || f.pausedSince.IsZero()) {
		f.pausedSince = time.Now()
	}
	f.cur, f.state, f.reason = p, st, reason
	f.mu.Unlock()
}

// Run follows the generations until ctx ends. Only a projector that ends
// with an error (its client closed) ends it early.
func (f *Follower) Run(ctx context.Context) error {
	tick := time.NewTicker(f.cfg.Interval)
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		}
	}
	var st Generation
	for {
		var err error
		st, err = f.cfg.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.cfg.Log.Warn("cannot read the view generation; retrying", "err", err)
			f.set(nil, st, fmt.Errorf("view generation unknown: %w", err))
			if !wait() {
				return nil
			}
			continue
		}
		if st.Paused {
			f.cfg.Log.Info("paused: a rebuild is switching generations", "generation", st.Gen)
			f.set(nil, st, nil)
			if !wait() {
				return nil
			}
			continue
		}
		next, err := f.runGeneration(ctx, st, tick)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		f.cfg.Log.Info("view generation changed", "from", st.Gen, "to", next.Gen, "paused", next.Paused)
	}
}

// runGeneration runs the projector of st until Watch reports another
// generation (returned) or ctx ends.
func (f *Follower) runGeneration(ctx context.Context, st Generation, tick *time.Ticker) (Generation, error) {
	cfg, err := f.cfg.Build(ctx, st.Gen)
	if err != nil {
		return st, fmt.Errorf("generation %d: %w", st.Gen, err)
	}
	reg := &trackingRegisterer{Registerer: f.cfg.Registerer}
	if f.cfg.Registerer == nil {
		reg = nil
	}
	if reg != nil {
		cfg.Registerer = reg
	} else {
		cfg.Registerer = nil
	}
	p, err := New(cfg)
	if err != nil {
		return st, fmt.Errorf("generation %d: %w", st.Gen, err)
	}
	defer reg.unregisterAll()
	f.cfg.Log.Info("projecting generation", "generation", st.Gen, "group", p.Group())
	f.set(p, st, nil)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	for {
		select {
		case err := <-done:
			if ctx.Err() == nil {
				if err == nil {
					err = errors.New("projector stopped")
				}
				return st, err
			}
			return st, nil
		case <-ctx.Done():
			<-done
			return st, nil
		case <-tick.C:
		}
		next, err := f.cfg.Watch(ctx)
		if err != nil || next == st {
			continue
		}
		// Leave the group (finishing or dropping the open batch) before the
		// rebuild or the next generation's projector goes on.
		cancel()
		if err := <-done; err != nil {
			f.cfg.Log.Warn("projector of the previous generation ended with an error", "err", err)
		}
		f.set(nil, next, nil)
		return next, nil
	}
}

// trackingRegisterer remembers what it registered, so a stopped projector's
// metrics can be unregistered and its successor's registered under the
// same names.
type trackingRegisterer struct {
	prometheus.Registerer
	mu   sync.Mutex
	regs []prometheus.Collector
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.Registerer.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.regs = append(t.regs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) unregisterAll() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.regs {
		t.Registerer.Unregister(c)
	}
	t.regs = nil
}
