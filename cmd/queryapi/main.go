// Command queryapi serves the read side over HTTP/JSON: point lookups from
// Redis, history and analytics from ClickHouse.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/sink"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "queryapi:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	var (
		rcfg     config.Redis
		ccfg     config.ClickHouse
		httpCfg  config.HTTP
		logLevel string
	)
	fs := flag.NewFlagSet("queryapi", flag.ContinueOnError)
	rcfg.RegisterFlags(fs)
	ccfg.RegisterFlags(fs)
	httpCfg.RegisterFlags(fs, "127.0.0.1:8082")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (LOG_LEVEL)")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(rcfg.Validate(), ccfg.Validate(), httpCfg.Validate()); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log, err := ops.NewLogger("queryapi", logLevel)
	if err != nil {
		return err
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return ops.RunService(ctx, "queryapi", httpCfg, log, func(s *ops.Service) error {
		_, _, err := sink.Connect(s, rcfg, ccfg)
		return err
	})
}
