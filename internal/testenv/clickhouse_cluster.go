package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseCluster returns the servers of a ClickHouse cluster (two shards
// of two replicas: LEDGER_TEST_CLICKHOUSE_CLUSTER, written to .stack/env by
// `scripts/stack up clickhouse-cluster`) and the cluster's name. Without it
// the test fails in CI and is skipped otherwise.
func ClickHouseCluster(t testing.TB) (addrs []string, cluster string) {
	t.Helper()
	list := Setting(t, "LEDGER_TEST_CLICKHOUSE_CLUSTER", "the servers of a ClickHouse cluster",
		"run scripts/stack up clickhouse-cluster, then source .stack/env")
	cluster = os.Getenv("LEDGER_TEST_CLICKHOUSE_CLUSTER_NAME")
	if cluster == "" {
		cluster = "ledger_cluster"
	}
	return strings.Split(list, ","), cluster
}

// ClickHouseClusterAuth is the administrator of the cluster: the local
// stack gives it the single server's users.
func ClickHouseClusterAuth() clickhouse.Auth {
	return clickhouse.Auth{Username: os.Getenv("CLICKHOUSE_USERNAME"), Password: os.Getenv("CLICKHOUSE_PASSWORD")}
}

// ClickHouseClusterDB creates a database of the test's own on every server
// of the cluster (dropped when the test ends) and returns a connection to
// the cluster with it as the default, the database and the cluster's name.
func ClickHouseClusterDB(t testing.TB) (clickhouse.Conn, string, string) {
	t.Helper()
	addrs, cluster := ClickHouseCluster(t)
	db := "test_" + ID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	auth := ClickHouseClusterAuth()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: addrs, Auth: auth})
	if err != nil {
		t.Fatalf("clickhouse cluster: %v", err)
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
		t.Fatalf("clickhouse cluster: create database %s: %v", db, err)
	}
	auth.Database = db
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: addrs, Auth: auth})
	if err != nil {
		t.Fatalf("clickhouse cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_ = conn.Close()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
			t.Logf("cleanup: drop database %s: %v", db, err)
		}
		_ = admin.Close()
	})
	return conn, db, cluster
}

// ClickHouseNode connects to one server of the cluster (its local tables).
func ClickHouseNode(t testing.TB, addr, db string) clickhouse.Conn {
	t.Helper()
	auth := ClickHouseClusterAuth()
	auth.Database = db
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: auth})
	if err != nil {
		t.Fatalf("clickhouse %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
