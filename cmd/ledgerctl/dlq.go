package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/topology"
)

// DeadLetter is one record of the DLQ as list shows it.
type DeadLetter struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Key       string    `json:"key"`
	Type      string    `json:"type,omitempty"` // Avro full name, when known
	Error     string    `json:"error"`
	Source    string    `json:"source"` // topic/partition@offset the record was read at
	Attempt   int       `json:"attempt"`
	// Retried: a retry wrote it to the commands topic already.
	Retried bool `json:"retried"`
}

// selection picks DLQ records: every field set must match.
type selection struct {
	partition      int
	offset         int64
	key, reason    string
	since, until   string
	sinceT, untilT time.Time
	limit          int
}

func (s *selection) register(fs *flag.FlagSet) {
	fs.IntVar(&s.partition, "partition", -1, "only this DLQ partition (PARTITION)")
	fs.Int64Var(&s.offset, "offset", -1, "only the record at this offset (with --partition) (OFFSET)")
	fs.StringVar(&s.key, "key", "", "only records with this key (KEY)")
	fs.StringVar(&s.reason, "reason", "", "only records whose error contains this text (REASON)")
	fs.StringVar(&s.since, "since", "", "only records at or after this time: RFC 3339, or a duration ago like 2h (SINCE)")
	fs.StringVar(&s.until, "until", "", "only records before this time: RFC 3339, or a duration ago (UNTIL)")
	fs.IntVar(&s.limit, "limit", 0, "at most this many records, newest last; 0: all (LIMIT)")
}

// parse checks the selection; explicit reports whether anything narrows it.
func (s *selection) parse(now time.Time) (explicit bool, err error) {
	var errs []error
	parseT := func(name, v string) time.Time {
		t, err := parseWhen(name, v, now)
		if err != nil {
			errs = append(errs, err)
		}
		return t
	}
	s.sinceT, s.untilT = parseT("since", s.since), parseT("until", s.until)
	if s.offset >= 0 && s.partition < 0 {
		errs = append(errs, errors.New("offset: needs --partition"))
	}
	if s.offset < -1 || s.partition < -1 || s.limit < 0 {
		errs = append(errs, errors.New("partition, offset and limit: must not be negative"))
	}
	explicit = s.partition >= 0 || s.key != "" || s.reason != "" || s.since != "" || s.until != ""
	return explicit, errors.Join(errs...)
}

// parseWhen reads a time flag: RFC 3339, or a duration before now; "" is
// the zero time.
func parseWhen(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time or a duration like 90m", name, v)
}

// offsetsAt returns, per partition of topic, the offset of the first
// record at or after at (the end when there is none).
func offsetsAt(ctx context.Context, adm *kadm.Client, topic string, at time.Time) (map[int32]int64, error) {
	after, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic)
	if err == nil {
		err = after.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("offsets of %s at %s: %w", topic, at.Format(time.RFC3339), err)
	}
	out := map[int32]int64{}
	after.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

func (s *selection) match(d DeadLetter) bool {
	switch {
	case s.partition >= 0 && d.Partition != int32(s.partition),
		s.offset >= 0 && d.Offset != s.offset,
		s.key != "" && d.Key != s.key,
		s.reason != "" && !strings.Contains(d.Error, s.reason),
		!s.sinceT.IsZero() && d.Time.Before(s.sinceT),
		!s.untilT.IsZero() && !d.Time.Before(s.untilT):
		return false
	}
	return true
}

func dlqCmd(out io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name:        "dlq",
		ShortUsage:  "ledgerctl dlq list|show|retry|purge [flags]",
		ShortHelp:   "browse, retry and purge the dead-letter queue",
		Subcommands: []*ffcli.Command{dlqListCmd(out), dlqShowCmd(out), dlqRetryCmd(out), dlqPurgeCmd(out)},
		Exec: func(context.Context, []string) error {
			return errors.New("a dlq subcommand: list, show, retry, purge (ledgerctl dlq -h)")
		},
	}
}

func dlqListCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl dlq list", flag.ContinueOnError)
	c := newCommon(fs, time.Minute)
	var sel selection
	sel.register(fs)
	return &ffcli.Command{
		Name:       "list",
		ShortUsage: "ledgerctl dlq list [--since 2h] [--reason text] [--partition N] [--key K] [--output table|json]",
		ShortHelp:  "the DLQ's records that match, oldest first",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			_, perr := sel.parse(time.Now())
			ctx, cancel, err := c.check(ctx, perr)
			if err != nil {
				return err
			}
			defer cancel()
			ds, _, err := readDLQ(ctx, c.kafka, &sel)
			if err != nil {
				return err
			}
			if c.output == "json" {
				if ds == nil {
					ds = []DeadLetter{}
				}
				return writeJSON(out, ds)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tOFFSET\tTIME\tKEY\tTYPE\tATTEMPT\tRETRIED\tERROR")
			for _, d := range ds {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%v\t%s\n", d.Partition, d.Offset, d.Time.UTC().Format(time.RFC3339),
					clip(d.Key, 40), strings.TrimPrefix(d.Type, "ledger.commands."), d.Attempt, d.Retried, clip(d.Error, 100))
			}
			return tw.Flush()
		},
	}
}

// Shown is one DLQ record decoded, as show prints it.
type Shown struct {
	DeadLetter
	Headers map[string]string `json:"headers"`
	// Command is the value decoded to JSON, when it decodes.
	Command json.RawMessage `json:"command,omitempty"`
	// DecodeError says why it does not; ValueHex is then its first bytes.
	DecodeError string `json:"decode_error,omitempty"`
	ValueHex    string `json:"value_hex,omitempty"`
	ValueBytes  int    `json:"value_bytes"`
}

func dlqShowCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl dlq show", flag.ContinueOnError)
	c := newCommon(fs, time.Minute)
	partition := fs.Int("partition", -1, "the record's DLQ partition (PARTITION)")
	offset := fs.Int64("offset", -1, "the record's offset (OFFSET)")
	return &ffcli.Command{
		Name:       "show",
		ShortUsage: "ledgerctl dlq show --partition N --offset O [--output table|json]",
		ShortHelp:  "one DLQ record decoded: headers, error, the command as JSON",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			var problems []error
			if *partition < 0 || *offset < 0 {
				problems = append(problems, errors.New("partition and offset: both required, not negative"))
			}
			ctx, cancel, err := c.check(ctx, problems...)
			if err != nil {
				return err
			}
			defer cancel()
			sel := selection{partition: *partition, offset: *offset}
			ds, recs, err := readDLQ(ctx, c.kafka, &sel)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return fmt.Errorf("no DLQ record at partition %d offset %d (deleted, a retry marker, or past the end)", *partition, *offset)
			}
			s := show(ds[0], recs[0])
			if c.output == "json" {
				return writeJSON(out, s)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "record\t%d/%d at %s\n", s.Partition, s.Offset, s.Time.UTC().Format(time.RFC3339Nano))
			fmt.Fprintf(tw, "key\t%q\n", s.Key)
			fmt.Fprintf(tw, "error\t%s\n", s.Error)
			fmt.Fprintf(tw, "source\t%s\n", s.Source)
			fmt.Fprintf(tw, "attempt\t%d (retried: %v)\n", s.Attempt, s.Retried)
			keys := make([]string, 0, len(s.Headers))
			for k := range s.Headers {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "header %s\t%s\n", k, s.Headers[k])
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if s.Command != nil {
				fmt.Fprintf(out, "command (%s):\n", s.Type)
				var pretty any
				_ = json.Unmarshal(s.Command, &pretty)
				return writeJSON(out, pretty)
			}
			_, err = fmt.Fprintf(out, "value (%d bytes) does not decode: %s\nfirst bytes: %s\n", s.ValueBytes, s.DecodeError, s.ValueHex)
			return err
		},
	}
}

func show(d DeadLetter, r *kgo.Record) Shown {
	s := Shown{DeadLetter: d, Headers: map[string]string{}, ValueBytes: len(r.Value)}
	for _, h := range r.Headers {
		s.Headers[h.Key] = string(h.Value)
	}
	v, err := codec.Default().Decode(r.Value)
	if err == nil {
		if b, jerr := json.Marshal(v); jerr == nil {
			s.Command = b
			if name, nerr := codec.Default().Name(r.Value); nerr == nil {
				s.Type = name
			}
			return s
		}
	}
	if r.Value == nil {
		s.DecodeError = "no value (over the record limit: read it at the source offset)"
	} else {
		s.DecodeError = err.Error()
	}
	s.ValueHex = hex.EncodeToString(r.Value[:min(len(r.Value), 64)])
	return s
}

func dlqRetryCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl dlq retry", flag.ContinueOnError)
	c := newCommon(fs, 2*time.Minute)
	var sel selection
	sel.register(fs)
	yes := fs.Bool("yes", false, "write; without it, a dry run that lists what would be retried (YES)")
	return &ffcli.Command{
		Name:       "retry",
		ShortUsage: "ledgerctl dlq retry <selection> [--yes]",
		ShortHelp:  "re-produce selected DLQ records to commands, with their key and a new attempt header; each record once",
		LongHelp: "The selection (--partition/--offset, --key, --reason, --since, --until) is required. " +
			"Each record is written to the commands topic under its original key (Kafka's murmur2 partition) " +
			"with dlq-attempt and dlq-retry-of headers; a marker in the DLQ, in the same transaction, keeps " +
			"any later selection from retrying it again. A command dead-lettered with a command id keeps that " +
			"outcome (the id is answered with it): retrying helps records that never had an outcome " +
			"(undecodable, Confluent wire format before a registry was configured).",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			explicit, perr := sel.parse(time.Now())
			if perr == nil && !explicit {
				perr = errors.New("selection: required (--partition, --offset, --key, --reason, --since or --until)")
			}
			ctx, cancel, err := c.check(ctx, perr)
			if err != nil {
				return err
			}
			defer cancel()
			ds, recs, err := readDLQ(ctx, c.kafka, &sel)
			if err != nil {
				return err
			}
			res := RetryReport{DryRun: !*yes, Retried: []DeadLetter{}}
			var todo []*kgo.Record
			var todoD []DeadLetter
			for i, d := range ds {
				switch {
				case d.Retried:
					res.Skipped = append(res.Skipped, skipped{d.Partition, d.Offset, "retried before"})
				case recs[i].Value == nil:
					res.Skipped = append(res.Skipped, skipped{d.Partition, d.Offset, "no value (over the record limit)"})
				default:
					todo, todoD = append(todo, recs[i]), append(todoD, d)
				}
			}
			if *yes && len(todo) > 0 {
				if err := retry(ctx, c.kafka, todo, todoD); err != nil {
					return err
				}
			}
			res.Retried = todoD
			if c.output == "json" {
				return writeJSON(out, res)
			}
			verb := "retried"
			if res.DryRun {
				verb = "would retry (dry run: --yes to write)"
			}
			fmt.Fprintf(out, "%s %d record(s); skipped %d\n", verb, len(res.Retried), len(res.Skipped))
			for _, d := range res.Retried {
				fmt.Fprintf(out, "  %d/%d key %q attempt %d\n", d.Partition, d.Offset, d.Key, d.Attempt+1)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(out, "  skipped %d/%d: %s\n", s.Partition, s.Offset, s.Why)
			}
			return nil
		},
	}
}

// RetryReport is what retry did (or would do).
type RetryReport struct {
	DryRun  bool         `json:"dry_run"`
	Retried []DeadLetter `json:"retried"`
	Skipped []skipped    `json:"skipped,omitempty"`
}

type skipped struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Why       string `json:"why"`
}

// retry writes, in one transaction, each record to the commands topic (its
// key's murmur2 partition) with the attempt headers, and a marker for each
// to the DLQ partition it was read from.
func retry(ctx context.Context, cfg config.Kafka, recs []*kgo.Record, ds []DeadLetter) error {
	names := topology.NamesFor(cfg.TopicPrefix)
	cl, err := kafkax.NewClient(cfg,
		kgo.TransactionalID(cfg.TopicPrefix+"ledgerctl-dlq-retry"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1_048_588),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx, names.Commands)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", names.Commands, err)
	}
	n := int32(len(md.Topics[names.Commands].Partitions))
	if n == 0 {
		return fmt.Errorf("topic %s: not found", names.Commands)
	}
	var out []*kgo.Record
	for i, r := range recs {
		from := []byte(fmt.Sprintf("%d/%d", r.Partition, r.Offset))
		out = append(out, &kgo.Record{Topic: names.Commands, Partition: kafkax.KeyPartition(r.Key, n), Key: r.Key, Value: r.Value,
			Headers: []kgo.RecordHeader{
				{Key: processor.HeaderAttempt, Value: []byte(strconv.Itoa(ds[i].Attempt + 1))},
				{Key: processor.HeaderRetryOf, Value: from},
			}},
			&kgo.Record{Topic: names.DLQ, Partition: r.Partition, Key: r.Key,
				Headers: []kgo.RecordHeader{{Key: processor.HeaderRetried, Value: from}}})
	}
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	perr := cl.ProduceSync(ctx, out...).FirstErr()
	commit := kgo.TryCommit
	if perr != nil {
		commit = kgo.TryAbort
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return errors.Join(perr, fmt.Errorf("end transaction: %w", err))
	}
	if perr != nil {
		return fmt.Errorf("retry (transaction aborted, nothing written): %w", perr)
	}
	return nil
}

func dlqPurgeCmd(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("ledgerctl dlq purge", flag.ContinueOnError)
	c := newCommon(fs, time.Minute)
	before := fs.String("before", "", "delete the records older than this: RFC 3339, or a duration ago like 72h (BEFORE)")
	beforeOffset := fs.String("before-offset", "", "delete the records below these offsets: partition:offset[,partition:offset…] (BEFORE_OFFSET)")
	yes := fs.Bool("yes", false, "delete; without it, a dry run that counts (YES)")
	return &ffcli.Command{
		Name:       "purge",
		ShortUsage: "ledgerctl dlq purge --before 72h|RFC3339 | --before-offset P:O[,P:O] [--yes]",
		ShortHelp:  "delete the DLQ's records before a time or offsets (Kafka deletes prefixes of a partition)",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec: func(ctx context.Context, _ []string) error {
			var problems []error
			var at time.Time
			offs := map[int32]int64{}
			switch {
			case (*before == "") == (*beforeOffset == ""):
				problems = append(problems, errors.New("selection: exactly one of --before and --before-offset"))
			case *before != "":
				var err error
				if at, err = parseWhen("before", *before, time.Now()); err != nil {
					problems = append(problems, err)
				}
			default:
				var err error
				if offs, err = parseOffsets(*beforeOffset); err != nil {
					problems = append(problems, fmt.Errorf("before-offset: %w", err))
				}
			}
			ctx, cancel, err := c.check(ctx, problems...)
			if err != nil {
				return err
			}
			defer cancel()
			rep, err := purge(ctx, c.kafka, at, offs, !*yes)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return writeJSON(out, rep)
			}
			verb := "deleted"
			if rep.DryRun {
				verb = "would delete (dry run: --yes to delete)"
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "PARTITION\tSTART\tDELETE BELOW\tRECORDS\n")
			var total int64
			for _, p := range rep.Partitions {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%d\n", p.Partition, p.Start, p.Below, p.Records)
				total += p.Records
			}
			fmt.Fprintf(tw, "%s %d record(s)\n", verb, total)
			return tw.Flush()
		},
	}
}

// PurgeReport is what purge deleted (or would delete), per partition.
type PurgeReport struct {
	DryRun     bool          `json:"dry_run"`
	Partitions []PurgedRange `json:"partitions"`
}

// PurgedRange is [Start, Below) of one partition.
type PurgedRange struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	Below     int64 `json:"below"`
	Records   int64 `json:"records"`
}

func purge(ctx context.Context, cfg config.Kafka, at time.Time, offs map[int32]int64, dry bool) (PurgeReport, error) {
	topic := topology.NamesFor(cfg.TopicPrefix).DLQ
	rep := PurgeReport{DryRun: dry}
	adm, err := admin(cfg)
	if err != nil {
		return rep, err
	}
	defer adm.Close()
	starts, ends, err := offsetRange(ctx, adm, topic)
	if err != nil {
		return rep, err
	}
	below := map[int32]int64{}
	if !at.IsZero() {
		if below, err = offsetsAt(ctx, adm, topic, at); err != nil {
			return rep, err
		}
	} else {
		for p, o := range offs {
			e, ok := ends.Lookup(topic, p)
			if !ok {
				return rep, fmt.Errorf("partition %d: %s has no such partition", p, topic)
			}
			if o > e.Offset {
				return rep, fmt.Errorf("partition %d: offset %d is past the end (%d)", p, o, e.Offset)
			}
			below[p] = o
		}
	}
	var del kadm.Offsets
	for p, o := range below {
		s, _ := starts.Lookup(topic, p)
		if o <= s.Offset {
			continue
		}
		rep.Partitions = append(rep.Partitions, PurgedRange{Partition: p, Start: s.Offset, Below: o, Records: o - s.Offset})
		del.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Partition < rep.Partitions[j].Partition })
	if dry || len(rep.Partitions) == 0 {
		return rep, nil
	}
	resp, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return rep, fmt.Errorf("delete records of %s: %w", topic, err)
	}
	return rep, nil
}

// parseOffsets reads "p:o[,p:o…]".
func parseOffsets(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, part := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(part), ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%q: want partition:offset with non-negative integers, e.g. 0:120,3:0", part)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("partition %d given twice", p)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// readDLQ reads the whole DLQ and returns the records sel selects (retry
// markers are not records: they set Retried on the record they name), with
// the records themselves.
func readDLQ(ctx context.Context, cfg config.Kafka, sel *selection) ([]DeadLetter, []*kgo.Record, error) {
	topic := topology.NamesFor(cfg.TopicPrefix).DLQ
	var (
		ds      []DeadLetter
		recs    []*kgo.Record
		retried = map[string]bool{}
	)
	err := kafkax.ReadAll(ctx, cfg, topic, func(r *kgo.Record) error {
		if v, ok := kafkax.Header(r, processor.HeaderRetried); ok {
			retried[string(v)] = true
			return nil
		}
		d := DeadLetter{Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, Key: string(r.Key), Attempt: 1}
		h := func(k string) string { v, _ := kafkax.Header(r, k); return string(v) }
		d.Type, d.Error = h(processor.HeaderType), h(processor.HeaderError)
		d.Source = fmt.Sprintf("%s/%s@%s", h(processor.HeaderSourceTopic), h(processor.HeaderSourcePartition), h(processor.HeaderSourceOffset))
		if a, err := strconv.Atoi(h(processor.HeaderAttempt)); err == nil && a > 0 {
			d.Attempt = a
		}
		if sel.match(d) {
			ds, recs = append(ds, d), append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	idx := make([]int, len(ds))
	for i := range ds {
		ds[i].Retried = retried[fmt.Sprintf("%d/%d", ds[i].Partition, ds[i].Offset)]
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := ds[idx[a]], ds[idx[b]]
		if !x.Time.Equal(y.Time) {
			return x.Time.Before(y.Time)
		}
		if x.Partition != y.Partition {
			return x.Partition < y.Partition
		}
		return x.Offset < y.Offset
	})
	sd, sr := make([]DeadLetter, len(ds)), make([]*kgo.Record, len(ds))
	for i, j := range idx {
		sd[i], sr[i] = ds[j], recs[j]
	}
	ds, recs = sd, sr
	if sel.limit > 0 && len(ds) > sel.limit {
		ds, recs = ds[len(ds)-sel.limit:], recs[len(recs)-sel.limit:]
	}
	return ds, recs, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
