package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projector"
	chsink "github.com/cqrs-ledger/ledger/internal/sink/clickhouse"
)

// The live ClickHouse generation is recorded in a small table, because the
// tables themselves carry no generation after a swap:
//
//	projector_generation(seq, generation, state)   the newest row (highest seq) is in force
//
// state "current": the live tables are generation `generation`, projected
// by the group GenerationGroup(…, generation). state "switching": a rebuild
// is promoting `generation`; live projectors stop writing until it is
// "current". No row means generation 0, current.
const (
	markerTable    = "projector_generation"
	stateCurrent   = "current"
	stateSwitching = "switching"
)

type marker struct {
	conn driver.Conn
	db   string
}

func (m marker) table() string { return m.db + "." + markerTable }

func (m marker) ensure(ctx context.Context) error {
	q := "CREATE TABLE IF NOT EXISTS " + m.table() + ` (
    seq UInt64,
    generation UInt32,
    state String,
    at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree ORDER BY seq`
	if err := m.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: create %s: %w", m.table(), err)
	}
	return nil
}

func (m marker) read(ctx context.Context) (gen int, state string, err error) {
	rows, err := m.conn.Query(ctx, "SELECT generation, state FROM "+m.table()+" ORDER BY seq DESC LIMIT 1")
	if err != nil {
		return 0, "", fmt.Errorf("clickhouse: read %s: %w", m.table(), err)
	}
	defer rows.Close()
	gen, state = 0, stateCurrent
	if rows.Next() {
		var g uint32
		if err := rows.Scan(&g, &state); err != nil {
			return 0, "", fmt.Errorf("clickhouse: read %s: %w", m.table(), err)
		}
		gen = int(g)
	}
	return gen, state, rows.Err()
}

func (m marker) write(ctx context.Context, gen int, state string) error {
	b, err := m.conn.PrepareBatch(ctx, "INSERT INTO "+m.table()+" (seq, generation, state)")
	if err == nil {
		err = b.Append(uint64(time.Now().UnixNano()), uint32(gen), state)
		if err == nil {
			err = b.Send()
		} else {
			_ = b.Abort()
		}
	}
	if err != nil {
		return fmt.Errorf("clickhouse: write %s: %w", m.table(), err)
	}
	return nil
}

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
func serveClickHouse(ctx context.Context, s *ops.Service, c common, base projector.Config) error {
	if err := chsink.EnsureDatabase(ctx, c.ch); err != nil {
		return err
	}
	conn, err := chsink.Open(c.ch)
	if err != nil {
		return err
	}
	s.OnClose(func() { _ = conn.Close() })
	s.Ready.Add("clickhouse", conn.Ping)
	opts := chsink.Options{Database: c.ch.Database, Cluster: c.ch.Cluster}
	if err := chsink.Migrate(ctx, conn, opts); err != nil {
		return err
	}
	m := marker{conn, c.ch.Database}
	if err := m.ensure(ctx); err != nil {
		return err
	}
	log := s.Log.With("sink", "clickhouse")
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(ctx context.Context) (projector.Generation, error) {
			gen, state, err := m.read(ctx)
			return projector.Generation{Gen: gen, Paused: state == stateSwitching}, err
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
			cfg.Group = projector.GenerationGroup(c.kafka.TopicPrefix, v.Name(), gen)
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

func (r rebuilder) rebuildClickHouse(ctx context.Context) (err error) {
	start := time.Now()
	if err := chsink.EnsureDatabase(ctx, r.ch); err != nil {
		return err
	}
	conn, err := chsink.Open(r.ch)
	if err != nil {
		return err
	}
	defer conn.Close()
	m := marker{conn, r.ch.Database}
	if err := m.ensure(ctx); err != nil {
		return err
	}
	old, state, err := m.read(ctx)
	if err != nil {
		return err
	}
	if state != stateCurrent {
		return fmt.Errorf("clickhouse: generation %d is %q: another rebuild is switching (or one died mid-switch: insert a %q row to recover)", old, state, stateCurrent)
	}
	gen := old + 1
	log := r.log.With("view", "clickhouse", "generation", gen)
	opts := chsink.Options{Database: r.ch.Database, Cluster: r.ch.Cluster}
	if err := chsink.Migrate(ctx, conn, opts); err != nil {
		return err
	}
	next := opts
	next.Generation = gen
	// Leftovers of an interrupted rebuild of the same generation go first.
	events, balances, volume := chsink.TableNames(gen)
	for _, t := range []string{chsink.VolumeView + "_g" + strconv.Itoa(gen), events, balances, volume} {
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+r.ch.Database+"."+t); err != nil {
			return fmt.Errorf("clickhouse: drop leftover %s: %w", t, err)
		}
	}
	if err := chsink.Migrate(ctx, conn, next); err != nil {
		return err
	}
	v, err := chsink.NewView(conn, next)
	if err != nil {
		return err
	}
	progress, finish := r.bar("clickhouse")
	rp, err := projector.NewReplay(projector.ReplayConfig{Kafka: r.kafka, Sink: v, Progress: progress, Log: log})
	if err != nil {
		return err
	}
	defer rp.Close()
	log.Info("replaying", "from_generation", old, "tables", events)
	err = rp.Run(ctx)
	finish()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}

	// Pause the live projectors: nothing may write the live names across
	// the RENAME. From here on, any failure un-pauses the old generation.
	if err := m.write(ctx, gen, stateSwitching); err != nil {
		return err
	}
	swapped := false
	defer func() {
		if err != nil && !swapped {
			if uerr := m.write(context.WithoutCancel(ctx), old, stateCurrent); uerr != nil {
				log.Error("could not un-pause the live projectors", "err", uerr)
			}
		}
	}()
	oldGroup := projector.GenerationGroup(r.kafka.TopicPrefix, v.Name(), old)
	newGroup := projector.GenerationGroup(r.kafka.TopicPrefix, v.Name(), gen)
	if err := projector.WaitGroupEmpty(ctx, r.kafka, oldGroup, r.switchTimeout); err != nil {
		return fmt.Errorf("live projectors did not pause: %w", err)
	}
	pauseAt := time.Now()
	n, err := rp.CatchUp(ctx)
	if err != nil {
		return fmt.Errorf("final catch-up: %w", err)
	}
	if err := projector.CommitGroupOffsets(ctx, r.kafka, newGroup, rp.Positions()); err != nil {
		return err
	}
	if err := chsink.Swap(ctx, conn, opts, gen); err != nil {
		return err
	}
	swapped = true
	if err := m.write(ctx, gen, stateCurrent); err != nil {
		// The tables are swapped and the offsets committed: only the
		// marker is missing, and retrying it is all that is left.
		return fmt.Errorf("tables swapped, but %w; insert (generation %d, %q) to resume the live projectors", err, gen, stateCurrent)
	}
	if err := projector.DeleteGroup(ctx, r.kafka, oldGroup); err != nil {
		log.Warn("could not delete the old group", "err", err)
	}
	log.Info("rebuild done", "records_applied", rp.Applied, "skipped", rp.Skipped, "final_catch_up", n,
		"writes_paused", time.Since(pauseAt).String(), "took", time.Since(start).String())
	fmt.Printf("clickhouse: generation %d live, %d records applied, old tables dropped, writes paused %s, in %s\n",
		gen, rp.Applied, time.Since(pauseAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}
