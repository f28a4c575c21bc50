package rebuild_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/rebuild"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestRebuildLocks: each view's lock against its real store. One owner at
// a time; another is refused with the holder's name; only the owner renews
// or releases; a lock not renewed for rebuild.Lease is taken over; of many
// concurrent takers exactly one wins.
func TestRebuildLocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	conn, db := testenv.ClickHouseDB(t)
	for _, c := range []struct {
		name  string
		store rebuild.LockStore
		// lapse makes owner's lock look unrenewed for longer than rebuild.Lease.
		lapse func(owner string)
	}{
		{"redis", redissink.NewRebuildLock(rdb, prefix), func(string) {
			if err := rdb.PExpire(ctx, prefix+"rebuild-lock", time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}},
		{"clickhouse", chsink.NewRebuildLock(conn, db), func(owner string) {
			table := db + "." + chsink.LockTable
			for _, q := range []string{
				"DROP TABLE " + table,
				"CREATE TABLE " + table + " ENGINE = MergeTree ORDER BY seq AS SELECT '" + owner + "' AS owner, toUInt64(1) AS seq, now() - 60 AS at",
			} {
				if err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.store
			if err := s.Acquire(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if err := s.Acquire(ctx, "b"); err == nil || !strings.Contains(err.Error(), "another rebuild") || !strings.Contains(err.Error(), "a holds") {
				t.Fatalf("second taker: %v, want refused naming a", err)
			}
			if err := s.Renew(ctx, "a"); err != nil {
				t.Fatalf("owner renews: %v", err)
			}
			if err := s.Renew(ctx, "b"); !errors.Is(err, rebuild.ErrLockLost) {
				t.Fatalf("non-owner renews: %v, want rebuild.ErrLockLost", err)
			}
			if err := s.Release(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if err := s.Acquire(ctx, "c"); err == nil {
				t.Fatal("a non-owner's release freed the lock")
			}
			c.lapse("a")
			if err := s.Acquire(ctx, "b"); err != nil {
				t.Fatalf("taking over a lapsed lock: %v", err)
			}
			if err := s.Renew(ctx, "a"); !errors.Is(err, rebuild.ErrLockLost) {
				t.Fatalf("the lapsed owner renews: %v, want rebuild.ErrLockLost", err)
			}
			if err := s.Release(ctx, "b"); err != nil {
				t.Fatal(err)
			}

			var wg sync.WaitGroup
			var mu sync.Mutex
			var won []string
			for _, o := range []string{"p", "q", "r", "s", "t", "u"} {
				wg.Go(func() {
					if err := s.Acquire(ctx, o); err == nil {
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
			if err := s.Release(ctx, won[0]); err != nil {
				t.Fatal(err)
			}
			if err := s.Acquire(ctx, "v"); err != nil {
				t.Fatalf("after release: %v", err)
			}
		})
	}
}

// TestHeldLockLost: a held lock taken over by another owner cancels the
// holder's context with rebuild.ErrLockLost, fails check, and is not released by
// the former holder.
func TestHeldLockLost(t *testing.T) {
	const renew = 20 * time.Millisecond
	defer rebuild.SetRenewEvery(renew)()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	store := redissink.NewRebuildLock(rdb, prefix)
	h, lctx, err := rebuild.Take(ctx, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * renew) // renewals go on
	if err := h.Check(); err != nil || lctx.Err() != nil {
		t.Fatalf("held lock: check %v, ctx %v", err, lctx.Err())
	}
	if err := rdb.Set(ctx, store.Key(), "intruder", rebuild.Lease).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lctx.Done():
	case <-ctx.Done():
		t.Fatal("the holder did not notice the takeover")
	}
	if !errors.Is(context.Cause(lctx), rebuild.ErrLockLost) || !errors.Is(h.Check(), rebuild.ErrLockLost) {
		t.Fatalf("cause %v, check %v; want rebuild.ErrLockLost", context.Cause(lctx), h.Check())
	}
	h.Release(ctx)
	if v, err := rdb.Get(ctx, store.Key()).Result(); err != nil || v != "intruder" {
		t.Fatalf("lock after the former holder's release: %q %v, want intruder's", v, err)
	}
}
