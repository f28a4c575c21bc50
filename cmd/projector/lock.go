package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Rebuild locks. A rebuild holds its view's lock from start to finish, so
// two rebuilds of one view never interleave (both would build generation
// N+1 and drop each other's tables or keys). The lock is a lease: the
// holder renews it every lockRenew, and a holder that dies stops renewing,
// so the lock is free lockLease after its last renewal. The holder stops
// trusting its own lock sooner, lockTrust after its last renewal, and
// switches nothing after that; the gap between the two is the margin for
// clocks and slow requests. The ClickHouse lock also tells the live
// projectors whether the rebuild that paused them is still alive.
const (
	lockLease = 20 * time.Second
	lockTrust = lockLease / 2
)

// lockRenew is how often a held lock is renewed (a variable for tests).
var lockRenew = lockLease / 5

// errLockLost: another owner holds the lock that this process held.
var errLockLost = errors.New("the rebuild lock was taken over")

// lockStore keeps one view's rebuild lock.
type lockStore interface {
	// acquire takes the lock for owner. A lock not renewed for lockLease
	// is taken over; a live one is an error naming its holder.
	acquire(ctx context.Context, owner string) error
	// renew extends owner's lock; errLockLost if it is no longer owner's.
	renew(ctx context.Context, owner string) error
	// release frees owner's lock; a lock held by another owner stays.
	release(ctx context.Context, owner string) error
}

// lockOwner names this process in a lock, for the error another rebuild
// reports: host, pid and a random suffix.
func lockOwner() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + uuid.NewString()[:8]
}

// heldLock is a lock this process holds, renewed in the background until
// release.
type heldLock struct {
	store lockStore
	owner string
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	renewed time.Time // start of the last successful renewal
	lost    error
}

// takeLock acquires store's lock. The returned context is ctx, canceled
// (with the reason as its cause) when the lock is lost.
func takeLock(ctx context.Context, store lockStore, log *slog.Logger) (*heldLock, context.Context, error) {
	start := time.Now()
	owner := lockOwner()
	if err := store.acquire(ctx, owner); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	h := &heldLock{store: store, owner: owner, log: log, stop: make(chan struct{}), done: make(chan struct{}), renewed: start}
	go h.keep(lctx, cancel)
	log.Info("rebuild lock taken", "owner", owner)
	return h, lctx, nil
}

func (h *heldLock) keep(ctx context.Context, cancel context.CancelCauseFunc) {
	defer close(h.done)
	t := time.NewTicker(lockRenew)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			cancel(nil)
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		err := h.store.renew(ctx, h.owner)
		h.mu.Lock()
		switch {
		case err == nil:
			h.renewed = start
		case errors.Is(err, errLockLost):
			h.lost = err
		case time.Since(h.renewed) > lockTrust:
			h.lost = fmt.Errorf("rebuild lock not renewed for %s: %w", time.Since(h.renewed).Round(time.Second), err)
		default:
			h.log.Warn("could not renew the rebuild lock; retrying", "err", err)
		}
		lost := h.lost
		h.mu.Unlock()
		if lost != nil {
			h.log.Error("rebuild lock lost; stopping", "err", lost)
			cancel(lost)
			return
		}
	}
}

// check is nil while the lock is surely held: not lost, and renewed less
// than lockTrust ago. Switch only right after a nil check.
func (h *heldLock) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	if age := time.Since(h.renewed); age > lockTrust {
		return fmt.Errorf("rebuild lock last renewed %s ago", age.Round(time.Second))
	}
	return nil
}

// release stops renewing and frees the lock (unless it was lost).
func (h *heldLock) release(ctx context.Context) {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	lost := h.lost
	h.mu.Unlock()
	if lost != nil {
		return
	}
	if err := h.store.release(ctx, h.owner); err != nil {
		h.log.Warn("could not release the rebuild lock; it frees itself", "after", lockLease, "err", err)
	}
}
