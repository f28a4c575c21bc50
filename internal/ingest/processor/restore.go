package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

const (
	// restoreTimeout bounds one restore attempt. Reading to the high
	// watermark waits for open transactions, which the broker aborts after
	// their transaction timeout (franz-go's default is 40 s).
	restoreTimeout = 2 * time.Minute
	restoreTries   = 3
)

// restore rebuilds the state of the given command partitions, retrying
// transient failures.
func (p *Processor) restore(ctx context.Context, ids []int32) (map[int32]*partition, error) {
	var err error
	for try := 1; try <= restoreTries; try++ {
		var out map[int32]*partition
		out, err = p.restoreOnce(ctx, ids)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		p.log.Warn("restore failed", "partitions", ids, "try", try, "err", err)
		select {
		case <-time.After(time.Duration(try) * time.Second):
		case <-ctx.Done():
			return nil, err
		}
	}
	return nil, err
}

// restoreStats is what one partition's restore found, for the log.
type restoreStats struct {
	snapshots, results int
	lso, hwm           [2]int64 // snapshots, results
}

// restoreOnce reads, for each partition, the snapshots partition from its
// start and the command-results partition from the start of the dedupe
// window, both under read_committed and both up to the high watermark
// captured first (kafkax.ReadRanges). A read_committed fetch returns
// nothing at or past the last stable offset, so reaching the watermark
// means every transaction below it has been resolved.
func (p *Processor) restoreOnce(ctx context.Context, ids []int32) (map[int32]*partition, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	start := time.Now()
	snapT, resT := p.names.Snapshots, p.names.Results

	ends, err := p.adm.ListEndOffsets(ctx, snapT, resT)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list high watermarks: %w", err)
	}
	starts, err := p.adm.ListStartOffsets(ctx, snapT, resT)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list log start offsets: %w", err)
	}
	stables, err := p.adm.ListCommittedOffsets(ctx, snapT, resT)
	if err == nil {
		err = stables.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list last stable offsets: %w", err)
	}
	cutoff := time.Now().Add(-p.cfg.DedupeWindow)
	windowStart, err := p.adm.ListOffsetsAfterMilli(ctx, cutoff.UnixMilli(), resT)
	if err == nil {
		err = windowStart.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of the dedupe window: %w", err)
	}

	out := make(map[int32]*partition, len(ids))
	stats := make(map[int32]*restoreStats, len(ids))
	ranges := map[string]map[int32]kafkax.Range{snapT: {}, resT: {}}
	for _, id := range ids {
		out[id] = &partition{id: id, accounts: map[string]domain.Account{}, dedupe: newIndex(0)}
		st := &restoreStats{}
		stats[id] = st
		for i, t := range []string{snapT, resT} {
			end, ok := ends.Lookup(t, id)
			if !ok {
				return nil, fmt.Errorf("no high watermark for %s/%d", t, id)
			}
			st.hwm[i] = end.Offset
			if lso, ok := stables.Lookup(t, id); ok {
				st.lso[i] = lso.Offset
			}
			ls, ok := starts.Lookup(t, id)
			if !ok {
				return nil, fmt.Errorf("no log start offset for %s/%d", t, id)
			}
			r := kafkax.Range{From: ls.Offset, End: end.Offset}
			if ws, ok := windowStart.Lookup(t, id); ok && t == resT && ws.Offset >= 0 {
				r.From = max(r.From, ws.Offset)
			}
			ranges[t][id] = r
		}
		if st.lso[0] < st.hwm[0] || st.lso[1] < st.hwm[1] {
			p.log.Info("restore waits for open transactions to resolve", "partition", id,
				"snapshots_lso", st.lso[0], "snapshots_hwm", st.hwm[0], "results_lso", st.lso[1], "results_hwm", st.hwm[1])
		}
	}
	err = kafkax.ReadRanges(ctx, p.cfg.Kafka, ranges, func(r *kgo.Record) error {
		st := out[r.Partition]
		if r.Topic == snapT {
			stats[r.Partition].snapshots++
			return p.applySnapshot(st, r)
		}
		p.applyResult(st, r, cutoff, stats[r.Partition])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read to the high watermark: %w", err)
	}

	took := time.Since(start)
	p.m.restore.Observe(took.Seconds())
	for _, id := range ids {
		st := stats[id]
		p.log.Info("partition restored",
			"partition", id,
			"snapshots_read", st.snapshots,
			"aggregates_restored", len(out[id].accounts),
			"results_read", st.results,
			"dedupe_entries", out[id].dedupe.len(),
			"snapshots_hwm", st.hwm[0], "snapshots_lso_at_start", st.lso[0],
			"results_hwm", st.hwm[1], "results_lso_at_start", st.lso[1],
			"duration", took)
	}
	return out, nil
}

// applySnapshot folds one snapshot record into st: the latest snapshot of
// an aggregate wins, a tombstone forgets it. A snapshot that does not decode
// fails the restore: processing that aggregate without its state would
// decide against a wrong balance.
func (p *Processor) applySnapshot(st *partition, r *kgo.Record) error {
	key := string(r.Key)
	if r.Value == nil {
		delete(st.accounts, key)
		return nil
	}
	var snap codec.AccountSnapshot
	if err := p.cat.DecodeInto(r.Value, &snap); err != nil {
		return fmt.Errorf("snapshot %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	a, err := fromSnapshot(&snap)
	if err != nil {
		return fmt.Errorf("snapshot %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if a.ID != key {
		return fmt.Errorf("snapshot %s/%d@%d: key %q holds aggregate %q", r.Topic, r.Partition, r.Offset, key, a.ID)
	}
	if prev, ok := st.accounts[key]; ok && prev.Version > a.Version {
		return nil
	}
	st.accounts[a.ID] = a // the key shares a.ID's bytes: one copy of the id per aggregate
	return nil
}

// applyResult adds the first outcome of one command result's id to st's
// dedupe index, when it is within the window. Every result record carries
// its id's first outcome in HeaderDedupe (first outcomes, answers to
// repeats and refusals of a reused id alike), so whichever record of an id
// compaction keeps, the first outcome survives. A record written before
// that header existed holds the first outcome in its value (an answer to a
// repeat copies it, with the first processed_at).
func (p *Processor) applyResult(st *partition, r *kgo.Record, cutoff time.Time, stats *restoreStats) {
	stats.results++
	if r.Value == nil || len(r.Key) == 0 || r.Timestamp.Before(cutoff) {
		return // a record is never older than the first outcome it carries
	}
	saga := header(r, HeaderOrigin) == OriginProcessor
	if hv, ok := kafkax.Header(r, HeaderDedupe); ok {
		o, err := parseDedupeHeader(hv)
		if err != nil {
			p.log.Warn("command result with a malformed dedupe header skipped in the restore",
				"partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if o.at >= cutoff.UnixMilli() {
			st.dedupe.putEarliest(string(r.Key), saga, o)
		}
		return
	}
	var res codec.CommandResult
	if err := p.cat.DecodeInto(r.Value, &res); err != nil {
		p.log.Warn("undecodable command result skipped in the dedupe restore",
			"partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	if !res.ProcessedAt.Before(cutoff) {
		st.dedupe.putEarliest(string(r.Key), saga, summarize(&res, [16]byte{}))
	}
}

// header returns the value of the last header named key, or "".
func header(r *kgo.Record, key string) string {
	v, _ := kafkax.Header(r, key)
	return string(v)
}
