package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/topology"
)

// ReplayReport is a replay's plan, and whether it was applied.
type ReplayReport struct {
	Group      string        `json:"group"`
	Topic      string        `json:"topic"`
	DryRun     bool          `json:"dry_run"`
	Partitions []ReplayRange `json:"partitions"`
}

// ReplayRange is one partition's committed offset before and after.
type ReplayRange struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from"` // -1: nothing committed
	To        int64 `json:"to"`
}

func replayCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl replay", flag.ContinueOnError)
	c := newCommon(fs, time.Minute)
	group := fs.String("group", "", "the projector's consumer group (GROUP)")
	view := fs.String("view", "", "or the view (redis, clickhouse): its one group under the topic prefix (VIEW)")
	toTime := fs.String("to-time", "", "move to the first event at or after this time: RFC 3339, or a duration ago like 2h (TO_TIME)")
	toOffset := fs.String("to-offset", "", "move to these offsets: partition:offset[,partition:offset…] (TO_OFFSET)")
	toEarliest := fs.Bool("to-earliest", false, "move to the start of every partition (TO_EARLIEST)")
	yes := fs.Bool("yes", false, "commit the new offsets; without it, a dry run (YES)")
	return &ffcli.Command{
		Name:       "replay",
		ShortUsage: "ledgerctl replay --group G | --view redis|clickhouse  --to-time T | --to-offset P:O[,P:O] | --to-earliest  [--yes]",
		ShortHelp:  "reset a stopped projector group to a time or offsets, so that it reads the events again",
		LongHelp: "What Kafka Streams' application reset tool does for one view: the group must have no members " +
			"(stop its projectors first). The views apply an event only at the next version of its aggregate, so " +
			"going back re-applies nothing twice; going forward past events the view lacks leaves gaps at which " +
			"their accounts stop (use projector rebuild instead).",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			var problems []error
			if (*group == "") == (*view == "") {
				problems = append(problems, errors.New("group or view: exactly one"))
			}
			if *view != "" && *view != "redis" && *view != "clickhouse" {
				problems = append(problems, fmt.Errorf("view %q: want redis or clickhouse", *view))
			}
			n := 0
			for _, set := range []bool{*toTime != "", *toOffset != "", *toEarliest} {
				if set {
					n++
				}
			}
			if n != 1 {
				problems = append(problems, errors.New("target: exactly one of --to-time, --to-offset and --to-earliest"))
			}
			var at time.Time
			if *toTime != "" {
				var err error
				if at, err = parseWhen("to-time", *toTime, time.Now()); err != nil {
					problems = append(problems, err)
				}
			}
			var offs map[int32]int64
			if *toOffset != "" {
				var err error
				if offs, err = parseOffsets(*toOffset); err != nil {
					problems = append(problems, fmt.Errorf("to-offset: %w", err))
				}
			}
			ctx, cancel, err := c.check(ctx, problems...)
			if err != nil {
				return err
			}
			defer cancel()
			rep, err := replay(ctx, c.kafka, *group, *view, at, offs, !*yes)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(out, rep)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "group %s on %s\n", rep.Group, rep.Topic)
			fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tNEW")
			for _, p := range rep.Partitions {
				fmt.Fprintf(tw, "%d\t%d\t%d\n", p.Partition, p.From, p.To)
			}
			if rep.DryRun {
				fmt.Fprintln(tw, "dry run: nothing committed; --yes to commit")
			} else {
				fmt.Fprintln(tw, "committed: start the projectors")
			}
			return tw.Flush()
		},
	}
}

func replay(ctx context.Context, cfg config.Kafka, group, view string, at time.Time, offs map[int32]int64, dry bool) (ReplayReport, error) {
	topic := topology.NamesFor(cfg.TopicPrefix).Events
	adm, err := admin(cfg)
	if err != nil {
		return ReplayReport{}, err
	}
	defer adm.Close()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("list groups: %w", err)
	}
	if view != "" {
		var found []string
		base := cfg.TopicPrefix + "projector-" + view
		for _, g := range listed.Groups() {
			if g == base || strings.HasPrefix(g, base+"-") {
				found = append(found, g)
			}
		}
		switch len(found) {
		case 0:
			return ReplayReport{}, fmt.Errorf("view %s: no projector group %s[-<generation>] under the topic prefix %q", view, base, cfg.TopicPrefix)
		case 1:
			group = found[0]
		default:
			sort.Strings(found)
			return ReplayReport{}, fmt.Errorf("view %s: several groups (%s; a rebuild running?): name one with --group", view, strings.Join(found, ", "))
		}
	} else if _, ok := listed[group]; !ok {
		return ReplayReport{}, fmt.Errorf("group %q: no such consumer group (ledgerctl status lists them)", group)
	}
	rep := ReplayReport{Group: group, Topic: topic, DryRun: dry}
	members, err := kafkax.GroupMembers(ctx, cfg, group)
	if err != nil {
		return rep, err
	}
	if members > 0 {
		return rep, fmt.Errorf("group %s has %d member(s): stop its projectors first (a live member would overwrite the offsets)", group, members)
	}
	starts, ends, err := offsetRange(ctx, adm, topic)
	if err != nil {
		return rep, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return rep, fmt.Errorf("offsets of %s: %w", group, err)
	}
	target := map[int32]int64{}
	switch {
	case !at.IsZero():
		if target, err = offsetsAt(ctx, adm, topic, at); err != nil {
			return rep, err
		}
	case offs != nil:
		for p, o := range offs {
			s, ok1 := starts.Lookup(topic, p)
			e, ok2 := ends.Lookup(topic, p)
			if !ok1 || !ok2 {
				return rep, fmt.Errorf("partition %d: %s has no such partition", p, topic)
			}
			if o < s.Offset || o > e.Offset {
				return rep, fmt.Errorf("partition %d: offset %d is outside [%d, %d]", p, o, s.Offset, e.Offset)
			}
			target[p] = o
		}
	default:
		starts.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
	}
	var commit kadm.Offsets
	for p, o := range target {
		from := int64(-1)
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
			from = c.At
		}
		rep.Partitions = append(rep.Partitions, ReplayRange{Partition: p, From: from, To: o})
		commit.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Partition < rep.Partitions[j].Partition })
	if dry {
		return rep, nil
	}
	if err := adm.CommitAllOffsets(ctx, group, commit); err != nil {
		return rep, fmt.Errorf("commit offsets of %s: %w", group, err)
	}
	return rep, nil
}
