// Package sink connects a binary to its stores; the adapters themselves live
// in sink/redis and sink/clickhouse.
package sink

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ops"
	chsink "github.com/cqrs-ledger/ledger/internal/sink/clickhouse"
	redissink "github.com/cqrs-ledger/ledger/internal/sink/redis"
)

// Connect connects to Redis and ClickHouse, makes each a readiness check of
// s, and closes them at shutdown.
func Connect(s *ops.Service, rcfg config.Redis, ccfg config.ClickHouse) (*redis.Client, driver.Conn, error) {
	rdb, err := redissink.NewClient(rcfg)
	if err != nil {
		return nil, nil, err
	}
	s.OnClose(func() { _ = rdb.Close() })
	s.Ready.Add("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	ch, err := chsink.Open(ccfg)
	if err != nil {
		return nil, nil, err
	}
	s.OnClose(func() { _ = ch.Close() })
	s.Ready.Add("clickhouse", ch.Ping)
	return rdb, ch, nil
}
