package chsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/rebuild"
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
	MarkerTable    = "projector_generation"
	StateCurrent   = "current"
	StateSwitching = "switching"
)

// Marker is the table that records the live generation; see above. On a
// cluster it is replicated to every server (one ZooKeeper path for all
// shards), so each reads the marker any of them wrote.
type Marker struct {
	conn driver.Conn
	db   string
	o    Options
}

// NewMarker is the marker of the views in o.Database (on o.Cluster).
func NewMarker(conn driver.Conn, o Options) Marker { return Marker{conn, o.Database, o} }

func (m Marker) table() string { return m.db + "." + MarkerTable }

// Ensure creates the marker table if needed.
func (m Marker) Ensure(ctx context.Context) error {
	engine := "MergeTree"
	if m.o.Cluster != "" {
		engine = "ReplicatedMergeTree('" + ddl{m.o}.zkPath(MarkerTable, "all") + "', '{replica}')"
	}
	q := "CREATE TABLE IF NOT EXISTS " + m.table() + ddl{m.o}.onCluster() + ` (
    seq UInt64,
    generation UInt32,
    state String,
    at DateTime('UTC') DEFAULT now()
) ENGINE = ` + engine + " ORDER BY seq"
	if err := m.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: create %s: %w", m.table(), err)
	}
	return nil
}

// Read returns the generation and state in force, and how long ago (server
// clock) that row was written.
func (m Marker) Read(ctx context.Context) (gen int, state string, age time.Duration, err error) {
	rows, err := m.conn.Query(ctx, "SELECT generation, state, toUInt32(now()) - toUInt32(at) FROM "+m.table()+" ORDER BY seq DESC LIMIT 1")
	if err != nil {
		return 0, "", 0, fmt.Errorf("clickhouse: read %s: %w", m.table(), err)
	}
	defer rows.Close()
	gen, state = 0, StateCurrent
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

// Write records gen in state.
func (m Marker) Write(ctx context.Context, gen int, state string) error {
	b, err := m.conn.PrepareBatch(m.o.writeContext(ctx), "INSERT INTO "+m.table()+" (seq, generation, state)")
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

// SettleSwitch records where an interrupted switch to gen stands, read off
// the tables: gen's tables not renamed yet means the old generation (gen-1)
// is still the live one; renamed means gen is (its group's offsets were
// committed before the rename). It returns the generation now current.
func SettleSwitch(ctx context.Context, conn driver.Conn, m Marker, opts Options, gen int) (int, error) {
	swapped, err := Swapped(ctx, conn, opts, gen)
	if err != nil {
		return 0, err
	}
	cur := gen - 1
	if swapped {
		cur = gen
	}
	if err := m.Write(ctx, cur, StateCurrent); err != nil {
		return 0, err
	}
	return cur, nil
}

// RebuildLock is the ClickHouse view's rebuild lock: the table
// projector_rebuild_lock exists while a rebuild holds it. CREATE TABLE is
// atomic, so of two rebuilds creating it one wins. Its first row (lowest
// seq) names the owner; the owner adds a row per renewal, stamped with the
// server's now(). A lock not renewed for rebuild.Lease is dropped and taken
// over; two rebuilds taking over one dead lock in the same instant could
// both succeed (the drop of one may hit the other's fresh lock).
type RebuildLock struct {
	conn driver.Conn
	db   string
}

// NewRebuildLock is the lock of the view in database db.
func NewRebuildLock(conn driver.Conn, db string) RebuildLock { return RebuildLock{conn, db} }

// LockTable exists while a rebuild holds the lock.
const LockTable = "projector_rebuild_lock"

func (l RebuildLock) table() string { return l.db + "." + LockTable }

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
func (l RebuildLock) holder(ctx context.Context) (owner string, age time.Duration, held bool, err error) {
	var created int64
	err = l.conn.QueryRow(ctx, "SELECT toUInt32(now()) - toUInt32(metadata_modification_time) FROM system.tables WHERE database = ? AND name = ?",
		l.db, LockTable).Scan(&created)
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

// Alive reports whether a rebuild holds the lock and renewed it within
// rebuild.Lease.
func (l RebuildLock) Alive(ctx context.Context) (bool, error) {
	_, age, held, err := l.holder(ctx)
	return held && age < rebuild.Lease, err
}

// Acquire implements rebuild.LockStore.
func (l RebuildLock) Acquire(ctx context.Context, owner string) error {
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
		if held && age < rebuild.Lease {
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

// Renew implements rebuild.LockStore.
func (l RebuildLock) Renew(ctx context.Context, owner string) error {
	holder, _, held, err := l.holder(ctx)
	if err != nil {
		return err
	}
	if !held || holder != owner {
		return rebuild.ErrLockLost
	}
	if err := l.conn.Exec(ctx, "INSERT INTO "+l.table()+" SELECT toString(?), toUInt64(?), now()", owner, uint64(time.Now().UnixNano())); err != nil {
		return fmt.Errorf("clickhouse: renew %s: %w", l.table(), err)
	}
	return nil
}

// Release implements rebuild.LockStore.
func (l RebuildLock) Release(ctx context.Context, owner string) error {
	holder, _, held, err := l.holder(ctx)
	if err != nil || !held || holder != owner {
		return err
	}
	if err := l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+l.table()); err != nil {
		return fmt.Errorf("clickhouse: drop %s: %w", l.table(), err)
	}
	return nil
}

// WatchGeneration is the live projectors' view of the marker. While a
// rebuild switches they pause; if the rebuild died in the switch (its lock
// lapsed), they settle the switch from the tables and go on. A switch is
// only settled once it is rebuild.Lease old as well, which also covers a
// rebuild from before the locks, which takes none (its switch lasts a
// second or two).
func WatchGeneration(conn driver.Conn, m Marker, opts Options, log *slog.Logger) func(context.Context) (gen int, paused bool, err error) {
	lk := RebuildLock{conn, m.db}
	return func(ctx context.Context) (int, bool, error) {
		gen, state, age, err := m.Read(ctx)
		if err != nil || state != StateSwitching {
			return gen, false, err
		}
		if age < rebuild.Lease {
			return gen, true, nil
		}
		alive, err := lk.Alive(ctx)
		if err != nil {
			log.Warn("cannot tell whether the switching rebuild is alive; staying paused", "err", err)
			return gen, true, nil
		}
		if alive {
			return gen, true, nil
		}
		cur, err := SettleSwitch(ctx, conn, m, opts, gen)
		if err != nil {
			log.Error("the rebuild switching to this generation is gone, and its switch cannot be settled; staying paused", "generation", gen, "err", err)
			return gen, true, nil
		}
		log.Warn("the rebuild switching generations is gone (its lock lapsed); switch settled from the tables", "switching_to", gen, "current", cur)
		return cur, false, nil
	}
}

// RebuildView is the ClickHouse view as package rebuild sees it: a new
// generation is the tables *_g<N>; readers keep using the live names, so
// the switch is Swap (RENAME TABLE), and nothing may write the live names
// across the rename: the live projectors pause (the marker says
// "switching") until the marker says "current" again.
type RebuildView struct {
	conn driver.Conn
	opts Options
	m    Marker
	log  *slog.Logger
}

// NewRebuildView prepares the marker table; opts.Generation is ignored.
func NewRebuildView(ctx context.Context, conn driver.Conn, opts Options, log *slog.Logger) (*RebuildView, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Generation = 0
	m := NewMarker(conn, opts)
	if err := m.Ensure(ctx); err != nil {
		return nil, err
	}
	return &RebuildView{conn: conn, opts: opts, m: m, log: log}, nil
}

// Name implements rebuild.View.
func (v *RebuildView) Name() string { return "clickhouse" }

// Lock implements rebuild.View.
func (v *RebuildView) Lock() rebuild.LockStore { return RebuildLock{v.conn, v.opts.Database} }

// Current implements rebuild.View.
func (v *RebuildView) Current(ctx context.Context) (int, error) {
	gen, state, _, err := v.m.Read(ctx)
	if err != nil || state != StateSwitching {
		return gen, err
	}
	cur, err := SettleSwitch(ctx, v.conn, v.m, v.opts, gen)
	if err != nil {
		return 0, fmt.Errorf("an earlier rebuild stopped while switching to generation %d: %w", gen, err)
	}
	v.log.Warn("an earlier rebuild stopped while switching generations; settled from the tables", "switching_to", gen, "current", cur)
	return cur, nil
}

// Prepare implements rebuild.View: generation gen's tables, new and empty.
func (v *RebuildView) Prepare(ctx context.Context, gen int) (projection.Sink, string, error) {
	if err := Migrate(ctx, v.conn, v.opts); err != nil {
		return nil, "", err
	}
	next := v.opts
	next.Generation = gen
	// Leftovers of an interrupted rebuild of the same generation go first.
	t := tablesOf(gen)
	d := ddl{next.withDefaults()}
	names := []string{t.volumeMV, t.events, t.balances, t.volume}
	if next.Cluster != "" {
		names = append(names, d.local(t.events), d.local(t.balances), d.local(t.volume))
	}
	for _, name := range names {
		if err := v.conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.q(name)+d.onCluster()); err != nil {
			return nil, "", fmt.Errorf("clickhouse: drop leftover %s: %w", name, err)
		}
	}
	if err := Migrate(ctx, v.conn, next); err != nil {
		return nil, "", err
	}
	sink, err := NewView(v.conn, next)
	if err != nil {
		return nil, "", err
	}
	return sink, "tables " + t.events + ", …", nil
}

// Pauses implements rebuild.View: nothing may write the live names across
// the rename.
func (v *RebuildView) Pauses() bool { return true }

// Pause implements rebuild.View.
func (v *RebuildView) Pause(ctx context.Context, gen int) error {
	return v.m.Write(ctx, gen, StateSwitching)
}

// Switch implements rebuild.View: the rename, then the marker.
func (v *RebuildView) Switch(ctx context.Context, gen int) error {
	if err := Swap(ctx, v.conn, v.opts, gen); err != nil {
		return err
	}
	if err := v.m.Write(ctx, gen, StateCurrent); err != nil {
		return fmt.Errorf("tables swapped, but %w", err)
	}
	return nil
}

// Abandon implements rebuild.View: the switch is settled from the tables.
func (v *RebuildView) Abandon(ctx context.Context, gen int) (int, error) {
	return SettleSwitch(ctx, v.conn, v.m, v.opts, gen)
}

// Clean implements rebuild.View: Swap dropped the old tables already.
func (v *RebuildView) Clean(context.Context, int) (string, error) {
	return "old tables dropped by the swap", nil
}
