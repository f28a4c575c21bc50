package projector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Write fencing: at most one member writes a partition's records at a time.
//
// A consumer group alone does not guarantee it: a member evicted while it is
// applying a batch (a stalled process, a network partition from Kafka) goes
// on writing after its partitions were given to another member, which
// applies the same records. Views that check versions inside the store
// (Redis) stay exact anyway; ClickHouse's cannot check atomically, and its
// summing materialized view would count both inserts.
//
// So every write is announced and bounded in time:
//
//  1. Before applying a batch, the member commits the offsets the batch
//     starts at (no progress) with the metadata "writing-until:<unix ms>"
//     = now + WriteDeadline, as a member of its current generation. If the
//     commit is refused (the member was evicted or the group moved on), it
//     does not write.
//  2. The apply runs under a context with that deadline, and the sinks check
//     it before every store write: nothing is written after it.
//  3. A member that is assigned a partition reads the committed metadata and
//     writes nothing before the announced deadline (plus ClockSkew).
//
// The commit after a successful apply replaces the metadata (franz-go
// commits the member id), also for partitions revoked during the apply, so
// a partition handed over while it was being written is released as soon
// as the write is done; the new owner polls for that. Only after a member
// died or was evicted mid-write does the new owner wait the whole
// WriteDeadline. The assumption is the usual
// one of leases: clocks of the members differ by less than ClockSkew.

// writingPrefix starts the offset-commit metadata of a write in progress.
const writingPrefix = "writing-until:"

// errFenced: the member could not announce a write (not a member of the
// current generation any more); it must not write.
var errFenced = errors.New("projector: fenced: this member may no longer write the batch's partitions")

// announce commits, for every partition with a pending record, the offset
// of its first pending record with the metadata of a write until deadline.
func (p *Projector) announce(ctx context.Context, deadline time.Time) error {
	member, gen := p.cl.GroupMetadata()
	if member == "" || gen < 0 {
		return fmt.Errorf("%w (not in the group)", errFenced)
	}
	first := map[tp]int64{}
	for _, it := range p.pending {
		k := tp{it.rec.Topic, it.rec.Partition}
		if o, ok := first[k]; !ok || it.rec.Offset < o {
			first[k] = it.rec.Offset
		}
	}
	meta := writingPrefix + strconv.FormatInt(deadline.UnixMilli(), 10)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = p.cfg.Group, gen, member
	if p.cfg.InstanceID != "" {
		req.InstanceID = &p.cfg.InstanceID
	}
	byTopic := map[string]int{}
	names := map[[16]byte]string{}
	for k, off := range first {
		i, ok := byTopic[k.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[k.topic] = i
			t := kmsg.NewOffsetCommitRequestTopic()
			// Name up to v9, id from v10 (KIP-848), whichever the broker
			// speaks: a request without the id is refused by brokers that
			// speak v10 (UNKNOWN_TOPIC_ID).
			t.Topic = k.topic
			id, err := p.topicID(ctx, k.topic)
			if err != nil {
				return fmt.Errorf("projector: announce the write: %w", err)
			}
			t.TopicID, names[id] = id, k.topic
			req.Topics = append(req.Topics, t)
		}
		pt := kmsg.NewOffsetCommitRequestTopicPartition()
		pt.Partition, pt.Offset, pt.LeaderEpoch, pt.Metadata = k.partition, off, -1, &meta
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, pt)
	}
	resp, err := req.RequestWith(ctx, p.cl)
	if err != nil {
		return fmt.Errorf("projector: announce the write: %w", err)
	}
	for _, t := range resp.Topics {
		name := t.Topic
		if name == "" {
			name = names[t.TopicID]
		}
		for _, pt := range t.Partitions {
			if err := kerr.ErrorForCode(pt.ErrorCode); err != nil {
				if errors.Is(err, kerr.UnknownTopicID) {
					p.topicIDs = nil // look them up again next time
				}
				return fmt.Errorf("%w: %s/%d: %w", errFenced, name, pt.Partition, err)
			}
		}
	}
	return nil
}

// topicID returns the id of topic, from the cluster's metadata once.
func (p *Projector) topicID(ctx context.Context, topic string) ([16]byte, error) {
	if id, ok := p.topicIDs[topic]; ok {
		return id, nil
	}
	md, err := kadm.NewClient(p.cl).Metadata(ctx, topic)
	if err != nil {
		return [16]byte{}, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	d, ok := md.Topics[topic]
	if !ok || d.Err != nil {
		return [16]byte{}, fmt.Errorf("metadata of %s: %v", topic, d.Err)
	}
	if p.topicIDs == nil {
		p.topicIDs = map[string][16]byte{}
	}
	p.topicIDs[topic] = d.ID
	return d.ID, nil
}

// previousDeadline reads the write deadlines announced for the partitions
// in got (by a previous owner that did not finish or did not commit) and
// returns the latest, or the zero time when none is pending.
func (p *Projector) previousDeadline(ctx context.Context, cl *kgo.Client, got map[string][]int32) (time.Time, error) {
	topics := make([]string, 0, len(got))
	for t := range got {
		topics = append(topics, t)
	}
	offs, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, p.cfg.Group, topics...)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return time.Time{}, err
	}
	var latest time.Time
	for t, parts := range got {
		for _, part := range parts {
			o, ok := offs.Lookup(t, part)
			if !ok || !strings.HasPrefix(o.Metadata, writingPrefix) {
				continue
			}
			ms, err := strconv.ParseInt(strings.TrimPrefix(o.Metadata, writingPrefix), 10, 64)
			if err != nil {
				continue
			}
			if d := time.UnixMilli(ms); d.After(latest) {
				latest = d
			}
		}
	}
	return latest, nil
}

// awaitPrevious blocks until no previous owner of an assigned partition may
// still be writing, or ctx ends. While it waits it reads the committed
// metadata again: a previous owner that finished its write and committed
// (a rebalance that came mid-apply) releases the partitions early.
func (p *Projector) awaitPrevious(ctx context.Context) error {
	p.mu.Lock()
	until, parts := p.notBefore, p.awaiting
	p.mu.Unlock()
	if time.Until(until) <= 0 {
		return nil
	}
	start := time.Now()
	p.cfg.Log.Info("waiting until a previous owner of the partitions has finished or passed its write deadline",
		"group", p.cfg.Group, "at_most", time.Until(until).Round(time.Millisecond))
	for {
		wait := min(time.Until(until), 200*time.Millisecond)
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if len(parts) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		d, err := p.previousDeadline(rctx, p.cl, parts)
		cancel()
		if err == nil && d.IsZero() {
			break // released
		}
	}
	p.mu.Lock()
	if p.notBefore.Equal(until) {
		p.notBefore, p.awaiting = time.Time{}, nil
	}
	p.mu.Unlock()
	p.cfg.Log.Info("previous owner done", "group", p.cfg.Group, "waited", time.Since(start).Round(time.Millisecond))
	return nil
}

// lagEvery is how often the lag gauge is read from the broker.
var lagEvery = 10 * time.Second

// watchLag sets the lag gauge of the partitions this member owns from the
// broker's view (high watermark minus the group's committed offset) every
// lagEvery until ctx ends. The gauge is also updated from each fetch, but a
// projector stuck on one batch fetches nothing: this keeps the gauge true
// while it is stuck. It also records, for Ready, since when the committed
// offsets of lagging partitions have not moved.
func (p *Projector) watchLag(ctx context.Context) {
	adm := kadm.NewClient(p.cl)
	last := map[tp]int64{}
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		owned := map[string][]int32{}
		for k := range p.owned {
			owned[k.topic] = append(owned[k.topic], k.partition)
		}
		p.mu.Unlock()
		if len(owned) == 0 {
			continue
		}
		topics := make([]string, 0, len(owned))
		for t := range owned {
			topics = append(topics, t)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ends, err := adm.ListEndOffsets(rctx, topics...)
		var offs kadm.OffsetResponses
		if err == nil {
			offs, err = adm.FetchOffsetsForTopics(rctx, p.cfg.Group, topics...)
		}
		cancel()
		if err != nil {
			continue
		}
		stuck := false
		for t, parts := range owned {
			for _, part := range parts {
				end, ok := ends.Lookup(t, part)
				if !ok || end.Err != nil {
					continue
				}
				committed := int64(0)
				if o, ok := offs.Lookup(t, part); ok && o.At >= 0 {
					committed = o.At
				}
				lag := max(end.Offset-committed, 0)
				p.m.lag.WithLabelValues(t, strconv.Itoa(int(part))).Set(float64(lag))
				k := tp{t, part}
				if prev, seen := last[k]; seen && lag > 0 && prev == committed {
					stuck = true
				}
				last[k] = committed
			}
		}
		p.mu.Lock()
		switch {
		case !stuck:
			p.stuckSince = time.Time{}
		case p.stuckSince.IsZero():
			p.stuckSince = time.Now().Add(-lagEvery)
		}
		p.mu.Unlock()
	}
}
