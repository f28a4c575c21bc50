package chsink

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/rebuild"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestWatchSettlesAbandonedSwitch: the live projectors stay paused while
// the switching rebuild holds its lock; once the lock is gone they settle
// the switch from the tables: not renamed → the old generation, renamed →
// the new one, partly renamed → stay paused.
func TestWatchSettlesAbandonedSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, db := testenv.ClickHouseDB(t)
	opts := Options{Database: db}
	m := NewMarker(conn, Options{Database: db})
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	migrate := func(gen int) {
		o := opts
		o.Generation = gen
		if err := Migrate(ctx, conn, o); err != nil {
			t.Fatal(err)
		}
	}
	migrate(0)
	migrate(1)
	watch := WatchGeneration(conn, m, opts, slog.New(slog.DiscardHandler))
	type generation struct {
		Gen    int
		Paused bool
	}
	expect := func(step string, want generation, wantState string) {
		t.Helper()
		gen, paused, err := watch(ctx)
		if got := (generation{gen, paused}); err != nil || got != want {
			t.Fatalf("%s: watch %+v %v, want %+v", step, got, err, want)
		}
		if gen, state, _, err := m.Read(ctx); err != nil || gen != want.Gen || state != wantState {
			t.Fatalf("%s: marker (%d, %s) %v, want (%d, %s)", step, gen, state, err, want.Gen, wantState)
		}
	}

	if err := m.Write(ctx, 1, StateSwitching); err != nil {
		t.Fatal(err)
	}
	expect("switching for less than the lease, no lock (a rebuild of before the locks)", generation{Gen: 1, Paused: true}, StateSwitching)
	lk := NewRebuildLock(conn, db)
	if err := lk.Acquire(ctx, "rebuild-1"); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, m, 1, StateSwitching)
	expect("switching, rebuild alive", generation{Gen: 1, Paused: true}, StateSwitching)
	if err := lk.Release(ctx, "rebuild-1"); err != nil {
		t.Fatal(err)
	}
	expect("rebuild gone before the rename", generation{Gen: 0}, StateCurrent)

	write(t, ctx, m, 1, StateSwitching)
	if err := Swap(ctx, conn, opts, 1); err != nil {
		t.Fatal(err)
	}
	expect("rebuild gone after the rename", generation{Gen: 1}, StateCurrent)

	migrate(2)
	events, _, _ := TableNames(2)
	if err := conn.Exec(ctx, "DROP TABLE "+db+"."+events); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, m, 2, StateSwitching)
	expect("partly renamed", generation{Gen: 2, Paused: true}, StateSwitching)
}

// write records (gen, state) in the marker as written rebuild.Lease ago.
func write(t *testing.T, ctx context.Context, m Marker, gen int, state string) {
	t.Helper()
	q := "INSERT INTO " + m.table() + " SELECT toUInt64(?), toUInt32(?), toString(?), now() - " + strconv.Itoa(int(rebuild.Lease.Seconds()))
	if err := m.conn.Exec(ctx, q, uint64(time.Now().UnixNano()), gen, state); err != nil {
		t.Fatal(err)
	}
}
