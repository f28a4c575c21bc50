// Package erase removes one subject's personal data from the ledger's
// topics while keeping the ledger whole: redaction under the same keys.
//
// A subject is an account id. Its events (key <id>/<version>) and its
// command results (aggregate_id = id) are written again, in one Kafka
// transaction, under the same keys and in the same partitions, with the
// personal fields blanked (codec.Redact: owner, reference, correlation id)
// and the header projection.HeaderRedacted. Ids, versions, amounts and
// balances are unchanged, so every view folds the copies exactly as the
// originals; compaction then drops the originals (the topology sets
// max.compaction.lag.ms on the compacted topics, so that happens within a
// bound). The projectors blank what their views hold when they read a
// copy (projection.Redactor), and a rebuild that still reads an original
// reads its copy after it. The processor's snapshots no longer hold the
// owner; a control record (processor.ControlSnapshot) makes it write the
// subject's snapshot again, superseding one written before. The commands
// topic, which is not compacted, is truncated (DeleteRecords) up to what the
// processor has consumed of the subject's partition. DLQ records of the
// subject are counted, not touched (ledgerctl dlq purge, or retention).
//
// Run is idempotent and resumable: a copy already redacted is not written
// again, and an erasure killed half way (its transaction aborted, or the
// truncation not reached) finishes on the next run.
package erase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/topology"
)

// ErrUnknownSubject: the subject has no event in the log.
var ErrUnknownSubject = errors.New("unknown subject")

// ErrOpenAccount: the subject's account is open, and Options.AllowOpen is
// not set.
var ErrOpenAccount = errors.New("open account")

// Options configure Run.
type Options struct {
	Subject string
	// DryRun reads and reports, and writes nothing.
	DryRun bool
	// AllowOpen erases an account that is not closed. Its events must end
	// up in version order in the log, and an event written between an
	// erasure's reading and its copies lands before them: the erasure
	// then copies again (up to three passes) and fails if the account is
	// written to all the time. A closed account has no new events.
	AllowOpen bool
	// ProcessorGroup is the processor's consumer group (default
	// <prefix>processor), whose committed offset bounds the truncation of
	// the commands topic.
	ProcessorGroup string
	// Wait bounds the wait for the processor to consume the snapshot
	// request (default 2 minutes).
	Wait time.Duration
	// Progress, if set, is told how far each phase is (records read of
	// the partition's range).
	Progress func(phase string, done, total int64)
	Log      *slog.Logger
}

// Report is what Run found and did.
type Report struct {
	Subject   string `json:"subject"`
	Partition int32  `json:"partition"`
	Closed    bool   `json:"closed"` // the account's last event is AccountClosed
	DryRun    bool   `json:"dry_run"`
	// Events of the subject in the log (latest copy per key), and how many
	// of them this run redacted (the others held no personal data, or were
	// redacted before).
	Events         int `json:"events"`
	EventsRedacted int `json:"events_redacted"`
	// EventsCopied counts the copies written: the redacted ones and the
	// later versions copied after them to keep the log in version order.
	EventsCopied int `json:"events_copied"`
	// The same for its command results.
	Results         int `json:"results"`
	ResultsRedacted int `json:"results_redacted"`
	// SnapshotOwner: a scan found the subject's latest snapshot holding
	// an owner (a snapshot request was sent either way).
	SnapshotOwner bool `json:"snapshot_owner"`
	// CommandsDeletedBefore is the offset of the subject's commands
	// partition below which records are deleted (-1: not done).
	CommandsDeletedBefore int64 `json:"commands_deleted_before"`
	// DLQRecords of the subject, left in place.
	DLQRecords int `json:"dlq_records"`
	// MaxCompactionLag of the events topic: the originals are gone from
	// disk within it (empty: not set, compaction runs when the active
	// segment rolls).
	MaxCompactionLag string `json:"events_max_compaction_lag_ms"`
}

// Run erases opts.Subject's personal data; see the package doc.
func Run(ctx context.Context, cfg config.Kafka, opts Options) (Report, error) {
	rep := Report{Subject: opts.Subject, DryRun: opts.DryRun, CommandsDeletedBefore: -1}
	if strings.TrimSpace(opts.Subject) == "" {
		return rep, errors.New("subject: an account id is required")
	}
	if opts.ProcessorGroup == "" {
		opts.ProcessorGroup = cfg.TopicPrefix + "processor"
	}
	if opts.Wait <= 0 {
		opts.Wait = 2 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Progress == nil {
		opts.Progress = func(string, int64, int64) {}
	}
	names := topology.NamesFor(cfg.TopicPrefix)
	cl, err := kafkax.NewClient(cfg)
	if err != nil {
		return rep, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	parts, err := partitions(ctx, adm, names.Commands, names.Events, names.Results, names.Snapshots, names.DLQ)
	if err != nil {
		return rep, err
	}
	n := parts[names.Commands]
	for _, t := range []string{names.Events, names.Results, names.Snapshots} {
		if parts[t] != n {
			return rep, fmt.Errorf("%s has %d partitions, %s %d: they must match", t, parts[t], names.Commands, n)
		}
	}
	p := kafkax.KeyPartition([]byte(opts.Subject), n)
	rep.Partition = p
	if cfgs, err := adm.DescribeTopicConfigs(ctx, names.Events); err == nil {
		for _, rc := range cfgs {
			for _, c := range rc.Configs {
				if c.Key == "max.compaction.lag.ms" && c.Value != nil {
					rep.MaxCompactionLag = *c.Value
				}
			}
		}
	}

	var control int64
	var redactedEvents, copied, redactedResults int
	for pass := 1; ; pass++ {
		out, err := scan(ctx, cfg, adm, names, p, dlqOf(parts[names.DLQ], p), &rep, opts)
		if err != nil {
			return rep, err
		}
		if !rep.Closed && !opts.AllowOpen {
			return rep, fmt.Errorf("%w %q: close it first (a closed account has no new events, so its redacted copies stay in version order), or erase it open with --allow-open", ErrOpenAccount, opts.Subject)
		}
		if opts.DryRun {
			return rep, nil
		}
		redactedEvents += rep.EventsRedacted
		copied += rep.EventsCopied
		redactedResults += rep.ResultsRedacted
		rep.EventsRedacted, rep.EventsCopied, rep.ResultsRedacted = redactedEvents, copied, redactedResults
		if len(out) == 0 && pass > 1 {
			break
		}
		if pass > 3 {
			return rep, fmt.Errorf("the subject's events still need copies after %d passes (is it being written to all the time?): run the erasure again", pass-1)
		}
		out = append(out, &kgo.Record{Topic: names.Commands, Partition: p, Key: []byte(opts.Subject),
			Headers: []kgo.RecordHeader{{Key: processor.HeaderControl, Value: []byte(processor.ControlSnapshot)}}})
		if control, err = produce(ctx, cfg, out); err != nil {
			return rep, err
		}
		opts.Log.Info("copies committed", "pass", pass, "records", len(out), "snapshot_request_offset", control)
	}

	// The commands: everything the processor consumed of the partition,
	// once it has consumed the snapshot request.
	deadline := time.Now().Add(opts.Wait)
	for {
		offs, err := adm.FetchOffsetsForTopics(ctx, opts.ProcessorGroup, names.Commands)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return rep, fmt.Errorf("offsets of the processor group %s: %w", opts.ProcessorGroup, err)
		}
		if o, ok := offs.Lookup(names.Commands, p); ok && o.At > control {
			var del kadm.Offsets
			del.Add(kadm.Offset{Topic: names.Commands, Partition: p, At: o.At, LeaderEpoch: -1})
			resp, err := adm.DeleteRecords(ctx, del)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return rep, fmt.Errorf("delete the consumed commands of %s partition %d below %d: %w", names.Commands, p, o.At, err)
			}
			rep.CommandsDeletedBefore = o.At
			return rep, nil
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("the processor group %s has not consumed %s partition %d past the snapshot request at offset %d within %s: the redacted copies are written; run the erasure again once the processor runs", opts.ProcessorGroup, names.Commands, p, control, opts.Wait)
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// maxVersion is the highest version among events (their keys end in
// /<version>).
func maxVersion(events []*kgo.Record) int64 {
	var out int64
	for _, r := range events {
		k := string(r.Key)
		if v, err := strconv.ParseInt(k[strings.LastIndexByte(k, '/')+1:], 10, 64); err == nil && v > out {
			out = v
		}
	}
	return out
}

func dlqOf(n, p int32) int32 {
	if n == 0 {
		return -1
	}
	return p % n
}

// scan reads the subject's records and returns the copies to write: its
// events from the first that needs one, in version order, and its command
// results that hold personal data. It fills rep's counts (those of the last
// scan).
func scan(ctx context.Context, cfg config.Kafka, adm *kadm.Client, names topology.Names, p, dlqP int32, rep *Report, opts Options) ([]*kgo.Record, error) {
	prefix := opts.Subject + "/"
	events, err := latest(ctx, cfg, adm, names.Events, p, "events", opts.Progress, func(r *kgo.Record) bool {
		return strings.HasPrefix(string(r.Key), prefix)
	})
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w %q: no event of it in %s partition %d", ErrUnknownSubject, opts.Subject, names.Events, p)
	}
	results, err := latest(ctx, cfg, adm, names.Results, p, "command results", opts.Progress, func(r *kgo.Record) bool {
		var res codec.CommandResult
		return r.Value != nil && codec.Default().DecodeInto(r.Value, &res) == nil && res.AggregateID == opts.Subject
	})
	if err != nil {
		return nil, err
	}
	snaps, err := latest(ctx, cfg, adm, names.Snapshots, p, "snapshots", opts.Progress, func(r *kgo.Record) bool {
		return string(r.Key) == opts.Subject
	})
	if err != nil {
		return nil, err
	}
	for _, r := range snaps {
		var s codec.AccountSnapshot
		if codec.Default().DecodeInto(r.Value, &s) == nil && s.Owner != "" {
			rep.SnapshotOwner = true
		}
	}
	if dlqP >= 0 {
		dlq, err := latest(ctx, cfg, adm, names.DLQ, dlqP, "dead letters", opts.Progress, func(r *kgo.Record) bool {
			return string(r.Key) == opts.Subject
		})
		if err != nil {
			return nil, err
		}
		rep.DLQRecords = len(dlq)
	}

	stamp := []byte(time.Now().UTC().Format(time.RFC3339))
	rep.Events, rep.Results = len(events), len(results)
	rep.EventsRedacted, rep.EventsCopied, rep.ResultsRedacted = 0, 0, 0
	// Compaction keeps the latest copy of each key where it lies, so the
	// subject's events stay in version order in the log only if every
	// version's latest copy comes after the one before. Copy from the
	// first version that needs a copy (personal data, or a latest copy
	// before an earlier version's, as when an event was written while an
	// erasure was copying) to the last, in version order.
	type ev struct {
		r       *kgo.Record
		version int64
		copy    *kgo.Record
	}
	evs := make([]ev, 0, len(events))
	top := maxVersion(events)
	for _, r := range events {
		var env struct{ version int64 }
		v, err := codec.Default().Decode(r.Value)
		if err != nil {
			return nil, fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		f, ok := codec.FactsOf(v)
		if !ok {
			return nil, fmt.Errorf("%s/%d@%d: %T is not an event", r.Topic, r.Partition, r.Offset, v)
		}
		env.version = f.Version
		if f.Version == top {
			rep.Closed = f.Close
		}
		c, err := redacted(r, stamp)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev{r, env.version, c})
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].version < evs[j].version })
	start := len(evs)
	minAfter := int64(math.MaxInt64)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].copy != nil || evs[i].r.Offset > minAfter {
			start = i
		}
		minAfter = min(minAfter, evs[i].r.Offset)
	}
	var out []*kgo.Record
	for _, e := range evs[start:] {
		c := e.copy
		if c != nil {
			rep.EventsRedacted++
		} else {
			c = copyOf(e.r, e.r.Value, stamp)
		}
		rep.EventsCopied++
		out = append(out, c)
	}
	for _, r := range results {
		c, err := redacted(r, stamp)
		if err != nil {
			return nil, err
		}
		if c != nil {
			rep.ResultsRedacted++
			out = append(out, c)
		}
	}
	return out, nil
}

// copyOf is r under the same key and partition with value and the
// HeaderRedacted header.
func copyOf(r *kgo.Record, value, stamp []byte) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+1)
	for _, h := range r.Headers {
		if h.Key != projection.HeaderRedacted {
			hs = append(hs, h)
		}
	}
	hs = append(hs, kgo.RecordHeader{Key: projection.HeaderRedacted, Value: stamp})
	return &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: value, Headers: hs, Timestamp: r.Timestamp}
}

// redacted returns a copy of r with its personal data blanked, or nil when
// it has none left (redacted before, or none to begin with).
func redacted(r *kgo.Record, stamp []byte) (*kgo.Record, error) {
	if r.Value == nil {
		return nil, nil
	}
	v, err := codec.Default().Decode(r.Value)
	if err != nil {
		return nil, fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	changed, ok := codec.Redact(v)
	if !ok {
		return nil, fmt.Errorf("%s/%d@%d: %T is not a record erase knows", r.Topic, r.Partition, r.Offset, v)
	}
	if !changed {
		return nil, nil
	}
	val, err := codec.Default().Encode(v)
	if err != nil {
		return nil, fmt.Errorf("encode the redacted copy of %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return copyOf(r, val, stamp), nil
}

// produce writes recs in one transaction, each to its own partition, and
// returns the offset of the last one.
func produce(ctx context.Context, cfg config.Kafka, recs []*kgo.Record) (int64, error) {
	cl, err := kafkax.NewClient(cfg,
		kgo.TransactionalID(cfg.TopicPrefix+"ledgerctl-erase"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1_048_588),
		// One record batch per partition where they fit: a batch never
		// spans log segments, so compaction supersedes all of the
		// originals at once (docs/erasure.md, "Compaction halfway").
		kgo.ProducerLinger(100*time.Millisecond),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return 0, fmt.Errorf("begin transaction: %w", err)
	}
	res := cl.ProduceSync(ctx, recs...)
	perr := res.FirstErr()
	commit := kgo.TryCommit
	if perr != nil {
		commit = kgo.TryAbort
	}
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return 0, errors.Join(perr, fmt.Errorf("end transaction: %w", err))
	}
	if perr != nil {
		return 0, fmt.Errorf("produce the redacted copies (transaction aborted, nothing written): %w", perr)
	}
	return recs[len(recs)-1].Offset, nil
}

// partitions returns the partition count of each topic.
func partitions(ctx context.Context, adm *kadm.Client, topics ...string) (map[string]int32, error) {
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := map[string]int32{}
	for _, t := range topics {
		d, ok := md.Topics[t]
		if !ok || d.Err != nil {
			return nil, fmt.Errorf("topic %s: %v (is the topic prefix %q right?)", t, d.Err, strings.TrimSuffix(t, t[strings.LastIndex(t, ".")+1:]))
		}
		out[t] = int32(len(d.Partitions))
	}
	return out, nil
}

// latest reads partition p of topic from its start to its high watermark
// and returns the last record of every key that keep selects, in log order
// of those last records.
func latest(ctx context.Context, cfg config.Kafka, adm *kadm.Client, topic string, p int32, phase string,
	progress func(string, int64, int64), keep func(*kgo.Record) bool) ([]*kgo.Record, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	s, _ := starts.Lookup(topic, p)
	e, _ := ends.Lookup(topic, p)
	total := e.Offset - s.Offset
	progress(phase, 0, total)
	byKey := map[string]int{}
	var out []*kgo.Record
	err = kafkax.ReadRanges(ctx, cfg, map[string]map[int32]kafkax.Range{topic: {p: {From: s.Offset, End: e.Offset}}}, func(r *kgo.Record) error {
		if (r.Offset-s.Offset)%1000 == 0 {
			progress(phase, r.Offset-s.Offset, total)
		}
		if !keep(r) {
			return nil
		}
		if i, ok := byKey[string(r.Key)]; ok {
			out[i] = nil
		}
		byKey[string(r.Key)] = len(out)
		out = append(out, r)
		return nil
	})
	progress(phase, total, total)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, r := range out {
		if r != nil && r.Value != nil {
			kept = append(kept, r)
		}
	}
	return kept, nil
}
