package main

import (
	"context"

	"github.com/cqrs-ledger/ledger/internal/cli"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/redissink"
)

// serveRedis runs the Redis projector of the generation the pointer key
// names, following rebuilds; events and command outcomes go to one group.
func serveRedis(s *ops.Service, c cli.ProjectorFlags, base projector.Config) error {
	rdb, err := redissink.NewClient(c.Redis)
	if err != nil {
		return err
	}
	s.OnClose(func() { _ = rdb.Close() })
	s.Ready.Add("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	prefix := c.Redis.KeyPrefix
	log := s.Log.With("sink", "redis")
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(ctx context.Context) (projector.Generation, error) {
			gen, err := redissink.CurrentGeneration(ctx, rdb, prefix)
			return projector.Generation{Gen: gen}, err
		},
		Build: func(_ context.Context, gen int) (projector.Config, error) {
			sink, err := redissink.New(rdb, redissink.Options{Prefix: redissink.GenerationPrefix(prefix, gen), WaitReplicas: c.Redis.WaitReplicas})
			if err != nil {
				return projector.Config{}, err
			}
			cfg := base
			cfg.Group = projector.GenerationGroup(c.Kafka.TopicPrefix, sink.Name(), gen)
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
