// Package chsink is the ClickHouse storage adapter: the connection built from
// configuration, DDL migrations, batched projection writers and the readers
// for history and analytics. Everything here runs on ClickHouse 18.16 and on
// current releases.
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
