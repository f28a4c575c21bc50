package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
)

// TestStartRedisStopStart: a private Redis keeps its data across stop and
// start, and refuses connections while stopped.
func TestStartRedisStopStart(t *testing.T) {
	addr, stop, start := StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	stop()
	stop() // idempotent
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded while stopped")
	}
	start()
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

// TestStartClickHouseStopStart: a private ClickHouse keeps its tables
// across stop and start.
func TestStartClickHouseStopStart(t *testing.T) {
	addr, stop, start := StartClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE TABLE t (x UInt8) ENGINE = TinyLog"); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("ping succeeded while stopped")
	}
	start()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'default' AND name = 't'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: %d tables, %v", n, err)
	}
}
