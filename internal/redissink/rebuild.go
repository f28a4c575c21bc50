package redissink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/rebuild"
)

// RebuildView is the Redis view as package rebuild sees it: a new
// generation is the key prefix <prefix>g<N>:, and the switch is one SET of
// the pointer key. Readers (Reader) and the live projector
// (projector.Follower) poll the pointer, so the live projector never
// pauses; the old generation's keys go once no reader can still trust a
// cached pointer.
type RebuildView struct {
	rdb    redis.UniversalClient
	prefix string
	// Linger is how long readers may trust a cached pointer; the old
	// generation is deleted no sooner after the switch. Default
	// 2 × DefaultPointerCache.
	Linger time.Duration
}

// NewRebuildView is the view under prefix.
func NewRebuildView(rdb redis.UniversalClient, prefix string) *RebuildView {
	return &RebuildView{rdb: rdb, prefix: prefix, Linger: 2 * DefaultPointerCache}
}

// Name implements rebuild.View.
func (v *RebuildView) Name() string { return "redis" }

// Lock implements rebuild.View.
func (v *RebuildView) Lock() rebuild.LockStore { return NewRebuildLock(v.rdb, v.prefix) }

// Current implements rebuild.View.
func (v *RebuildView) Current(ctx context.Context) (int, error) {
	return CurrentGeneration(ctx, v.rdb, v.prefix)
}

// Prepare implements rebuild.View: generation gen's keys, none left over.
func (v *RebuildView) Prepare(ctx context.Context, gen int) (projection.Sink, string, error) {
	if _, err := unlinkMatching(ctx, v.rdb, GenerationPattern(v.prefix, gen), nil); err != nil {
		return nil, "", err
	}
	sink, err := New(v.rdb, Options{Prefix: GenerationPrefix(v.prefix, gen)})
	if err != nil {
		return nil, "", err
	}
	return sink, GenerationPrefix(v.prefix, gen), nil
}

// Pauses implements rebuild.View: generations live side by side.
func (v *RebuildView) Pauses() bool { return false }

// Pause implements rebuild.View (never called).
func (v *RebuildView) Pause(context.Context, int) error { return nil }

// Switch implements rebuild.View: the pointer.
func (v *RebuildView) Switch(ctx context.Context, gen int) error {
	return SetGeneration(ctx, v.rdb, v.prefix, gen)
}

// Abandon implements rebuild.View (never called).
func (v *RebuildView) Abandon(ctx context.Context, _ int) (int, error) { return v.Current(ctx) }

// Clean implements rebuild.View: after Linger, every generation but gen.
func (v *RebuildView) Clean(ctx context.Context, gen int) (string, error) {
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(v.Linger):
	}
	n, err := unlinkOtherGenerations(ctx, v.rdb, v.prefix, gen)
	return fmt.Sprintf("%d keys", n), err
}

// unlinkOtherGenerations deletes the data keys of every generation under
// prefix except keep, and returns how many it deleted. Keys under prefix
// that are not generation data keys (the pointer, anything else) stay.
func unlinkOtherGenerations(ctx context.Context, rdb redis.UniversalClient, prefix string, keep int) (int, error) {
	all := strings.TrimSuffix(GenerationPattern(prefix, 0), "{*") + "*"
	return unlinkMatching(ctx, rdb, all, func(k string) bool {
		gen, ok := generationOf(prefix, k)
		return ok && gen != keep
	})
}

// generationOf returns the generation of a data key under prefix:
// <prefix>{…} is generation 0, <prefix>g<N>:{…} generation N.
func generationOf(prefix, key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	if strings.HasPrefix(rest, "{") {
		return 0, true
	}
	i := strings.Index(rest, ":{")
	if i < 0 {
		return 0, false
	}
	gen, err := ParseGeneration(prefix, prefix+rest[:i+1])
	return gen, err == nil && gen > 0
}

// unlinkMatching deletes the keys matching pattern (for which drop, when
// not nil, is true) with SCAN + UNLINK and returns how many it deleted.
func unlinkMatching(ctx context.Context, rdb redis.UniversalClient, pattern string, drop func(key string) bool) (int, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return unlinkOn(ctx, rdb, rdb, pattern, drop, false)
	}
	// SCAN sees one node's keys: every master is scanned, and keys are
	// unlinked one by one (keys of different slots cannot share a command).
	var mu sync.Mutex
	total := 0
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := unlinkOn(ctx, node, cc, pattern, drop, true)
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, err
}

// unlinkOn scans scanner for pattern and unlinks through rdb the keys drop
// accepts (all if drop is nil); one key per command if single.
func unlinkOn(ctx context.Context, scanner redis.Cmdable, rdb redis.UniversalClient, pattern string, drop func(string) bool, single bool) (int, error) {
	n := 0
	var cursor uint64
	for {
		keys, next, err := scanner.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, fmt.Errorf("redis: scan %s: %w", pattern, err)
		}
		if drop != nil {
			keys = slices.DeleteFunc(keys, func(k string) bool { return !drop(k) })
		}
		if len(keys) > 0 {
			if single {
				pipe := rdb.Pipeline()
				for _, k := range keys {
					pipe.Unlink(ctx, k)
				}
				_, err = pipe.Exec(ctx)
			} else {
				err = rdb.Unlink(ctx, keys...).Err()
			}
			if err != nil {
				return n, fmt.Errorf("redis: unlink: %w", err)
			}
			n += len(keys)
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// RebuildLock is the Redis view's rebuild lock: the key <prefix>rebuild-lock
// holding its owner, with a TTL of rebuild.Lease (SET NX PX; renewed and
// released only by its owner, checked in a script).
type RebuildLock struct {
	rdb redis.UniversalClient
	key string
}

// Key is the lock's key.
func (l RebuildLock) Key() string { return l.key }

// NewRebuildLock is the lock of the view under prefix.
func NewRebuildLock(rdb redis.UniversalClient, prefix string) RebuildLock {
	return RebuildLock{rdb: rdb, key: prefix + "rebuild-lock"}
}

var (
	renewIfOwner = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	delIfOwner   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// Acquire implements rebuild.LockStore.
func (l RebuildLock) Acquire(ctx context.Context, owner string) error {
	ok, err := l.rdb.SetNX(ctx, l.key, owner, rebuild.Lease).Result()
	if err != nil {
		return fmt.Errorf("redis: take %s: %w", l.key, err)
	}
	if ok {
		return nil
	}
	holder, err := l.rdb.Get(ctx, l.key).Result()
	ttl, terr := l.rdb.PTTL(ctx, l.key).Result()
	if err != nil || terr != nil {
		// Freed in between, or unreadable: report it as held all the same.
		holder, ttl = "?", rebuild.Lease
	}
	return fmt.Errorf("another rebuild of the redis view is running: %s holds %s (it expires in %s unless renewed)",
		holder, l.key, ttl.Round(time.Second))
}

// Renew implements rebuild.LockStore.
func (l RebuildLock) Renew(ctx context.Context, owner string) error {
	n, err := renewIfOwner.Run(ctx, l.rdb, []string{l.key}, owner, rebuild.Lease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis: renew %s: %w", l.key, err)
	}
	if n == 0 {
		return rebuild.ErrLockLost
	}
	return nil
}

// Release implements rebuild.LockStore.
func (l RebuildLock) Release(ctx context.Context, owner string) error {
	if err := delIfOwner.Run(ctx, l.rdb, []string{l.key}, owner).Err(); err != nil {
		return fmt.Errorf("redis: release %s: %w", l.key, err)
	}
	return nil
}
