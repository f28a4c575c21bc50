// Command projector runs the read-side consumer groups that project the
// events topic into Redis (hot lookups) and ClickHouse (history, analytics),
// and `projector rebuild`, which replays the events into a fresh generation.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/sink"
	chsink "github.com/cqrs-ledger/ledger/internal/sink/clickhouse"
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
		kafka    config.Kafka
		rcfg     config.Redis
		ccfg     config.ClickHouse
		httpCfg  config.HTTP
		logLevel string
	)
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	kafka.RegisterFlags(fs, "ledger-projector")
	rcfg.RegisterFlags(fs)
	ccfg.RegisterFlags(fs)
	httpCfg.RegisterFlags(fs, "127.0.0.1:8081")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (LOG_LEVEL)")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(kafka.Validate(), rcfg.Validate(), ccfg.Validate(), httpCfg.Validate()); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log, err := ops.NewLogger("projector", logLevel)
	if err != nil {
		return err
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return ops.RunService(ctx, "projector", httpCfg, log, func(s *ops.Service) error {
		cl, err := kafkax.NewClient(kafka)
		if err != nil {
			return err
		}
		s.OnClose(cl.Close)
		s.Ready.Add("kafka", cl.Ping)
		if err := chsink.EnsureDatabase(ctx, ccfg); err != nil {
			return err
		}
		_, _, err = sink.Connect(s, rcfg, ccfg)
		return err
	})
}
