// Command ledgerctl is the operators' tool of the ledger.
//
//	ledgerctl status [--partitions] [--output table|json]   every consumer group of the ledger: members, lag in records and in seconds
//
// (issue 17: the DLQ, replay and erasure subcommands are still to come;
// `ingest topology` and `projector rebuild` keep their own entry points.)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/topology"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ledgerctl:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	var (
		kcfg       config.Kafka
		output     string
		partitions bool
		timeout    time.Duration
	)
	statusFS := flag.NewFlagSet("ledgerctl status", flag.ContinueOnError)
	kcfg.RegisterFlags(statusFS, "ledgerctl")
	statusFS.StringVar(&output, "output", "table", "table or json (OUTPUT)")
	statusFS.BoolVar(&partitions, "partitions", false, "one line per partition (PARTITIONS)")
	statusFS.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long (TIMEOUT)")
	status := &ffcli.Command{
		Name:       "status",
		ShortUsage: "ledgerctl status [--partitions] [--output table|json] [flags]",
		ShortHelp:  "the ledger's consumer groups: state, members, lag in records and in seconds",
		FlagSet:    statusFS,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			errs := []error{kcfg.Validate()}
			if output != "table" && output != "json" {
				errs = append(errs, fmt.Errorf("output %q: want table or json", output))
			}
			if timeout <= 0 {
				errs = append(errs, fmt.Errorf("timeout %s: must be positive", timeout))
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("configuration:\n%w", err)
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			groups, err := Status(ctx, kcfg)
			if err != nil {
				return err
			}
			return write(out, groups, output, partitions)
		},
	}
	root := &ffcli.Command{
		ShortUsage:  "ledgerctl <subcommand> [flags]",
		Subcommands: []*ffcli.Command{status},
		Exec: func(context.Context, []string) error {
			return fmt.Errorf("a subcommand: status (ledgerctl -h)")
		},
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return root.ParseAndRun(ctx, args)
}

// Group is one consumer group of the ledger as status shows it.
type Group struct {
	Group      string      `json:"group"`
	Topic      string      `json:"topic"`
	State      string      `json:"state"`
	Members    int         `json:"members"`
	Lag        int64       `json:"lag"`         // records between the committed offsets and the end (commit markers included)
	LagSeconds float64     `json:"lag_seconds"` // age of the oldest record not consumed yet; 0 when none
	Partitions []Partition `json:"partitions"`
}

// Partition is one partition of a group's topic.
type Partition struct {
	Partition  int32   `json:"partition"`
	Committed  int64   `json:"committed"` // -1: nothing committed
	End        int64   `json:"end"`
	Lag        int64   `json:"lag"`
	LagSeconds float64 `json:"lag_seconds"`
}

// Status reads every consumer group of the ledger under cfg's topic prefix
// (the processor on the commands topic; the projectors, of every
// generation, on the events topic), its committed offsets against the
// topic's ends, and the age of the first record each group has not
// consumed, read read_committed.
func Status(ctx context.Context, cfg config.Kafka) ([]Group, error) {
	cl, err := kafkax.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := topology.NamesFor(cfg.TopicPrefix)
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var out []Group
	for _, g := range listed.Groups() {
		var topic string
		switch {
		case g == cfg.TopicPrefix+"processor":
			topic = names.Commands
		case strings.HasPrefix(g, cfg.TopicPrefix+"projector-"):
			topic = names.Events
		default:
			continue
		}
		out = append(out, Group{Group: g, Topic: topic})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no consumer group of the ledger under the topic prefix %q (is it the prefix the binaries use?)", cfg.TopicPrefix)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	ends, err := adm.ListEndOffsets(ctx, names.Commands, names.Events)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	now := time.Now()
	for i := range out {
		g := &out[i]
		described, err := adm.DescribeGroups(ctx, g.Group)
		if err != nil {
			return nil, fmt.Errorf("describe group %s: %w", g.Group, err)
		}
		d := described[g.Group]
		g.State, g.Members = d.State, len(d.Members)
		committed, err := adm.FetchOffsets(ctx, g.Group)
		if err != nil {
			return nil, fmt.Errorf("offsets of %s: %w", g.Group, err)
		}
		firsts := map[int32]int64{}
		ends.Each(func(e kadm.ListedOffset) {
			if e.Topic != g.Topic {
				return
			}
			p := Partition{Partition: e.Partition, Committed: -1, End: e.Offset}
			from := int64(0)
			if o, ok := committed.Lookup(g.Topic, e.Partition); ok && o.Err == nil {
				p.Committed, from = o.At, o.At
			}
			p.Lag = max(e.Offset-from, 0)
			if p.Lag > 0 {
				firsts[e.Partition] = from
			}
			g.Partitions = append(g.Partitions, p)
		})
		sort.Slice(g.Partitions, func(a, b int) bool { return g.Partitions[a].Partition < g.Partitions[b].Partition })
		stamps, err := firstStamps(ctx, cfg, g.Topic, firsts)
		if err != nil {
			return nil, fmt.Errorf("the oldest records %s has not consumed: %w", g.Group, err)
		}
		for j := range g.Partitions {
			p := &g.Partitions[j]
			if at, ok := stamps[p.Partition]; ok {
				p.LagSeconds = max(now.Sub(at).Seconds(), 0)
			}
			g.Lag += p.Lag
			g.LagSeconds = max(g.LagSeconds, p.LagSeconds)
		}
	}
	return out, nil
}

// firstStamps reads, read_committed, the first record at or after each
// partition's offset in from and returns its timestamp; a partition with
// only commit markers left has none.
func firstStamps(ctx context.Context, cfg config.Kafka, topic string, from map[int32]int64) (map[int32]time.Time, error) {
	out := map[int32]time.Time{}
	if len(from) == 0 {
		return out, nil
	}
	offsets := map[int32]kgo.Offset{}
	for p, o := range from {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl, err := kafkax.NewClient(cfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// A partition whose rest is markers (or an open transaction) returns
	// nothing: wait briefly, not for ever.
	wait, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for len(out) < len(from) {
		fs := cl.PollFetches(wait)
		if wait.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := out[r.Partition]; !ok {
				out[r.Partition] = r.Timestamp
			}
		})
	}
	return out, ctx.Err()
}

func write(w io.Writer, groups []Group, output string, partitions bool) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(groups)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tSTATE\tMEMBERS\tLAG\tLAG SECONDS")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.1f\n", g.Group, g.Topic, g.State, g.Members, g.Lag, g.LagSeconds)
		if partitions {
			for _, p := range g.Partitions {
				fmt.Fprintf(tw, "  partition %d\tcommitted %d\tend %d\t\t%d\t%.1f\n", p.Partition, p.Committed, p.End, p.Lag, p.LagSeconds)
			}
		}
	}
	return tw.Flush()
}
