// Command projector runs the read-side consumer groups that project the
// events topic into Redis (hot lookups) and ClickHouse (history, analytics),
// and `projector rebuild`, which replays the events into a fresh generation
// of a view and switches readers and the live projector to it (internal/cli
// builds it; `ledgerctl rebuild` is the same command).
//
//	projector [serve] [flags]                     both projectors (REDIS_PROJECTOR, CLICKHOUSE_PROJECTOR)
//	projector rebuild -view redis|clickhouse      rebuild one view while the live projector keeps serving
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/cqrs-ledger/ledger/internal/cli"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/tracing"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "projector:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	var (
		sc       cli.ProjectorFlags
		httpCfg  config.HTTP
		serveRed bool
		serveCH  bool
		maxBatch int
		maxDelay time.Duration
		chDelay  time.Duration
		chBatch  int
		session  time.Duration
		writeDL  time.Duration
		instance string
	)
	serveFS := flag.NewFlagSet("projector", flag.ContinueOnError)
	sc.Register(serveFS, "ledger-projector")
	httpCfg.RegisterAdminFlags(serveFS, "127.0.0.1:9081")
	serveFS.BoolVar(&serveRed, "redis-projector", true, "run the Redis projector (REDIS_PROJECTOR)")
	serveFS.BoolVar(&serveCH, "clickhouse-projector", true, "run the ClickHouse projector (CLICKHOUSE_PROJECTOR)")
	serveFS.IntVar(&maxBatch, "max-batch", 5000, "records applied per Redis batch, at most; batches are what a poll returned, so they are this large only when the projector is behind (MAX_BATCH)")
	serveFS.IntVar(&chBatch, "clickhouse-max-batch", projector.ClickHouseMaxBatch, "records applied per ClickHouse batch, at most: each batch is one INSERT per table, whose cost is mostly per INSERT (files of a new part), so a projector catching up applies large ones (CLICKHOUSE_MAX_BATCH)")
	serveFS.DurationVar(&maxDelay, "max-delay", 0, "how long a Redis batch may wait to fill up; 0 applies what a poll returned at once, and batches grow by themselves under load (MAX_DELAY)")
	serveFS.DurationVar(&chDelay, "clickhouse-max-delay", projector.ClickHouseMaxDelay, "how long a ClickHouse batch may wait to fill up: one INSERT makes a part per table, and small ones cost ClickHouse 6 times the CPU per event (see the README) (CLICKHOUSE_MAX_DELAY)")
	serveFS.DurationVar(&session, "group-session-timeout", 45*time.Second, "how long the group waits for a crashed projector before reassigning its partitions (GROUP_SESSION_TIMEOUT)")
	serveFS.DurationVar(&writeDL, "write-deadline", 3*time.Second, "the most one batch's write to a store may take (a retry gets up to 8 times as long); a projector taking over a partition from one that died mid-write waits for it (WRITE_DEADLINE)")
	serveFS.StringVar(&instance, "projector-instance", "", "a stable id of this projector among its group's members (e.g. a StatefulSet ordinal): static group membership, so that a restarted projector gets its partitions back at once (PROJECTOR_INSTANCE)")
	serve := &ffcli.Command{
		Name:       "serve",
		ShortUsage: "projector [serve] [flags]",
		ShortHelp:  "run the Redis and/or ClickHouse projectors (the default)",
		FlagSet:    serveFS,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			errs := []error{sc.Kafka.Validate(), sc.Redis.Validate(), sc.ClickHouse.Validate(), httpCfg.Validate()}
			if !serveRed && !serveCH {
				errs = append(errs, errors.New("redis-projector and clickhouse-projector are both off: nothing to run"))
			}
			if maxBatch <= 0 || chBatch <= 0 {
				errs = append(errs, fmt.Errorf("max-batch %d, clickhouse-max-batch %d: must be positive", maxBatch, chBatch))
			}
			if maxDelay < 0 || chDelay < 0 {
				errs = append(errs, fmt.Errorf("max-delay %s, clickhouse-max-delay %s: must not be negative", maxDelay, chDelay))
			}
			if writeDL <= 0 {
				errs = append(errs, fmt.Errorf("write-deadline %s: must be positive", writeDL))
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			log, err := ops.NewLogger("projector", sc.LogLevel)
			if err != nil {
				return err
			}
			traces, err := tracing.FromEnv(ctx, "projector")
			if err != nil {
				return err
			}
			return ops.RunService(ctx, "projector", httpCfg, log, func(s *ops.Service) error {
				s.OnClose(func() { traces.Close(log) }) // first registered, last run
				cl, err := kafkax.NewClient(sc.Kafka)
				if err != nil {
					return err
				}
				s.OnClose(cl.Close)
				s.Ready.Add("kafka", cl.Ping)
				base := projector.Config{Kafka: sc.Kafka, MaxBatch: maxBatch, MaxDelay: maxDelay, SessionTimeout: session, WriteDeadline: writeDL, InstanceID: instance,
					TracerProvider: traces.TracerProvider()}
				if serveRed {
					if err := serveRedis(s, sc, base); err != nil {
						return err
					}
				}
				if serveCH {
					base := base
					base.MaxDelay, base.MaxBatch = chDelay, chBatch
					if err := serveClickHouse(ctx, s, sc, base); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}

	root := &ffcli.Command{
		ShortUsage:  "projector [serve|rebuild] [flags]",
		Subcommands: []*ffcli.Command{serve, cli.RebuildCommand("projector")},
		Exec: func(ctx context.Context, args []string) error {
			return serve.ParseAndRun(ctx, args)
		},
	}
	// Flags without a subcommand are the serve flags, as before subcommands existed.
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelp(args[0])) {
		args = append([]string{"serve"}, args...)
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return root.ParseAndRun(ctx, args)
}

func isHelp(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "h", "help":
		return true
	}
	return false
}
