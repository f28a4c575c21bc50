package main

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestRebuildLocks: each view's lock against its real store. One owner at
// a time; another is refused with the holder's name; only the owner renews
// or releases; a lock not renewed for lockLease is taken over; of many
// concurrent takers exactly one wins.
func TestRebuildLocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	conn, db := testenv.ClickHouseDB(t)
	chl := chLock{conn, db}
	for _, c := range []struct {
		name  string
		store lockStore
		// lapse makes owner's lock look unrenewed for longer than lockLease.
		lapse func(owner string)
	}{
		{"redis", newRedisLock(rdb, prefix), func(string) {
			if err := rdb.PExpire(ctx, prefix+"rebuild-lock", time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}},
		{"clickhouse", chl, func(owner string) {
			for _, q := range []string{
				"DROP TABLE " + chl.table(),
				"CREATE TABLE " + chl.table() + " ENGINE = MergeTree ORDER BY seq AS SELECT '" + owner + "' AS owner, toUInt64(1) AS seq, now() - 60 AS at",
			} {
				if err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.store
			if err := s.acquire(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if err := s.acquire(ctx, "b"); err == nil || !strings.Contains(err.Error(), "another rebuild") || !strings.Contains(err.Error(), "a holds") {
				t.Fatalf("second taker: %v, want refused naming a", err)
			}
			if err := s.renew(ctx, "a"); err != nil {
				t.Fatalf("owner renews: %v", err)
			}
			if err := s.renew(ctx, "b"); !errors.Is(err, errLockLost) {
				t.Fatalf("non-owner renews: %v, want errLockLost", err)
			}
			if err := s.release(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if err := s.acquire(ctx, "c"); err == nil {
				t.Fatal("a non-owner's release freed the lock")
			}
			c.lapse("a")
			if err := s.acquire(ctx, "b"); err != nil {
				t.Fatalf("taking over a lapsed lock: %v", err)
			}
			if err := s.renew(ctx, "a"); !errors.Is(err, errLockLost) {
				t.Fatalf("the lapsed owner renews: %v, want errLockLost", err)
			}
			if err := s.release(ctx, "b"); err != nil {
				t.Fatal(err)
			}

			var wg sync.WaitGroup
			var mu sync.Mutex
			var won []string
			for _, o := range []string{"p", "q", "r", "s", "t", "u"} {
				wg.Go(func() {
					if err := s.acquire(ctx, o); err == nil {
						mu.Lock()
						won = append(won, o)
						mu.Unlock()
					} else if !strings.Contains(err.Error(), "another rebuild") {
						t.Errorf("%s: %v", o, err)
					}
				})
			}
			wg.Wait()
			if len(won) != 1 {
				t.Fatalf("concurrent takers that won: %v, want exactly one", won)
			}
			if err := s.release(ctx, won[0]); err != nil {
				t.Fatal(err)
			}
			if err := s.acquire(ctx, "v"); err != nil {
				t.Fatalf("after release: %v", err)
			}
		})
	}
}

// TestHeldLockLost: a held lock taken over by another owner cancels the
// holder's context with errLockLost, fails check, and is not released by
// the former holder.
func TestHeldLockLost(t *testing.T) {
	defer func(d time.Duration) { lockRenew = d }(lockRenew)
	lockRenew = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	store := newRedisLock(rdb, prefix)
	h, lctx, err := takeLock(ctx, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * lockRenew) // renewals go on
	if err := h.check(); err != nil || lctx.Err() != nil {
		t.Fatalf("held lock: check %v, ctx %v", err, lctx.Err())
	}
	if err := rdb.Set(ctx, store.key, "intruder", lockLease).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lctx.Done():
	case <-ctx.Done():
		t.Fatal("the holder did not notice the takeover")
	}
	if !errors.Is(context.Cause(lctx), errLockLost) || !errors.Is(h.check(), errLockLost) {
		t.Fatalf("cause %v, check %v; want errLockLost", context.Cause(lctx), h.check())
	}
	h.release(ctx)
	if v, err := rdb.Get(ctx, store.key).Result(); err != nil || v != "intruder" {
		t.Fatalf("lock after the former holder's release: %q %v, want intruder's", v, err)
	}
}

// TestWatchSettlesAbandonedSwitch: the live projectors stay paused while
// the switching rebuild holds its lock; once the lock is gone they settle
// the switch from the tables: not renamed → the old generation, renamed →
// the new one, partly renamed → stay paused.
func TestWatchSettlesAbandonedSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, db := testenv.ClickHouseDB(t)
	opts := chsink.Options{Database: db}
	m := marker{conn, db}
	if err := m.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	migrate := func(gen int) {
		o := opts
		o.Generation = gen
		if err := chsink.Migrate(ctx, conn, o); err != nil {
			t.Fatal(err)
		}
	}
	migrate(0)
	migrate(1)
	watch := watchGeneration(conn, m, opts, slog.New(slog.DiscardHandler))
	expect := func(step string, want projector.Generation, wantState string) {
		t.Helper()
		got, err := watch(ctx)
		if err != nil || got != want {
			t.Fatalf("%s: watch %+v %v, want %+v", step, got, err, want)
		}
		if gen, state, _, err := m.read(ctx); err != nil || gen != want.Gen || state != wantState {
			t.Fatalf("%s: marker (%d, %s) %v, want (%d, %s)", step, gen, state, err, want.Gen, wantState)
		}
	}

	if err := m.write(ctx, 1, stateSwitching); err != nil {
		t.Fatal(err)
	}
	expect("switching for less than the lease, no lock (a rebuild of before the locks)", projector.Generation{Gen: 1, Paused: true}, stateSwitching)
	lk := chLock{conn, db}
	if err := lk.acquire(ctx, "rebuild-1"); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, m, 1, stateSwitching)
	expect("switching, rebuild alive", projector.Generation{Gen: 1, Paused: true}, stateSwitching)
	if err := lk.release(ctx, "rebuild-1"); err != nil {
		t.Fatal(err)
	}
	expect("rebuild gone before the rename", projector.Generation{Gen: 0}, stateCurrent)

	write(t, ctx, m, 1, stateSwitching)
	if err := chsink.Swap(ctx, conn, opts, 1); err != nil {
		t.Fatal(err)
	}
	expect("rebuild gone after the rename", projector.Generation{Gen: 1}, stateCurrent)

	migrate(2)
	events, _, _ := chsink.TableNames(2)
	if err := conn.Exec(ctx, "DROP TABLE "+db+"."+events); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, m, 2, stateSwitching)
	expect("partly renamed", projector.Generation{Gen: 2, Paused: true}, stateSwitching)
}

// write records (gen, state) in the marker as written lockLease ago.
func write(t *testing.T, ctx context.Context, m marker, gen int, state string) {
	t.Helper()
	q := "INSERT INTO " + m.table() + " SELECT toUInt64(?), toUInt32(?), toString(?), now() - " + strconv.Itoa(int(lockLease.Seconds()))
	if err := m.conn.Exec(ctx, q, uint64(time.Now().UnixNano()), gen, state); err != nil {
		t.Fatal(err)
	}
}
