package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaClient returns a client on the test's brokers, closed when t ends.
func KafkaClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	brokers := strings.Split(Kafka(t), ",")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TopicPrefix returns a topic prefix unique to t ("test.<id>."); every topic
// under it is deleted when t ends.
func TopicPrefix(t testing.TB) string {
	t.Helper()
	adm := kadm.NewClient(KafkaClient(t))
	prefix := "test." + ID(t) + "."
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("cleanup: list topics: %v", err)
			return
		}
		var mine []string
		for _, n := range topics.Names() {
			if strings.HasPrefix(n, prefix) {
				mine = append(mine, n)
			}
		}
		if len(mine) > 0 {
			if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
				t.Logf("cleanup: delete topics %v: %v", mine, err)
			}
		}
	})
	return prefix
}

// RedisClient returns a client and a key prefix unique to t ("test:<id>:");
// every key under the prefix is deleted when t ends.
func RedisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: Redis(t)})
	prefix := "test:" + ID(t) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// ClickHouseDB creates a database unique to t and returns a connection whose
// default database it is; the database is dropped when t ends.
func ClickHouseDB(t testing.TB) (clickhouse.Conn, string) {
	t.Helper()
	addr := strings.Split(ClickHouse(t), ",")
	db := "test_" + ID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: addr})
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatalf("clickhouse: create database %s: %v", db, err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: addr, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Close()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("cleanup: drop database %s: %v", db, err)
		}
		_ = admin.Close()
	})
	return conn, db
}
