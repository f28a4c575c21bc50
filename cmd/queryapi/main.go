// Command queryapi serves the read side over HTTP/JSON: point lookups from
// Redis, history and analytics from ClickHouse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/query"
	"github.com/cqrs-ledger/ledger/internal/query/ui"
	"github.com/cqrs-ledger/ledger/internal/redissink"
)

func main() {
	ctx, cancel := ops.SignalContext()
	err := run(ctx, os.Args[1:])
	cancel()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "queryapi:", err)
		}
		os.Exit(1)
	}
}

// queryFlags are the settings of the API itself.
type queryFlags struct {
	maxWait      time.Duration
	pollInterval time.Duration
	pointerCache time.Duration
	storeTimeout time.Duration
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&q.maxWait, "max-wait", query.DefaultMaxWait,
		fmt.Sprintf("longest ?wait= of read-your-writes on GET /v1/accounts/{id}, at most %s (MAX_WAIT)", query.MaxWaitLimit))
	fs.DurationVar(&q.pollInterval, "wait-poll-interval", query.DefaultWatchedPollInterval,
		"how often a read-your-writes wait reads the account again besides when the projector announces a change (WAIT_POLL_INTERVAL)")
	fs.DurationVar(&q.storeTimeout, "store-timeout", query.DefaultStoreTimeout,
		"how long the Redis and ClickHouse reads of one request may take before it answers 503 (STORE_TIMEOUT)")
	fs.DurationVar(&q.pointerCache, "redis-generation-cache", redissink.DefaultPointerCache,
		"how long the Redis generation pointer is trusted; a rebuild's switch is seen within it (REDIS_GENERATION_CACHE)")
}

func (q queryFlags) validate() error {
	var errs []error
	if q.maxWait <= 0 || q.maxWait > query.MaxWaitLimit {
		errs = append(errs, fmt.Errorf("max-wait %s: want more than 0 and at most %s", q.maxWait, query.MaxWaitLimit))
	}
	if q.pollInterval <= 0 || q.pollInterval > time.Second {
		errs = append(errs, fmt.Errorf("wait-poll-interval %s: want more than 0 and at most 1s", q.pollInterval))
	}
	if q.storeTimeout <= 0 || q.storeTimeout > 30*time.Second {
		errs = append(errs, fmt.Errorf("store-timeout %s: want more than 0 and at most 30s", q.storeTimeout))
	}
	if q.pointerCache <= 0 {
		errs = append(errs, fmt.Errorf("redis-generation-cache %s: must be positive", q.pointerCache))
	}
	return errors.Join(errs...)
}

// run serves until ctx is done (SIGTERM).
func run(ctx context.Context, args []string) error {
	var (
		rcfg     config.Redis
		ccfg     config.ClickHouse
		httpCfg  config.HTTP
		qcfg     queryFlags
		logLevel string
	)
	fs := flag.NewFlagSet("queryapi", flag.ContinueOnError)
	rcfg.RegisterFlags(fs)
	ccfg.RegisterFlags(fs)
	httpCfg.RegisterFlags(fs, "127.0.0.1:8082", "127.0.0.1:9082", config.ScopeRead)
	qcfg.register(fs)
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (LOG_LEVEL)")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(rcfg.Validate(), ccfg.Validate(), httpCfg.Validate(), qcfg.validate()); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log, err := ops.NewLogger("queryapi", logLevel)
	if err != nil {
		return err
	}
	return ops.RunService(ctx, "queryapi", httpCfg, log, func(s *ops.Service) error {
		rdb, ch, err := connect(s, rcfg, ccfg)
		if err != nil {
			return err
		}
		// Point lookups follow the generation pointer that `projector
		// rebuild` switches; ClickHouse's rebuild renames tables, so the
		// live (generation 0) names are always current.
		hot, err := redissink.NewReader(rdb, redissink.Options{Prefix: rcfg.KeyPrefix}, qcfg.pointerCache)
		if err != nil {
			return err
		}
		cold, err := chsink.NewView(ch, chsink.OptionsFor(ccfg))
		if err != nil {
			return err
		}
		// Read-your-writes waits wake when the projector announces a change.
		changes := redissink.NewWatcher(rdb, rcfg.KeyPrefix)
		s.Go("redis-changes", changes.Run)
		h, err := query.New(query.Config{
			Accounts: hot, Transactions: hot, Transfers: hot, Outcomes: hot,
			History: cold, Analytics: cold, Changes: changes,
			MaxWait: qcfg.maxWait, PollInterval: qcfg.pollInterval, StoreTimeout: qcfg.storeTimeout,
			Log: log, Registerer: s.Registry,
		})
		if err != nil {
			return err
		}
		// Everything under /v1/ needs a read token, then the handler
		// answers unknown paths and methods with JSON errors. The OpenAPI
		// document describes the public API and holds no data: public.
		s.Handle("/v1/", config.ScopeRead, h)
		s.HandlePublic("GET /openapi.json", query.OpenAPIHandler())
		// The console's files hold no data either; what it shows comes
		// from /v1/ with the read token the user enters (package ui).
		s.HandlePublic("GET "+ui.Prefix, ui.Handler())
		return nil
	})
}

// connect connects to Redis and ClickHouse, makes each a readiness check of
// s, and closes them at shutdown.
func connect(s *ops.Service, rcfg config.Redis, ccfg config.ClickHouse) (redis.UniversalClient, driver.Conn, error) {
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
