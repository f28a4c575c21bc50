package projector_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

func TestGenerationGroup(t *testing.T) {
	for _, c := range []struct {
		gen  int
		want string
	}{{0, "ledger.projector-redis"}, {3, "ledger.projector-redis-g3"}} {
		if got := projector.GenerationGroup("ledger.", "redis", c.gen); got != c.want {
			t.Errorf("generation %d: %q, want %q", c.gen, got, c.want)
		}
	}
}

func (e env) genSink(t *testing.T, gen int) *redissink.Sink {
	t.Helper()
	s, err := redissink.New(e.rdb, redissink.Options{Prefix: redissink.GenerationPrefix(e.prefix, gen)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReplayThenLiveGroupResumes: a replay reads committed events only
// (aborted forgeries are in the history), reaches the high watermarks, and
// a live projector in the group whose offsets it committed goes on from
// there: the generation ends up exactly the fold.
func TestReplayThenLiveGroupResumes(t *testing.T) {
	e := setup(t)
	h := projectiontest.Generate(31, "", 10, 400)
	half := len(h.Events) / 2
	produceHistory(t, e, h.Events[:half])

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := e.genSink(t, 1)
	var calls atomic.Int64
	rp, err := projector.NewReplay(projector.ReplayConfig{Kafka: e.kafka, Sink: sink, MaxBatch: 37,
		Progress: func(done, total int64) {
			calls.Add(1)
			if done > total {
				t.Errorf("progress %d of %d", done, total)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if err := rp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if calls.Load() == 0 {
		t.Fatal("no progress reported")
	}
	ends, err := e.adm.ListEndOffsets(ctx, e.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	pos := rp.Positions()
	ends.Each(func(o kadm.ListedOffset) {
		if got := pos[o.Topic][o.Partition]; got != o.Offset {
			t.Errorf("%s/%d: replay at %d, end %d", o.Topic, o.Partition, got, o.Offset)
		}
	})
	group := projector.GenerationGroup(e.kafka.TopicPrefix, sink.Name(), 1)
	if err := kafkax.CommitGroupOffsets(ctx, e.kafka, group, pos); err != nil {
		t.Fatal(err)
	}

	produceHistory(t, e, h.Events[half:])
	start(t, projector.Config{Kafka: e.kafka, Group: group, Sink: sink, MaxBatch: 50, MaxDelay: 20 * time.Millisecond})
	waitCommitted(t, e, group, e.names.Events)
	projectiontest.CheckHistory(t, sink, h)
	if st := sink.Stats(); st.Gaps != 0 {
		t.Fatalf("gaps: %+v", st)
	}
}

// TestFollowerSwitchesGenerations: the live projector follows a switch to
// a rebuilt generation, leaving the old group and resuming at the offsets
// the rebuild committed; its metrics are registered again without error.
func TestFollowerSwitchesGenerations(t *testing.T) {
	e := setup(t)
	h := projectiontest.Generate(32, "", 10, 450)
	third := len(h.Events) / 3
	produceHistory(t, e, h.Events[:third])

	var gen atomic.Int64
	reg := prometheus.NewRegistry()
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(context.Context) (projector.Generation, error) {
			return projector.Generation{Gen: int(gen.Load())}, nil
		},
		Build: func(_ context.Context, g int) (projector.Config, error) {
			s := e.genSink(t, g)
			return projector.Config{Kafka: e.kafka, Group: projector.GenerationGroup(e.kafka.TopicPrefix, s.Name(), g),
				Sink: s, MaxBatch: 50, MaxDelay: 20 * time.Millisecond}, nil
		},
		Interval:   100 * time.Millisecond,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(fctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	}()

	g0 := projector.GenerationGroup(e.kafka.TopicPrefix, "redis", 0)
	g1 := projector.GenerationGroup(e.kafka.TopicPrefix, "redis", 1)
	waitCommitted(t, e, g0, e.names.Events)
	if err := f.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}

	// A rebuild of generation 1 while events go on arriving.
	produceHistory(t, e, h.Events[third:2*third])
	rp, err := projector.NewReplay(projector.ReplayConfig{Kafka: e.kafka, Sink: e.genSink(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if err := rp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := kafkax.CommitGroupOffsets(ctx, e.kafka, g1, rp.Positions()); err != nil {
		t.Fatal(err)
	}
	gen.Store(1)
	if err := kafkax.WaitGroupEmpty(ctx, e.kafka, g0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	produceHistory(t, e, h.Events[2*third:])
	waitCommitted(t, e, g1, e.names.Events)
	projectiontest.CheckHistory(t, e.genSink(t, 1), h)
	if got := f.Generation(); got.Gen != 1 {
		t.Fatalf("follower on %+v", got)
	}
	if err := f.Ready(ctx); err != nil {
		t.Fatalf("ready after the switch: %v", err)
	}
	if n := gauge(t, reg, "ledger_projector_lag"); n != 0 {
		t.Fatalf("lag after the switch: %v", n)
	}
	if err := kafkax.DeleteGroup(ctx, e.kafka, g0); err != nil {
		t.Fatal(err)
	}
}

// TestReplayEndsWhenRecordsExpired pins a hang: command results expire, so
// a partition can have a high watermark above 0 and no records at all; the
// replay must count it as done rather than wait for records that are gone.
func TestReplayEndsWhenRecordsExpired(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := testenv.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 6 {
		cr := &codec.CommandResult{CommandID: fmt.Sprintf("old-%d", i), AggregateID: "acc-1", CommandType: "ledger.commands.DepositFunds",
			Status: "ACCEPTED", Version: 1, Events: []codec.EventRef{}, ProcessedAt: time.Now().UTC()}
		recs = append(recs, record(t, e.names.Results, cr.CommandID, fmt.Sprint(i), cr))
	}
	if err := plain.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := e.adm.ListEndOffsets(ctx, e.names.Results)
	if err != nil {
		t.Fatal(err)
	}
	var del kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) { del.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	if _, err := e.adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	sink := e.genSink(t, 1)
	rp, err := projector.NewReplay(projector.ReplayConfig{Kafka: e.kafka, Sink: sink, Results: sink})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if err := rp.Run(ctx); err != nil {
		t.Fatalf("replay: %v", err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if got := rp.Positions()[o.Topic][o.Partition]; got != o.Offset {
			t.Errorf("%s/%d at %d, want %d", o.Topic, o.Partition, got, o.Offset)
		}
	})
}

// TestFollowerReportsALongPause: a pause for a switch is ready (writes
// pause for a moment) until it has lasted MaxPause; then Ready says so.
// When the pause ends the follower builds the generation's projector.
func TestFollowerReportsALongPause(t *testing.T) {
	var paused atomic.Bool
	paused.Store(true)
	f, err := projector.NewFollower(projector.FollowConfig{
		Watch: func(context.Context) (projector.Generation, error) {
			return projector.Generation{Gen: 3, Paused: paused.Load()}, nil
		},
		Build: func(context.Context, int) (projector.Config, error) {
			return projector.Config{}, errors.New("not built in this test")
		},
		Interval: 10 * time.Millisecond,
		MaxPause: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	for f.Generation() != (projector.Generation{Gen: 3, Paused: true}) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.Ready(ctx); err != nil {
		t.Fatalf("ready at the start of a pause: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := f.Ready(ctx); err == nil || !strings.Contains(err.Error(), "paused for") {
		t.Fatalf("ready after a pause longer than MaxPause: %v", err)
	}
	paused.Store(false) // the switch ends: Build fails here, which ends Run
	if err := <-done; err == nil || !strings.Contains(err.Error(), "not built") {
		t.Fatalf("run: %v", err)
	}
}
