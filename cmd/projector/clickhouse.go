package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projector"
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

// read returns the generation and state in force, and how long ago (server
// clock) that row was written.
func (m marker) read(ctx context.Context) (gen int, state string, age time.Duration, err error) {
	rows, err := m.conn.Query(ctx, "SELECT generation, state, toUInt32(now()) - toUInt32(at) FROM "+m.table()+" ORDER BY seq DESC LIMIT 1")
	if err != nil {
		return 0, "", 0, fmt.Errorf("clickhouse: read %s: %w", m.table(), err)
	}
	defer rows.Close()
	gen, state = 0, stateCurrent
	if rows.Next() {
		var g uint32
		var secs int64
		if err := rows.Scan(&g, &state, &secs); err != nil {
			return 0, "", 0, fmt.Errorf("clickhouse: read %s: %w", m.table(), err)
		}
		gen, age = int(g), time.Duration(secs)*time.Second
	}
	return gen, state, age, rows.Err()
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

// settleSwitch records where an interrupted switch to gen stands, read off
// the tables: gen's tables not renamed yet means the old generation (gen-1)
// is still the live one; renamed means gen is (its group's offsets were
// committed before the rename). It returns the generation now current.
func settleSwitch(ctx context.Context, conn driver.Conn, m marker, opts chsink.Options, gen int) (int, error) {
	swapped, err := chsink.Swapped(ctx, conn, opts, gen)
	if err != nil {
		return 0, err
	}
	cur := gen - 1
	if swapped {
		cur = gen
	}
	if err := m.write(ctx, cur, stateCurrent); err != nil {
		return 0, err
	}
	return cur, nil
}

// chLock is the ClickHouse view's rebuild lock: the table
// projector_rebuild_lock exists while a rebuild holds it. CREATE TABLE is
// atomic, so of two rebuilds creating it one wins. Its first row (lowest
// seq) names the owner; the owner adds a row per renewal, stamped with the
// server's now(). A lock not renewed for lockLease is dropped and taken
// over; two rebuilds taking over one dead lock in the same instant could
// both succeed (the drop of one may hit the other's fresh lock).
type chLock struct {
	conn driver.Conn
	db   string
}

const lockTable = "projector_rebuild_lock"

func (l chLock) table() string { return l.db + "." + lockTable }

// errTableExists and errNoTable are ClickHouse's TABLE_ALREADY_EXISTS and
// UNKNOWN_TABLE.
const (
	errTableExists = 57
	errNoTable     = 60
)

func isCode(err error, code int32) bool {
	var e *clickhouse.Exception
	return errors.As(err, &e) && e.Code == code
}

// holder returns the lock's owner and how long ago (server clock) it was
// last renewed; held is false when there is no lock. A lock table without
// rows (being created) counts as renewed when it was created.
func (l chLock) holder(ctx context.Context) (owner string, age time.Duration, held bool, err error) {
	var created int64
	err = l.conn.QueryRow(ctx, "SELECT toUInt32(now()) - toUInt32(metadata_modification_time) FROM system.tables WHERE database = ? AND name = ?",
		l.db, lockTable).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("clickhouse: read %s: %w", l.table(), err)
	}
	var since int64
	var rows uint64
	err = l.conn.QueryRow(ctx, "SELECT argMin(owner, seq), toUInt32(now()) - toUInt32(max(at)), count() FROM "+l.table()).Scan(&owner, &since, &rows)
	switch {
	case isCode(err, errNoTable):
		return "", 0, false, nil
	case err != nil:
		return "", 0, false, fmt.Errorf("clickhouse: read %s: %w", l.table(), err)
	case rows == 0:
		return "", time.Duration(created) * time.Second, true, nil
	}
	return owner, time.Duration(since) * time.Second, true, nil
}

// alive reports whether a rebuild holds the lock and renewed it within
// lockLease.
func (l chLock) alive(ctx context.Context) (bool, error) {
	_, age, held, err := l.holder(ctx)
	return held && age < lockLease, err
}

func (l chLock) acquire(ctx context.Context, owner string) error {
	for range 3 {
		err := l.conn.Exec(ctx, "CREATE TABLE "+l.table()+" ENGINE = MergeTree ORDER BY seq AS SELECT toString(?) AS owner, toUInt64(?) AS seq, now() AS at",
			owner, uint64(time.Now().UnixNano()))
		if err == nil {
			return nil
		}
		if !isCode(err, errTableExists) {
			return fmt.Errorf("clickhouse: create %s: %w", l.table(), err)
		}
		holder, age, held, err := l.holder(ctx)
		if err != nil {
			return err
		}
		if held && age < lockLease {
			if holder == "" {
				holder = "a rebuild starting"
			}
			return fmt.Errorf("another rebuild of the clickhouse view is running: %s holds %s, renewed %s ago", holder, l.table(), age)
		}
		if held {
			// Its holder stopped renewing it: take it over.
			if err := l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+l.table()); err != nil {
				return fmt.Errorf("clickhouse: drop the lapsed %s of %s: %w", l.table(), holder, err)
			}
		}
	}
	return fmt.Errorf("clickhouse: could not take %s: it kept changing hands", l.table())
}

func (l chLock) renew(ctx context.Context, owner string) error {
	holder, _, held, err := l.holder(ctx)
	if err != nil {
		return err
	}
	if !held || holder != owner {
		return errLockLost
	}
	if err := l.conn.Exec(ctx, "INSERT INTO "+l.table()+" SELECT toString(?), toUInt64(?), now()", owner, uint64(time.Now().UnixNano())); err != nil {
		return fmt.Errorf("clickhouse: renew %s: %w", l.table(), err)
	}
	return nil
}

func (l chLock) release(ctx context.Context, owner string) error {
	holder, _, held, err := l.holder(ctx)
	if err != nil || !held || holder != owner {
		return err
	}
	if err := l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+l.table()); err != nil {
		return fmt.Errorf("clickhouse: drop %s: %w", l.table(), err)
	}
	return nil
}

// watchGeneration is the live projectors' view of the marker. While a
// rebuild switches they pause; if the rebuild died in the switch (its lock
// lapsed), they settle the switch from the tables and go on. A switch is
// only settled once it is lockLease old as well, which also covers a
// rebuild from before the locks, which takes none (its switch lasts a
// second or two).
func watchGeneration(conn driver.Conn, m marker, opts chsink.Options, log *slog.Logger) func(context.Context) (projector.Generation, error) {
	lk := chLock{conn, m.db}
	return func(ctx context.Context) (projector.Generation, error) {
		gen, state, age, err := m.read(ctx)
		if err != nil || state != stateSwitching {
			return projector.Generation{Gen: gen}, err
		}
		paused := projector.Generation{Gen: gen, Paused: true}
		if age < lockLease {
			return paused, nil
		}
		alive, err := lk.alive(ctx)
		if err != nil {
			log.Warn("cannot tell whether the switching rebuild is alive; staying paused", "err", err)
			return paused, nil
		}
		if alive {
			return paused, nil
		}
		cur, err := settleSwitch(ctx, conn, m, opts, gen)
		if err != nil {
			log.Error("the rebuild switching to this generation is gone, and its switch cannot be settled; staying paused", "generation", gen, "err", err)
			return paused, nil
		}
		log.Warn("the rebuild switching generations is gone (its lock lapsed); switch settled from the tables", "switching_to", gen, "current", cur)
		return projector.Generation{Gen: cur}, nil
	}
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
		Watch: watchGeneration(conn, m, opts, log),
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
	opts := chsink.Options{Database: r.ch.Database, Cluster: r.ch.Cluster}
	outer := ctx
	lock, ctx, err := takeLock(ctx, chLock{conn, r.ch.Database}, r.log.With("view", "clickhouse"))
	if err != nil {
		return err
	}
	defer lock.release(context.WithoutCancel(outer))
	old, state, _, err := m.read(ctx)
	if err != nil {
		return err
	}
	if state == stateSwitching {
		// This rebuild holds the lock, so the one that was switching is gone.
		cur, err := settleSwitch(ctx, conn, m, opts, old)
		if err != nil {
			return fmt.Errorf("an earlier rebuild stopped while switching to generation %d: %w", old, err)
		}
		r.log.Warn("an earlier rebuild stopped while switching generations; settled from the tables", "switching_to", old, "current", cur)
		old = cur
	}
	gen := old + 1
	log := r.log.With("view", "clickhouse", "generation", gen)
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
	// the RENAME. From here on, a failure settles the switch from the
	// tables (renamed or not) and so un-pauses them; if even that fails,
	// they settle it themselves once this rebuild's lock lapses. A rebuild
	// that lost its lock settles nothing: the marker is no longer its own.
	if err := m.write(ctx, gen, stateSwitching); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if lerr := lock.check(); lerr != nil {
			log.Error("switch abandoned without the lock; the live projectors settle it when the lock lapses", "err", lerr)
			return
		}
		cur, serr := settleSwitch(context.WithoutCancel(outer), conn, m, opts, gen)
		if serr != nil {
			log.Error("could not settle the switch; the live projectors settle it when the lock lapses", "err", serr)
			return
		}
		log.Warn("switch abandoned; live projectors resume", "current", cur)
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
	if err := lock.check(); err != nil {
		return fmt.Errorf("not switching: %w", err)
	}
	if err := chsink.Swap(ctx, conn, opts, gen); err != nil {
		return err
	}
	if err := m.write(ctx, gen, stateCurrent); err != nil {
		return fmt.Errorf("tables swapped, but %w", err)
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
