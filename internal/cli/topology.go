// Package cli builds the subcommands that more than one binary serves:
// `topology plan|apply` (ingest and ledgerctl) and `rebuild` (projector and
// ledgerctl). A command is the same under every binary: the same flags,
// environment variables, output and errors; only the name in its usage
// differs. ProjectorFlags are the settings rebuild shares with the
// projector's serve.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/topology"
)

// TopologyCommand returns `<binary> topology plan|apply`, which compares
// the topics declared in topology/ with the cluster and applies them, with
// the roles' ACLs. It writes the plan and its outcome to out. Each call
// returns a new command with its own flag values.
func TopologyCommand(binary string, out io.Writer) *ffcli.Command {
	var (
		kafka    config.Kafka
		opts     = topology.DefaultOptions()
		allowInc bool
		acls     = topology.DefaultPrincipals()
		noACLs   bool
	)
	opts.ReplicationFactor = 0 // auto, unless REPLICATION_FACTOR says otherwise
	flags := func(name string) *flag.FlagSet {
		fs := flag.NewFlagSet(binary+" topology "+name, flag.ContinueOnError)
		kafka.RegisterFlags(fs, "ledger-topology")
		fs.Func("partitions", "partitions of every aggregate-keyed topic (PARTITIONS; default 12)", intFlag(&opts.Partitions))
		fs.Func("replication-factor", "replicas per partition, or auto: 3 on a cluster of three brokers or more, else one per broker (REPLICATION_FACTOR; default auto)", func(s string) error {
			if s == "auto" {
				opts.ReplicationFactor = 0
				return nil
			}
			var v int32
			err := intFlag(&v)(s)
			opts.ReplicationFactor = int16(v)
			return err
		})
		fs.DurationVar(&opts.CommandRetention, "command-retention", opts.CommandRetention, "retention of the commands topic (COMMAND_RETENTION)")
		fs.DurationVar(&opts.ResultRetention, "result-retention", opts.ResultRetention, "retention of command-results, ≥ the dedupe window (RESULT_RETENTION)")
		fs.DurationVar(&opts.DLQRetention, "dlq-retention", opts.DLQRetention, "retention of the dlq topic (DLQ_RETENTION)")
		fs.BoolVar(&allowInc, "allow-partition-increase", false, "permit adding partitions to aggregate-keyed topics (moves aggregates; ALLOW_PARTITION_INCREASE)")
		fs.StringVar(&acls.Gateway, "gateway-principal", acls.Gateway, "Kafka principal of the command gateway (GATEWAY_PRINCIPAL)")
		fs.StringVar(&acls.Processor, "processor-principal", acls.Processor, "Kafka principal of the processors (PROCESSOR_PRINCIPAL)")
		fs.StringVar(&acls.Projector, "projector-principal", acls.Projector, "Kafka principal of the projectors (PROJECTOR_PRINCIPAL)")
		fs.StringVar(&acls.Upstream, "upstream-principal", acls.Upstream, "Kafka principal of upstream producers of commands (UPSTREAM_PRINCIPAL)")
		fs.BoolVar(&noACLs, "no-acls", false, "do not create the roles' ACLs (NO_ACLS)")
		return fs
	}

	run := func(apply bool) func(context.Context, []string) error {
		return func(ctx context.Context, _ []string) error {
			opts.Prefix = kafka.TopicPrefix
			if err := errors.Join(kafka.Validate(), opts.Validate(), acls.Validate()); err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			cl, err := kafkax.NewClient(kafka)
			if err != nil {
				return err
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			popts := topology.PlanOptions{AllowPartitionIncrease: allowInc, Local: topology.LocalBrokers(kafka.Brokers)}
			if opts.ReplicationFactor == 0 {
				if opts.ReplicationFactor, err = topology.AutoReplicationFactor(ctx, adm); err != nil {
					return err
				}
				popts.AutoReplication = true
			}
			plan, err := topology.MakePlan(ctx, adm, topology.Declare(opts), popts)
			if err != nil {
				return err
			}
			plan.Write(out)
			if err := plan.Err(); err != nil {
				return fmt.Errorf("refusing to apply:\n%w", err)
			}
			if !apply {
				fmt.Fprintf(out, "%d change(s) to make; apply also creates the roles' ACLs\n", len(plan.Changes))
				return nil
			}
			if len(plan.Changes) > 0 {
				if err := topology.Apply(ctx, adm, plan); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "applied %d change(s)\n", len(plan.Changes))
			if noACLs {
				return nil
			}
			switch err := topology.ApplyACLs(ctx, adm, opts.Prefix, acls); {
			case errors.Is(err, topology.ErrNoAuthorizer):
				fmt.Fprintln(out, "ACLs: the cluster has no authorizer; none created (anyone who reaches the brokers may do anything)")
			case err != nil:
				return err
			default:
				fmt.Fprintf(out, "ACLs: %s, %s, %s and %s have their roles' ACLs\n", acls.Gateway, acls.Processor, acls.Projector, acls.Upstream)
			}
			return nil
		}
	}
	return &ffcli.Command{
		Name:       "topology",
		ShortUsage: binary + " topology plan|apply [flags]",
		ShortHelp:  "compare the declared Kafka topics with the cluster, or apply them",
		Subcommands: []*ffcli.Command{
			{Name: "plan", ShortUsage: binary + " topology plan [flags]", ShortHelp: "print what apply would change",
				FlagSet: flags("plan"), Options: []ff.Option{ff.WithEnvVars()}, Exec: run(false)},
			{Name: "apply", ShortUsage: binary + " topology apply [flags]", ShortHelp: "create and alter topics; refuses destructive changes",
				FlagSet: flags("apply"), Options: []ff.Option{ff.WithEnvVars()}, Exec: run(true)},
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

func intFlag(dst *int32) func(string) error {
	return func(s string) error {
		var v int32
		if _, err := fmt.Sscan(s, &v); err != nil {
			return fmt.Errorf("want an integer: %w", err)
		}
		*dst = v
		return nil
	}
}
