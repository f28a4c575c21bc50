package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/schollz/progressbar/v3"

	"github.com/cqrs-ledger/ledger/internal/erase"
)

func eraseCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl erase", flag.ContinueOnError)
	c := newCommon(fs, 10*time.Minute)
	subject := fs.String("subject", "", "the account id whose personal data to erase (SUBJECT)")
	yes := fs.Bool("yes", false, "write; without it, a dry run that only reports (YES)")
	allowOpen := fs.Bool("allow-open", false, "erase an account that is not closed (it must not be written to meanwhile; see docs/erasure.md) (ALLOW_OPEN)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the processor to rewrite the snapshot (WAIT)")
	progress := fs.Bool("progress", true, "progress bars on stderr (PROGRESS)")
	return &ffcli.Command{
		Name:       "erase",
		ShortUsage: "ledgerctl erase --subject <account id> [--yes] [--output table|json] [flags]",
		ShortHelp:  "erase one account's personal data (owner, references, correlation ids); amounts, versions and balances stay",
		LongHelp: "Writes redacted copies of the subject's events and command results under the same keys " +
			"(compaction then drops the originals), has the processor rewrite its snapshot, and deletes the " +
			"consumed part of its commands partition. Without --yes it is a dry run. Idempotent: run it again " +
			"to finish an erasure that was interrupted. See docs/erasure.md.",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			var problems []error
			if *subject == "" {
				problems = append(problems, errors.New("subject: required (--subject <account id>)"))
			}
			ctx, cancel, err := c.check(ctx, problems...)
			if err != nil {
				return err
			}
			defer cancel()
			opts := erase.Options{Subject: *subject, DryRun: !*yes, AllowOpen: *allowOpen, Wait: *wait,
				Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			if *progress {
				opts.Progress = phaseBars()
			}
			rep, err := erase.Run(ctx, c.kafka, opts)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(out, rep)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "subject\t%s (partition %d, closed: %v)\n", rep.Subject, rep.Partition, rep.Closed)
			fmt.Fprintf(tw, "events\t%d, redacted now %d\n", rep.Events, rep.EventsRedacted)
			fmt.Fprintf(tw, "command results\t%d, redacted now %d\n", rep.Results, rep.ResultsRedacted)
			fmt.Fprintf(tw, "snapshot held the owner\t%v\n", rep.SnapshotOwner)
			fmt.Fprintf(tw, "dead letters of the subject\t%d (not touched: ledgerctl dlq purge, or retention)\n", rep.DLQRecords)
			if rep.DryRun {
				fmt.Fprintf(tw, "dry run\tnothing written; run again with --yes to erase\n")
			} else {
				fmt.Fprintf(tw, "commands deleted\tbelow offset %d of partition %d\n", rep.CommandsDeletedBefore, rep.Partition)
				fmt.Fprintf(tw, "originals on disk\tuntil compaction (events max.compaction.lag.ms=%s)\n", rep.MaxCompactionLag)
			}
			return tw.Flush()
		},
	}
}

// phaseBars returns a progress callback that draws one bar per phase on
// stderr, with the rate and the time left.
func phaseBars() func(phase string, done, total int64) {
	var (
		bar  *progressbar.ProgressBar
		name string
	)
	finished := ""
	return func(phase string, done, total int64) {
		if phase == finished {
			return
		}
		if phase != name || bar == nil {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			name = phase
			bar = progressbar.NewOptions64(max(total, 1),
				progressbar.OptionSetDescription("read "+phase),
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("records"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetWidth(30),
			)
		}
		_ = bar.Set64(done)
		if done >= total {
			_ = bar.Finish()
			fmt.Fprintln(os.Stderr)
			bar, finished = nil, phase
		}
	}
}
