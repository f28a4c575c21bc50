package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/rebuild"
	"github.com/cqrs-ledger/ledger/internal/redissink"
)

// ProjectorFlags are the settings the projector's serve and rebuild share:
// the brokers, both stores and the log level.
type ProjectorFlags struct {
	Kafka      config.Kafka
	Redis      config.Redis
	ClickHouse config.ClickHouse
	LogLevel   string
}

// Register adds the flags (and so the environment variables) of f to fs;
// clientID is the default Kafka client id.
func (f *ProjectorFlags) Register(fs *flag.FlagSet, clientID string) {
	f.Kafka.RegisterFlags(fs, clientID)
	f.Redis.RegisterFlags(fs)
	f.ClickHouse.RegisterFlags(fs)
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error (LOG_LEVEL)")
}

// RebuildCommand returns `<binary> rebuild -view redis|clickhouse`, which
// replays the events into a new generation of a view and switches readers
// and the live projectors to it. Each call returns a new command with its
// own flag values.
func RebuildCommand(binary string) *ffcli.Command {
	var (
		rc       ProjectorFlags
		view     string
		progress bool
		timeout  time.Duration
	)
	fs := flag.NewFlagSet(binary+" rebuild", flag.ContinueOnError)
	rc.Register(fs, "ledger-projector-rebuild")
	fs.StringVar(&view, "view", "", "the view to rebuild: redis or clickhouse (VIEW)")
	fs.BoolVar(&progress, "progress", true, "show a progress bar on stderr (PROGRESS)")
	fs.DurationVar(&timeout, "switch-timeout", time.Minute, "how long to wait for the live projectors to leave the old generation (SWITCH_TIMEOUT)")
	return &ffcli.Command{
		Name:       "rebuild",
		ShortUsage: binary + " rebuild -view redis|clickhouse [flags]",
		ShortHelp:  "replay the events into a new generation of a view, switch readers to it, drop the old one",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			errs := []error{rc.Kafka.Validate()}
			switch view {
			case "redis":
				errs = append(errs, rc.Redis.Validate())
			case "clickhouse":
				errs = append(errs, rc.ClickHouse.Validate())
			default:
				errs = append(errs, fmt.Errorf("view %q: want redis or clickhouse", view))
			}
			if timeout <= 0 {
				errs = append(errs, fmt.Errorf("switch-timeout %s: must be positive", timeout))
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			log, err := ops.NewLogger("projector-rebuild", rc.LogLevel)
			if err != nil {
				return err
			}
			cfg := rebuild.Config{Kafka: rc.Kafka, SwitchTimeout: timeout, Log: log}
			cfg.Progress, cfg.Done = progressBar(view, progress)
			switch view {
			case "redis":
				rdb, err := redissink.NewClient(rc.Redis)
				if err != nil {
					return err
				}
				defer rdb.Close()
				cfg.View = redissink.NewRebuildView(rdb, rc.Redis.KeyPrefix)
			default:
				if err := chsink.EnsureDatabase(ctx, rc.ClickHouse); err != nil {
					return err
				}
				conn, err := chsink.Open(rc.ClickHouse)
				if err != nil {
					return err
				}
				defer conn.Close()
				v, err := chsink.NewRebuildView(ctx, conn, chsink.OptionsFor(rc.ClickHouse), log.With("view", "clickhouse"))
				if err != nil {
					return err
				}
				cfg.View = v
			}
			return rebuild.Run(ctx, cfg)
		},
	}
}
