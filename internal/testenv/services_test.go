package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestRedisSmoke checks the Redis the tests get: plain commands and an atomic
// Lua script over keys sharing one hash tag (what the projector relies on).
func TestRedisSmoke(t *testing.T) {
	rdb, prefix := testenv.RedisClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	k := prefix + "{acc-1}:account"
	if err := rdb.HSet(ctx, k, "balance", 100, "version", 1).Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
	// Apply only if the version is the next one: the projector's guard.
	script := redis.NewScript(`
		local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
		if v + 1 ~= tonumber(ARGV[1]) then return 0 end
		redis.call('HSET', KEYS[1], 'version', ARGV[1], 'balance', ARGV[2])
		redis.call('LPUSH', KEYS[2], ARGV[1])
		return 1`)
	keys := []string{k, prefix + "{acc-1}:tx"}
	for _, tc := range []struct {
		version, balance int
		want             int64
	}{{2, 150, 1}, {2, 999, 0}, {4, 999, 0}, {3, 120, 1}} {
		got, err := script.Run(ctx, rdb, keys, tc.version, tc.balance).Int64()
		if err != nil || got != tc.want {
			t.Fatalf("script(version %d): got %d, %v; want %d", tc.version, got, err, tc.want)
		}
	}
	m, err := rdb.HGetAll(ctx, k).Result()
	if err != nil || m["balance"] != "120" || m["version"] != "3" {
		t.Fatalf("account after script: %v, %v", m, err)
	}
	if n, _ := rdb.LLen(ctx, keys[1]).Result(); n != 2 {
		t.Fatalf("tx list has %d entries, want 2", n)
	}
}

// TestClickHouseSmoke checks the ClickHouse the tests get (18.16 in CI):
// a table, a batch insert with explicit columns, and a FINAL select.
func TestClickHouseSmoke(t *testing.T) {
	conn, db := testenv.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatalf("version: %v", err)
	}
	t.Logf("ClickHouse %s, database %s", version, db)

	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS smoke (
		aggregate_id String,
		version UInt64,
		amount Int64,
		occurred_at DateTime
	) ENGINE = ReplacingMergeTree(version)
	PARTITION BY toYYYYMM(occurred_at)
	ORDER BY (aggregate_id, version)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insert := func(rows [][3]int64) {
		t.Helper()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO smoke (aggregate_id, version, amount, occurred_at)")
		if err != nil {
			t.Fatalf("prepare batch: %v", err)
		}
		for _, r := range rows {
			at := time.Unix(1_700_000_000+r[0], 0).UTC()
			if err := batch.Append("acc-"+string(rune('a'+r[2]%3)), uint64(r[0]), r[1], at); err != nil {
				t.Fatalf("append: %v", err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	var rows [][3]int64
	for i := int64(1); i <= 300; i++ {
		rows = append(rows, [3]int64{i, i * 10, i})
	}
	insert(rows)
	insert(rows[:100]) // a redelivered batch: FINAL must hide the duplicates

	var count uint64
	var sum int64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(amount) FROM smoke FINAL").Scan(&count, &sum); err != nil {
		t.Fatalf("select: %v", err)
	}
	if count != 300 || sum != 10*300*301/2 {
		t.Fatalf("FINAL: count %d sum %d, want 300 and %d", count, sum, 10*300*301/2)
	}
	var perAgg uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(aggregate_id) FROM smoke").Scan(&perAgg); err != nil || perAgg != 3 {
		t.Fatalf("uniqExact: %d, %v", perAgg, err)
	}
}
