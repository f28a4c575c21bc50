package main

import (
	"context"
	"sync/atomic"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/cli"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projector"
)

// resettingView drops the View's cache before the first Apply after an
// assignment: another instance may have written the tables meanwhile.
// OnAssigned runs on the client's group goroutine, Apply on the
// projector's, so the flag is all they share.
type resettingView struct {
	*chsink.View
	stale atomic.Bool
}

func (v *resettingView) Apply(ctx context.Context, b []projection.Event) error {
	if v.stale.Swap(false) {
		v.Reset()
	}
	return v.View.Apply(ctx, b)
}

// serveClickHouse runs the ClickHouse projector of the live generation,
// pausing while a rebuild swaps tables.
func serveClickHouse(ctx context.Context, s *ops.Service, c cli.ProjectorFlags, base projector.Config) error {
	if err := chsink.EnsureDatabase(ctx, c.ClickHouse); err != nil {
		return err
	}
	conn, err := chsink.Open(c.ClickHouse)
	if err != nil {
		return err
	}
	s.OnClose(func() { _ = conn.Close() })
	s.Ready.Add("clickhouse", conn.Ping)
	opts := chsink.OptionsFor(c.ClickHouse)
	if err := chsink.Migrate(ctx, conn, opts); err != nil {
		return err
	}
	m := chsink.NewMarker(conn, opts)
	if err := m.Ensure(ctx); err != nil {
		return err
	}
	log := s.Log.With("sink", "clickhouse")
	watch := chsink.WatchGeneration(conn, m, opts, log)
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(ctx context.Context) (projector.Generation, error) {
			gen, paused, err := watch(ctx)
			return projector.Generation{Gen: gen, Paused: paused}, err
		},
		Build: func(ctx context.Context, gen int) (projector.Config, error) {
			// After a swap the live names hold the new tables; a new View has
			// no cached state of the old ones.
			if err := chsink.Migrate(ctx, conn, opts); err != nil {
				return projector.Config{}, err
			}
			v, err := chsink.NewView(conn, opts)
			if err != nil {
				return projector.Config{}, err
			}
			rv := &resettingView{View: v}
			cfg := base
			cfg.Group = projector.GenerationGroup(c.Kafka.TopicPrefix, v.Name(), gen)
			cfg.Sink, cfg.Log = rv, log
			cfg.OnAssigned = func() { rv.stale.Store(true) }
			return cfg, nil
		},
		Registerer: s.Registry,
		Log:        log,
	})
	if err != nil {
		return err
	}
	s.Ready.Add("projector-clickhouse", f.Ready)
	s.Go("projector-clickhouse", f.Run)
	return nil
}
