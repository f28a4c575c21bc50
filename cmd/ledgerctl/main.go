// Command ledgerctl is the operators' tool of the ledger.
//
//	ledgerctl status [--partitions] [--output table|json]   every consumer group of the ledger: members, lag in records and in seconds
//	ledgerctl dlq list|show|retry|purge                     browse, retry and purge the dead-letter queue
//	ledgerctl replay --group G | --view redis|clickhouse     reset a stopped projector group to a time or offsets
//	ledgerctl erase --subject <account id>                  erase one account's personal data
//	ledgerctl topology plan|apply                           the Kafka topics and ACLs; the same command as `ingest topology`
//	ledgerctl rebuild -view redis|clickhouse                a new generation of a view; the same command as `projector rebuild`
//
// topology and rebuild are built by internal/cli, which ingest and projector
// call too, so their old entry points stay as aliases.
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

	"github.com/cqrs-ledger/ledger/internal/cli"
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
	root := &ffcli.Command{
		ShortUsage: "ledgerctl <subcommand> [flags]",
		Subcommands: []*ffcli.Command{
			statusCmd(out), dlqCmd(out), replayCmd(out), eraseCmd(out),
			cli.TopologyCommand("ledgerctl", out), cli.RebuildCommand("ledgerctl"),
		},
		Exec: func(context.Context, []string) error {
			return fmt.Errorf("a subcommand: status, dlq, replay, erase, topology, rebuild (ledgerctl -h)")
		},
	}
	ctx, cancel := ops.SignalContext()
	defer cancel()
	return root.ParseAndRun(ctx, args)
}

// common holds the flags every subcommand has: the brokers, the output
// format and the time limit.
type common struct {
	kafka   config.Kafka
	output  string
	timeout time.Duration
}

func newCommon(fs *flag.FlagSet, timeout time.Duration) *common {
	c := &common{}
	c.kafka.RegisterFlags(fs, "ledgerctl")
	fs.StringVar(&c.output, "output", "table", "table or json (OUTPUT)")
	fs.DurationVar(&c.timeout, "timeout", timeout, "give up after this long (TIMEOUT)")
	return c
}

// check validates the common flags and extra problems, and returns the
// context bounded by --timeout.
func (c *common) check(ctx context.Context, extra ...error) (context.Context, context.CancelFunc, error) {
	errs := append([]error{c.kafka.Validate()}, extra...)
	if c.output != "table" && c.output != "json" {
		errs = append(errs, fmt.Errorf("output %q: want table or json", c.output))
	}
	if c.timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must be positive", c.timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return ctx, cancel, nil
}

func statusCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl status", flag.ContinueOnError)
	c := newCommon(fs, 30*time.Second)
	partitions := fs.Bool("partitions", false, "one line per partition (PARTITIONS)")
	return &ffcli.Command{
		Name:       "status",
		ShortUsage: "ledgerctl status [--partitions] [--output table|json] [flags]",
		ShortHelp:  "the ledger's consumer groups: state, members, lag in records and in seconds; the DLQ's newest record",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			ctx, cancel, err := c.check(ctx)
			if err != nil {
				return err
			}
			defer cancel()
			st, err := Status(ctx, c.kafka)
			if err != nil {
				return err
			}
			return write(out, st, c.output, *partitions)
		},
	}
}

// StatusReport is what status shows.
type StatusReport struct {
	Groups []Group    `json:"groups"`
	DLQ    DLQSummary `json:"dlq"`
}

// DLQSummary is the dead-letter topic at a glance.
type DLQSummary struct {
	Topic   string `json:"topic"`
	Records int64  `json:"records"` // between the start and end offsets
	// NewestAgeSeconds is the age of the newest record; -1 when there is
	// none.
	NewestAgeSeconds float64 `json:"newest_age_seconds"`
}

// Group is one consumer group of the ledger as status shows it.
type Group struct {
	Group      string      `json:"group"`
	Topic      string      `json:"topic"`
	State      string      `json:"state"`
	Members    int         `json:"members"`
	Instances  []string    `json:"instances"`   // client id @ host of each member
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
func Status(ctx context.Context, cfg config.Kafka) (StatusReport, error) {
	groups, err := groupStatus(ctx, cfg)
	if err != nil {
		return StatusReport{}, err
	}
	d, err := dlqSummary(ctx, cfg)
	return StatusReport{Groups: groups, DLQ: d}, err
}

func groupStatus(ctx context.Context, cfg config.Kafka) ([]Group, error) {
	adm, err := admin(cfg)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
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
		for _, m := range d.Members {
			g.Instances = append(g.Instances, m.ClientID+"@"+strings.TrimPrefix(m.ClientHost, "/"))
		}
		sort.Strings(g.Instances)
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

// dlqSummary counts the DLQ's records and reads the newest one's time.
func dlqSummary(ctx context.Context, cfg config.Kafka) (DLQSummary, error) {
	topic := topology.NamesFor(cfg.TopicPrefix).DLQ
	out := DLQSummary{Topic: topic, NewestAgeSeconds: -1}
	adm, err := admin(cfg)
	if err != nil {
		return out, err
	}
	defer adm.Close()
	starts, ends, err := offsetRange(ctx, adm, topic)
	if err != nil {
		return out, err
	}
	last := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		s, _ := starts.Lookup(topic, e.Partition)
		out.Records += e.Offset - s.Offset
		if e.Offset > s.Offset {
			last[e.Partition] = e.Offset - 1
		}
	})
	stamps, err := firstStamps(ctx, cfg, topic, last)
	if err != nil {
		return out, fmt.Errorf("the newest DLQ records: %w", err)
	}
	for _, at := range stamps {
		age := max(time.Since(at).Seconds(), 0)
		if out.NewestAgeSeconds < 0 || age < out.NewestAgeSeconds {
			out.NewestAgeSeconds = age
		}
	}
	return out, nil
}

// offsetRange lists the start and end offsets of topic.
func offsetRange(ctx context.Context, adm *kadm.Client, topic string) (starts, ends kadm.ListedOffsets, err error) {
	if starts, err = adm.ListStartOffsets(ctx, topic); err == nil {
		err = starts.Error()
	}
	if err == nil {
		if ends, err = adm.ListEndOffsets(ctx, topic); err == nil {
			err = ends.Error()
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	return starts, ends, nil
}

func write(w io.Writer, st StatusReport, output string, partitions bool) error {
	if output == "json" {
		return writeJSON(w, st)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tSTATE\tMEMBERS\tLAG\tLAG SECONDS\tINSTANCES")
	for _, g := range st.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.1f\t%s\n", g.Group, g.Topic, g.State, g.Members, g.Lag, g.LagSeconds, strings.Join(g.Instances, " "))
		if partitions {
			for _, p := range g.Partitions {
				fmt.Fprintf(tw, "  partition %d\tcommitted %d\tend %d\t\t%d\t%.1f\n", p.Partition, p.Committed, p.End, p.Lag, p.LagSeconds)
			}
		}
	}
	newest := "none"
	if st.DLQ.NewestAgeSeconds >= 0 {
		newest = fmt.Sprintf("%.1f s ago", st.DLQ.NewestAgeSeconds)
	}
	fmt.Fprintf(tw, "\nDLQ %s\t%d records\tnewest %s\n", st.DLQ.Topic, st.DLQ.Records, newest)
	return tw.Flush()
}

// admin returns an admin client of cfg's cluster; Close closes it.
func admin(cfg config.Kafka) (*kadm.Client, error) {
	cl, err := kafkax.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
