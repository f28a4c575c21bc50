// Command ingest is the write side: the HTTP command gateway and the
// aggregate processors, plus `ingest topology plan|apply`, which reconciles
// the Kafka topics with the declaration in topology/ (internal/cli builds
// it; `ledgerctl topology` is the same command).
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/cqrs-ledger/ledger/internal/cli"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/gateway"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/tracing"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ingest:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	var (
		kafka    config.Kafka
		httpCfg  config.HTTP
		logLevel string
		roles    = struct{ gateway, processor bool }{true, true}
		gwCfg    gateway.Config
		procCfg  processor.Config
		registry string
		procUser string
		procPass string
		sagaKey  string
		sagaFile string
		noSaga   bool
	)
	serveFS := flag.NewFlagSet("ingest serve", flag.ContinueOnError)
	kafka.RegisterFlags(serveFS, "ledger-ingest")
	httpCfg.RegisterFlags(serveFS, "127.0.0.1:8080", "127.0.0.1:9080", config.ScopeWrite)
	serveFS.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (LOG_LEVEL)")
	serveFS.BoolVar(&roles.gateway, "gateway", true, "serve the HTTP command gateway (GATEWAY)")
	serveFS.BoolVar(&roles.processor, "processor", true, "run an aggregate processor (PROCESSOR)")
	serveFS.StringVar(&procCfg.InstanceID, "processor-instance", "", "unique id of this processor in its group, part of its transactional id; default <hostname>-<pid> (PROCESSOR_INSTANCE)")
	serveFS.DurationVar(&procCfg.DedupeWindow, "dedupe-window", processor.DefaultDedupeWindow, "how long a command id is remembered; ≤ the command-results retention (DEDUPE_WINDOW)")
	serveFS.DurationVar(&procCfg.SessionTimeout, "group-session-timeout", 45*time.Second, "how long the group waits for a crashed processor before reassigning its partitions (GROUP_SESSION_TIMEOUT)")
	serveFS.StringVar(&procUser, "processor-kafka-sasl-user", "", "the processor's own SASL user when gateway and processor run in one process (each role its own principal); default the Kafka SASL user (PROCESSOR_KAFKA_SASL_USER)")
	config.SecretFlags(serveFS, &procPass, "processor-kafka-sasl-password", "processor's SASL password, with processor-kafka-sasl-user", "PROCESSOR_KAFKA_SASL_PASSWORD")
	serveFS.StringVar(&sagaKey, "saga-key", "", "the processors' shared key, hex, at least 32 bytes: signs the saga commands they write and is required of those they read (SAGA_KEY)")
	serveFS.StringVar(&sagaFile, "saga-key-file", "", "a file holding the saga key in hex, readable by its owner only (SAGA_KEY_FILE)")
	serveFS.BoolVar(&noSaga, "insecure-trust-origin-header", false, "run a processor without a saga key: any producer that may write the commands topic can then forge saga commands (INSECURE_TRUST_ORIGIN_HEADER)")
	serveFS.StringVar(&registry, "schema-registry-url", "", "a Confluent-compatible schema registry; when set, the processor also reads commands in the Confluent wire format (SCHEMA_REGISTRY_URL)")
	serveFS.IntVar(&procCfg.MaxBatch, "max-batch", processor.DefaultMaxBatch, "commands per transaction, at most (MAX_BATCH)")
	serveFS.Int64Var(&gwCfg.MaxBodyBytes, "max-body-bytes", gateway.DefaultMaxBodyBytes, "request body limit; larger bodies get 413 (MAX_BODY_BYTES)")
	serveFS.IntVar(&gwCfg.MaxBatch, "max-batch-items", gateway.DefaultMaxBatch, "items per batch request (MAX_BATCH_ITEMS)")
	serveFS.DurationVar(&gwCfg.MaxWait, "max-wait", gateway.DefaultMaxWait, "largest ?wait= accepted (MAX_WAIT)")

	serve := &ffcli.Command{
		Name:       "serve",
		ShortUsage: "ingest serve [flags]",
		ShortHelp:  "run the command gateway and/or an aggregate processor (the default)",
		FlagSet:    serveFS,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			errs := []error{kafka.Validate(), httpCfg.Validate()}
			if !roles.gateway && !roles.processor {
				errs = append(errs, errors.New("gateway and processor are both off: nothing to run"))
			}
			if roles.processor {
				key, err := loadSagaKey(sagaKey, sagaFile, noSaga)
				errs = append(errs, err)
				procCfg.SagaKey = key
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			log, err := ops.NewLogger("ingest", logLevel)
			if err != nil {
				return err
			}
			if roles.processor && noSaga {
				log.Warn("no saga key (--insecure-trust-origin-header): any producer allowed to write the commands topic can forge saga commands")
			}
			traces, err := tracing.FromEnv(ctx, "ingest")
			if err != nil {
				return err
			}
			return ops.RunService(ctx, "ingest", httpCfg, log, func(s *ops.Service) error {
				s.OnClose(func() { traces.Close(log) }) // first registered, last run
				tp := traces.TracerProvider()
				cl, err := kafkax.NewClient(kafka)
				if err != nil {
					return err
				}
				s.OnClose(cl.Close)
				s.Ready.Add("kafka", cl.Ping)
				if roles.processor {
					procCfg.Kafka, procCfg.Log, procCfg.Registerer, procCfg.TracerProvider = kafka, log.With("role", "processor"), s.Registry, tp
					if procUser != "" {
						procCfg.Kafka.SASLUser, procCfg.Kafka.SASLPassword = procUser, procPass
					}
					if registry != "" {
						if procCfg.Registry, err = codec.NewRegistry(codec.Default(), registry, nil); err != nil {
							return err
						}
					}
					p, err := processor.New(procCfg)
					if err != nil {
						return err
					}
					s.Ready.Add("processor", p.Ready)
					s.Go("processor", p.Run)
				}
				if roles.gateway {
					gwCfg.Kafka, gwCfg.Log, gwCfg.Registerer, gwCfg.TracerProvider = kafka, log.With("role", "gateway"), s.Registry, tp
					g, err := gateway.New(gwCfg)
					if err != nil {
						return err
					}
					s.OnClose(g.Close)
					api := http.NewServeMux()
					g.Routes(api)
					s.Handle("/v1/", config.ScopeWrite, api)
					s.Ready.Add("gateway", g.Ready)
					s.Go("gateway", g.Run)
				}
				return nil
			})
		},
	}

	root := &ffcli.Command{
		ShortUsage:  "ingest <serve|topology> [flags]",
		Subcommands: []*ffcli.Command{serve, cli.TopologyCommand("ingest", os.Stdout)},
		Exec: func(ctx context.Context, args []string) error {
			return serve.ParseAndRun(ctx, args)
		},
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return root.ParseAndRun(ctx, args)
}

// loadSagaKey returns the saga key from hex or a file of hex; none only
// with insecure.
func loadSagaKey(hexKey, file string, insecure bool) ([]byte, error) {
	switch {
	case hexKey != "" && file != "":
		return nil, errors.New("saga-key and saga-key-file: give one")
	case file != "":
		st, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("saga-key-file: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("saga-key-file %s: mode %s, want it readable by its owner only (chmod 600)", file, st.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("saga-key-file: %w", err)
		}
		hexKey = strings.TrimSpace(string(b))
	case hexKey == "" && insecure:
		return nil, nil
	case hexKey == "":
		return nil, errors.New("saga-key: a processor needs the processors' shared saga key (SAGA_KEY or SAGA_KEY_FILE; scripts/stack makes one in .stack/secrets/saga-key), or --insecure-trust-origin-header")
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		return nil, errors.New("saga key: want hex")
	}
	if len(key) < processor.MinSagaKeyBytes {
		return nil, fmt.Errorf("saga key of %d bytes: want at least %d", len(key), processor.MinSagaKeyBytes)
	}
	return key, nil
}
