package rebuild

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
// holder renews it every renewEvery, and a holder that dies stops renewing,
// so the lock is free Lease after its last renewal. The holder stops
// trusting its own lock sooner, Trust after its last renewal, and
// switches nothing after that; the gap between the two is the margin for
// clocks and slow requests. The ClickHouse lock also tells the live
// projectors whether the rebuild that paused them is still alive.
const (
	Lease = 20 * time.Second
	Trust = Lease / 2
)

// renewEvery is how often a held lock is renewed (a variable for tests).
var renewEvery = Lease / 5

// ErrLockLost: another owner holds the lock that this process held.
var ErrLockLost = errors.New("the rebuild lock was taken over")

// LockStore keeps one view's rebuild lock.
type LockStore interface {
	// Acquire takes the lock for owner. A lock not renewed for Lease
	// is taken over; a live one is an error naming its holder.
	Acquire(ctx context.Context, owner string) error
	// Renew extends owner's lock; ErrLockLost if it is no longer owner's.
	Renew(ctx context.Context, owner string) error
	// Release frees owner's lock; a lock held by another owner stays.
	Release(ctx context.Context, owner string) error
}

// newOwner names this process in a lock, for the error another rebuild
// reports: host, pid and a random suffix.
func newOwner() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + uuid.NewString()[:8]
}

// Held is a lock this process holds, renewed in the background until
// release.
type Held struct {
	store LockStore
	owner string
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	renewed time.Time // start of the last successful renewal
	lost    error
}

// Take acquires store's lock. The returned context is ctx, canceled
// (with the reason as its cause) when the lock is lost.
func Take(ctx context.Context, store LockStore, log *slog.Logger) (*Held, context.Context, error) {
	start := time.Now()
	owner := newOwner()
	if err := store.Acquire(ctx, owner); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	h := &Held{store: store, owner: owner, log: log, stop: make(chan struct{}), done: make(chan struct{}), renewed: start}
	go h.keep(lctx, cancel)
	log.Info("rebuild lock taken", "owner", owner)
	return h, lctx, nil
}

func (h *Held) keep(ctx context.Context, cancel context.CancelCauseFunc) {
	defer close(h.done)
	t := time.NewTicker(renewEvery)
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
		err := h.store.Renew(ctx, h.owner)
		h.mu.Lock()
		switch {
		case err == nil:
			h.renewed = start
		case errors.Is(err, ErrLockLost):
			h.lost = err
		case time.Since(h.renewed) > Trust:
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

// Check is nil while the lock is surely held: not lost, and renewed less
// than Trust ago. Switch only right after a nil check.
func (h *Held) Check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	if age := time.Since(h.renewed); age > Trust {
		return fmt.Errorf("rebuild lock last renewed %s ago", age.Round(time.Second))
	}
	return nil
}

// Release stops renewing and frees the lock (unless it was lost).
func (h *Held) Release(ctx context.Context) {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	lost := h.lost
	h.mu.Unlock()
	if lost != nil {
		return
	}
	if err := h.store.Release(ctx, h.owner); err != nil {
		h.log.Warn("could not release the rebuild lock; it frees itself", "after", Lease, "err", err)
	}
}
