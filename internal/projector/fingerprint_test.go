package projector_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

// TestLegacyFingerprintsReplayToIdenticalViews: an events log in which
// every other record carries its schema's legacy fingerprint (as written
// before the ledger used the specification's) projects into Redis and
// ClickHouse exactly as the same log written today.
func TestLegacyFingerprintsReplayToIdenticalViews(t *testing.T) {
	h := projectiontest.Generate(41, "", 10, 400)
	type views struct {
		redis *redissink.Sink
		ch    *chsink.View
	}
	project := func(t *testing.T, name string, legacyEvery int) views {
		e := setup(t)
		e.kafka.TopicPrefix += name + "."
		e.names = topology.NamesFor(e.kafka.TopicPrefix)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, topic := range []string{e.names.Events, e.names.Results} {
			if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
				t.Fatalf("create topic %s: %v", topic, err)
			}
		}
		produceHistory(t, e, h.Events, func(i int, r *kgo.Record) {
			if legacyEvery > 0 && i%legacyEvery == 0 {
				r.Value = testenv.LegacyValue(t, r.Value)
			}
		})
		rs, err := redissink.New(e.rdb, redissink.Options{Prefix: e.prefix + name + ":"})
		if err != nil {
			t.Fatal(err)
		}
		conn, db := testenv.ClickHouseDB(t)
		opts := chsink.Options{Database: db}
		if err := chsink.Migrate(ctx, conn, opts); err != nil {
			t.Fatal(err)
		}
		cv, err := chsink.NewView(conn, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			group string
			sink  projection.Sink
		}{{"redis", rs}, {"clickhouse", cv}} {
			p := start(t, projector.Config{Kafka: e.kafka, Group: e.kafka.TopicPrefix + s.group, Sink: s.sink, MaxDelay: 20 * time.Millisecond})
			waitCommitted(t, e, p.Group(), e.names.Events)
		}
		projectiontest.CheckHistory(t, rs, h)
		projectiontest.CheckHistory(t, cv, h)
		return views{rs, cv}
	}
	current := project(t, "current", 0)
	mixed := project(t, "mixed", 2)

	for _, c := range []struct {
		name      string
		now, then projection.View
	}{{"redis", current.redis, mixed.redis}, {"clickhouse", current.ch, mixed.ch}} {
		a, b := projectiontest.Snapshot(t, c.now, h), projectiontest.Snapshot(t, c.then, h)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the view of the mixed log differs from the view of the current one", c.name)
		}
	}
	ctx := context.Background()
	sa, err := current.ch.Summary(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := mixed.ch.Summary(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sa) == 0 || !reflect.DeepEqual(sa, sb) {
		t.Errorf("clickhouse summary: current %+v, mixed %+v", sa, sb)
	}
}
