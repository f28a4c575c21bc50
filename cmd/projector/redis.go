package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/redissink"
)

// serveRedis runs the Redis projector of the generation the pointer key
// names, following rebuilds; events and command outcomes go to one group.
func serveRedis(s *ops.Service, c common, base projector.Config) error {
	rdb, err := redissink.NewClient(c.redis)
	if err != nil {
		return err
	}
	s.OnClose(func() { _ = rdb.Close() })
	s.Ready.Add("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	prefix := c.redis.KeyPrefix
	log := s.Log.With("sink", "redis")
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(ctx context.Context) (projector.Generation, error) {
			gen, err := redissink.CurrentGeneration(ctx, rdb, prefix)
			return projector.Generation{Gen: gen}, err
		},
		Build: func(_ context.Context, gen int) (projector.Config, error) {
			sink, err := redissink.New(rdb, redissink.Options{Prefix: redissink.GenerationPrefix(prefix, gen)})
			if err != nil {
				return projector.Config{}, err
			}
			cfg := base
			cfg.Group = projector.GenerationGroup(c.kafka.TopicPrefix, sink.Name(), gen)
			cfg.Sink, cfg.Results, cfg.Log = sink, sink, log
			return cfg, nil
		},
		Registerer: s.Registry,
		Log:        log,
	})
	if err != nil {
		return err
	}
	s.Ready.Add("projector-redis", f.Ready)
	s.Go("projector-redis", f.Run)
	return nil
}

func (r rebuilder) rebuildRedis(ctx context.Context) error {
	start := time.Now()
	rdb, err := redissink.NewClient(r.redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	prefix := r.redis.KeyPrefix
	lock, ctx, err := takeLock(ctx, newRedisLock(rdb, prefix), r.log.With("view", "redis"))
	if err != nil {
		return err
	}
	defer lock.release(context.WithoutCancel(ctx))
	old, err := redissink.CurrentGeneration(ctx, rdb, prefix)
	if err != nil {
		return err
	}
	gen := old + 1
	log := r.log.With("view", "redis", "generation", gen)
	// Leftovers of an interrupted rebuild of the same generation go first.
	if n, err := unlinkMatching(ctx, rdb, redissink.GenerationPattern(prefix, gen), nil); err != nil {
		return err
	} else if n > 0 {
		log.Info("removed leftovers of an earlier attempt", "keys", n)
	}
	sink, err := redissink.New(rdb, redissink.Options{Prefix: redissink.GenerationPrefix(prefix, gen)})
	if err != nil {
		return err
	}
	progress, finish := r.bar("redis")
	rp, err := projector.NewReplay(projector.ReplayConfig{Kafka: r.kafka, Sink: sink, Results: sink, Progress: progress, Log: log})
	if err != nil {
		return err
	}
	defer rp.Close()
	log.Info("replaying", "from_generation", old, "prefix", redissink.GenerationPrefix(prefix, gen))
	err = rp.Run(ctx)
	finish()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	newGroup := projector.GenerationGroup(r.kafka.TopicPrefix, sink.Name(), gen)
	oldGroup := projector.GenerationGroup(r.kafka.TopicPrefix, sink.Name(), old)
	if err := projector.CommitGroupOffsets(ctx, r.kafka, newGroup, rp.Positions()); err != nil {
		return err
	}
	if err := lock.check(); err != nil {
		return fmt.Errorf("not switching: %w", err)
	}
	if err := redissink.SetGeneration(ctx, rdb, prefix, gen); err != nil {
		return err
	}
	log.Info("readers switched", "pointer", redissink.PointerKey(prefix), "group", newGroup)

	// The live projectors leave the old group within a poll interval, and
	// readers trust a cached pointer for DefaultPointerCache: only then is
	// the old generation unused.
	if err := projector.WaitGroupEmpty(ctx, r.kafka, oldGroup, r.switchTimeout); err != nil {
		log.Warn("old group still has members; deleting the old generation anyway", "err", err)
	}
	time.Sleep(2 * redissink.DefaultPointerCache)
	// Every generation but the new one goes, the old one and leftovers of
	// earlier rebuilds that could not finish their cleanup.
	n, err := unlinkOtherGenerations(ctx, rdb, prefix, gen)
	if err != nil {
		return fmt.Errorf("drop generation %d: %w", old, err)
	}
	if err := projector.DeleteGroup(ctx, r.kafka, oldGroup); err != nil {
		log.Warn("could not delete the old group", "err", err)
	}
	log.Info("rebuild done", "records_applied", rp.Applied, "skipped", rp.Skipped, "old_keys_deleted", n, "took", time.Since(start).String())
	fmt.Printf("redis: generation %d live (%s), %d records applied, generation %d dropped (%d keys), in %s\n",
		gen, redissink.GenerationPrefix(prefix, gen), rp.Applied, old, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// unlinkOtherGenerations deletes the data keys of every generation under
// prefix except keep, and returns how many it deleted. Keys under prefix
// that are not generation data keys (the pointer, anything else) stay.
func unlinkOtherGenerations(ctx context.Context, rdb *redis.Client, prefix string, keep int) (int, error) {
	all := strings.TrimSuffix(redissink.GenerationPattern(prefix, 0), "{*") + "*"
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
	gen, err := redissink.ParseGeneration(prefix, prefix+rest[:i+1])
	return gen, err == nil && gen > 0
}

// unlinkMatching deletes the keys matching pattern (for which drop, when
// not nil, is true) with SCAN + UNLINK and returns how many it deleted.
func unlinkMatching(ctx context.Context, rdb *redis.Client, pattern string, drop func(key string) bool) (int, error) {
	n := 0
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, fmt.Errorf("redis: scan %s: %w", pattern, err)
		}
		if drop != nil {
			keys = slices.DeleteFunc(keys, func(k string) bool { return !drop(k) })
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
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

// redisLock is the Redis view's rebuild lock: the key <prefix>rebuild-lock
// holding its owner, with a TTL of lockLease (SET NX PX; renewed and
// released only by its owner, checked in a script).
type redisLock struct {
	rdb *redis.Client
	key string
}

func newRedisLock(rdb *redis.Client, prefix string) redisLock {
	return redisLock{rdb: rdb, key: prefix + "rebuild-lock"}
}

var (
	renewIfOwner = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	delIfOwner   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

func (l redisLock) acquire(ctx context.Context, owner string) error {
	ok, err := l.rdb.SetNX(ctx, l.key, owner, lockLease).Result()
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
		holder, ttl = "?", lockLease
	}
	return fmt.Errorf("another rebuild of the redis view is running: %s holds %s (it expires in %s unless renewed)",
		holder, l.key, ttl.Round(time.Second))
}

func (l redisLock) renew(ctx context.Context, owner string) error {
	n, err := renewIfOwner.Run(ctx, l.rdb, []string{l.key}, owner, lockLease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis: renew %s: %w", l.key, err)
	}
	if n == 0 {
		return errLockLost
	}
	return nil
}

func (l redisLock) release(ctx context.Context, owner string) error {
	if err := delIfOwner.Run(ctx, l.rdb, []string{l.key}, owner).Err(); err != nil {
		return fmt.Errorf("redis: release %s: %w", l.key, err)
	}
	return nil
}
