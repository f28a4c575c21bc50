// Package chsink is the ClickHouse storage adapter: the connection built from
// configuration, DDL migrations, batched projection writers and the readers
// for history and analytics. Everything here runs on ClickHouse 18.16 and on
// current releases.
//
// Tables (generation N > 0 of a rebuild appends "_gN"; Swap renames it live):
//
//   - ledger_events: one row per event, ReplacingMergeTree(version) ORDER BY
//     (aggregate_id, version), partitioned by month of occurred_at. amount is
//     signed (+ money in, − money out, 0 otherwise); occurred_at is seconds,
//     occurred_at_ms the exact epoch milliseconds.
//   - account_balances: latest state per account, ReplacingMergeTree(version)
//     ORDER BY account_id.
//   - volume_hourly: per currency, hour and event type the count, volume
//     (sum of |amount|) and net (sum of amount) of money events in Int64, and
//     the exact UInt64 parts of the inflow and outflow (see volumeSums); a
//     SummingMergeTree fed by the materialized view volume_hourly_mv.
//
// Replacing and summing happen at merge time, so queries read with FINAL,
// argMax(…, version) or sum(…) … GROUP BY, never the raw rows:
//
//	SELECT balance FROM account_balances FINAL WHERE account_id = 'acc-1'
//	SELECT argMax(balance, version) FROM account_balances WHERE account_id = 'acc-1'
//	SELECT hour, sumIf(volume, type = 'FundsDeposited') AS deposits
//	FROM volume_hourly WHERE currency = 'EUR' GROUP BY hour ORDER BY hour
package chsink

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// OptionsFor are the view options of cfg: its database and cluster.
func OptionsFor(cfg config.ClickHouse) Options {
	return Options{Database: cfg.Database, Cluster: cfg.Cluster, InsertQuorum: cfg.InsertQuorum}
}

// Open connects to ClickHouse with the configured database as the default.
func Open(cfg config.ClickHouse) (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr:         cfg.AddrList(),
		Auth:         clickhouse.Auth{Database: cfg.Database, Username: cfg.Username, Password: cfg.Password},
		DialTimeout:  5 * time.Second,
		MaxOpenConns: 8,
	}
	if cfg.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}

// EnsureDatabase creates the configured database if it does not exist, over
// a connection without a default database (which would fail until it exists).
func EnsureDatabase(ctx context.Context, cfg config.ClickHouse) error {
	q := "CREATE DATABASE IF NOT EXISTS " + cfg.Database // an identifier, checked by Validate
	if c := cfg.Cluster; c != "" {
		q += " ON CLUSTER " + c
	}
	// A user confined to its database (allow_databases, as the local
	// stack's projector user is) may not connect to "default": when the
	// database exists already, there is nothing to create.
	if conn, err := Open(cfg); err == nil {
		perr := conn.Ping(ctx)
		_ = conn.Close()
		if perr == nil {
			return nil
		}
	}
	cfg.Database = "default"
	conn, err := Open(cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: %s: %w", q, err)
	}
	return nil
}
