package projector_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/projector"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// gatedConn holds the first INSERT into ledger_events until released: the
// member using it stalls between reading which versions are stored and
// writing, the window of the read-then-insert race.
type gatedConn struct {
	driver.Conn
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (c *gatedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if strings.Contains(query, chsink.EventsTable) {
		c.once.Do(func() {
			close(c.entered)
			<-c.release
		})
	}
	return c.Conn.PrepareBatch(ctx, query, opts...)
}

// TestEvictedWriterCannotDoubleCount runs two ClickHouse projectors of one
// group at once on the same batch. Regression: a member evicted mid-apply
// (here: stalled past the rebalance timeout while a second member joins)
// went on to insert the batch its successor had already inserted, because
// the duplicate check is read-then-insert; volume_hourly counted those
// events twice. With write fencing the successor waits for the evicted
// member's announced write deadline, and the evicted member writes nothing
// after it. The stalled member is released both before its deadline (it
// writes, the successor then skips) and after it (it writes nothing).
func TestEvictedWriterCannotDoubleCount(t *testing.T) {
	for _, c := range []struct {
		name    string
		release time.Duration // after the stall began
	}{{"released within its deadline", 1500 * time.Millisecond}, {"released after its deadline", 5 * time.Second}} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t)
			conn, db := testenv.ClickHouseDB(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			opts := chsink.Options{Database: db}
			if err := chsink.Migrate(ctx, conn, opts); err != nil {
				t.Fatal(err)
			}
			view := func(c driver.Conn) *chsink.View {
				v, err := chsink.NewView(c, opts)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			h := projectiontest.Generate(31, "", 8, 300)
			produceHistory(t, e, h.Events)

			gate := &gatedConn{Conn: conn, entered: make(chan struct{}), release: make(chan struct{})}
			group := e.kafka.TopicPrefix + "fence"
			cfg := projector.Config{Kafka: e.kafka, Group: group, MaxBatch: 1000, MaxDelay: 50 * time.Millisecond,
				RebalanceTimeout: 2 * time.Second, SessionTimeout: 6 * time.Second, WriteDeadline: 3 * time.Second}
			a := cfg
			a.Sink = view(gate)
			start(t, a)
			select {
			case <-gate.entered:
			case <-ctx.Done():
				t.Fatal("the first member never wrote")
			}
			stalled := time.Now()
			b := cfg
			b.Sink = view(conn)
			start(t, b) // the rebalance evicts the stalled member after 2 s
			time.Sleep(time.Until(stalled.Add(c.release)))
			close(gate.release)

			waitCommitted(t, e, group, e.names.Events)
			var rows, distinct uint64
			if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(aggregate_id, version) FROM "+db+".ledger_events").Scan(&rows, &distinct); err != nil {
				t.Fatal(err)
			}
			var events, volume, wantEvents, wantVolume int64
			if err := conn.QueryRow(ctx, "SELECT toInt64(sum(events)), toInt64(sum(volume)) FROM "+db+".volume_hourly").Scan(&events, &volume); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRow(ctx, "SELECT toInt64(count()), toInt64(sum(abs(amount))) FROM "+db+".ledger_events FINAL WHERE amount != 0").Scan(&wantEvents, &wantVolume); err != nil {
				t.Fatal(err)
			}
			if rows != distinct || rows != uint64(len(h.Events)) {
				t.Errorf("ledger_events: %d rows, %d distinct (aggregate, version), want %d each", rows, distinct, len(h.Events))
			}
			if events != wantEvents || volume != wantVolume {
				t.Errorf("volume_hourly: %d events, volume %d; the events say %d and %d", events, volume, wantEvents, wantVolume)
			}
			projectiontest.CheckHistory(t, view(conn), h)
		})
	}
}

// TestStuckProjectorShowsLagAndStall: regression of a projector stuck on
// one batch (every retry failing) whose lag gauge still showed 0, so that
// nothing watching it could tell. The gauge is read from the broker while
// the projector fetches nothing, and Ready fails.
func TestStuckProjectorShowsLagAndStall(t *testing.T) {
	// Restored by a cleanup registered before the projector's, so after
	// the projector (which reads it) has stopped: cleanups run last first.
	t.Cleanup(projector.SetLagEvery(200 * time.Millisecond))
	e := setup(t)
	h := projectiontest.Generate(41, "", 4, 60)
	produceHistory(t, e, h.Events)
	reg := prometheus.NewRegistry()
	fs := &failingSink{Sink: e.sink(t), n: 1 << 30}
	p := start(t, projector.Config{Kafka: e.kafka, Group: e.kafka.TopicPrefix + "stuck", Sink: fs, MaxBatch: 5000,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StallTimeout: time.Second, Registerer: reg})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var lag float64
		if mfs, _ := reg.Gather(); hasMetric(mfs, "ledger_projector_lag") {
			lag = gauge(t, reg, "ledger_projector_lag")
		}
		err := p.Ready(context.Background())
		if lag >= float64(len(h.Events)) && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag gauge %v (want ≥ %d), Ready %v (want an error)", lag, len(h.Events), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasMetric(mfs []*dto.MetricFamily, name string) bool {
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return true
		}
	}
	return false
}
