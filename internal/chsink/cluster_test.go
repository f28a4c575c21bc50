package chsink

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// The cluster tests run on two shards of two replicas (scripts/stack up
// clickhouse-cluster): Replicated tables on every server behind Distributed
// tables with the contract names.

// setupCluster migrates generation gen in a fresh database of the cluster and
// returns a view on it.
func setupCluster(t *testing.T, gen int) (driver.Conn, Options, *View) {
	t.Helper()
	conn, db, cluster := testenv.ClickHouseClusterDB(t)
	opts := Options{Database: db, Cluster: cluster, Generation: gen, BatchRows: 40}
	if err := Migrate(ctxFor(t), conn, opts); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return conn, opts, v
}

func TestClickHouseClusterContract(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projection.View {
		_, _, v := setupCluster(t, 0)
		return v
	})
}

// TestClickHouseClusterShardsByAccount: every account's events live on one shard, on
// both of its replicas (the insert quorum), nothing is inserted twice across
// redeliveries, and the readers through the Distributed tables (FINAL,
// argMax, the summing hourly volume) equal the fold.
func TestClickHouseClusterShardsByAccount(t *testing.T) {
	conn, opts, v := setupCluster(t, 0)
	h := generate(t, 3, "cl-", 24, 600)
	applyAll(t, v, h.batches(37))
	// Redelivered through a cold view, as after a projector restart.
	v2, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v2, h.batches(64))
	checkAccounts(t, v2, h)
	checkHourlyExact(t, conn, opts, v2)
	checkTimeSeriesExact(t, v2)

	addrs, _ := testenv.ClickHouseCluster(t)
	if len(addrs) != 4 {
		t.Fatalf("want the local stack's 2 shards x 2 replicas, got %d servers", len(addrs))
	}
	local := opts.Database + "." + EventsTable + "_local"
	var shards [2]map[string]uint64
	for s := range 2 {
		a := perAggregateOn(t, testenv.ClickHouseNode(t, addrs[2*s], opts.Database), local)
		b := perAggregateOn(t, testenv.ClickHouseNode(t, addrs[2*s+1], opts.Database), local)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("shard %d: the replicas differ:\n%s: %v\n%s: %v", s+1, addrs[2*s], a, addrs[2*s+1], b)
		}
		shards[s] = a
	}
	for _, id := range h.accountIDs() {
		want := uint64(h.fold.Accounts[id].Version)
		n0, n1 := shards[0][id], shards[1][id]
		switch {
		case n0 > 0 && n1 > 0:
			t.Errorf("%s has rows on both shards (%d, %d)", id, n0, n1)
		case n0+n1 != want:
			t.Errorf("%s: %d raw rows, fold says %d events", id, n0+n1, want)
		}
	}
	if len(shards[0]) == 0 || len(shards[1]) == 0 {
		t.Errorf("every account on one shard (%d, %d accounts): the sharding key does not spread", len(shards[0]), len(shards[1]))
	}
	// Balances live with their events.
	balances := opts.Database + "." + BalancesTable + "_local"
	for s := range 2 {
		node := testenv.ClickHouseNode(t, addrs[2*s], opts.Database)
		rows, err := node.Query(ctxFor(t), "SELECT DISTINCT account_id FROM "+balances)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			if shards[s][id] == 0 {
				t.Errorf("the balance of %s is on shard %d, its events are not", id, s+1)
			}
		}
		rows.Close()
	}
}

// TestClickHouseClusterRebuildSwap: a rebuild's generation, swapped in by RebuildView
// on the cluster, is what the live Distributed tables read, and every
// server reads the same marker.
func TestClickHouseClusterRebuildSwap(t *testing.T) {
	conn, opts, live := setupCluster(t, 0)
	ctx := ctxFor(t)
	h := generate(t, 5, "cs-", 8, 200)
	half := len(h.events) / 2
	applyAll(t, live, [][]projection.Event{h.events[:half]})

	rv, err := NewRebuildView(ctx, conn, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sink, _, err := rv.Prepare(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range h.batches(50) {
		if err := sink.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := rv.Pause(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := rv.Switch(ctx, 2); err != nil {
		t.Fatal(err)
	}
	have, err := existing(ctx, conn, opts.Database, "ledger_events", "ledger_events_local", "ledger_events_g2", "ledger_events_g2_local", "ledger_events_local_old", "volume_hourly_mv")
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{"ledger_events": true, "ledger_events_local": true, "volume_hourly_mv": true,
		"ledger_events_g2": false, "ledger_events_g2_local": false, "ledger_events_local_old": false} {
		if have[n] != want {
			t.Errorf("after the swap: %s exists = %v, want %v", n, have[n], want)
		}
	}
	v, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounts(t, v, h)
	checkHourlyExact(t, conn, opts, v)

	addrs, _ := testenv.ClickHouseCluster(t)
	for _, a := range addrs {
		m := NewMarker(testenv.ClickHouseNode(t, a, opts.Database), opts)
		var gen int
		var state string
		// Replication is asynchronous: each server has the marker within
		// seconds, and may show the switch's "switching" row before the
		// "current" one that follows it.
		for i := 0; i < 100; i++ {
			if gen, state, _, err = m.Read(ctx); err == nil && gen == 2 && state == StateCurrent {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || gen != 2 || state != StateCurrent {
			t.Errorf("server %s reads generation %d %q (%v), want 2 current", a, gen, state, err)
		}
	}
}

// TestClickHouseClusterReplayAfterStaleRead: a replica that lacks parts its
// partner acknowledged (as when the partner dies before they are fetched)
// makes a view that now reads through it take stored events for missing.
// The view sends their INSERTs again unchanged, which the shard
// deduplicates: no event is stored twice and the hourly volume stays exact.
func TestClickHouseClusterReplayAfterStaleRead(t *testing.T) {
	_, opts, v := setupCluster(t, 0) // writes through the first server, 9101
	ctx := ctxFor(t)
	addrs, _ := testenv.ClickHouseCluster(t)
	stale := testenv.ClickHouseNode(t, addrs[1], opts.Database) // the other replica of shard 01
	if err := stale.Exec(ctx, "SYSTEM STOP FETCHES"); err != nil {
		t.Fatal(err)
	}
	fetch := func() {
		if err := stale.Exec(ctx, "SYSTEM START FETCHES"); err != nil {
			t.Error(err)
		}
	}
	defer fetch()

	h := generate(t, 7, "rp-", 12, 160)
	applyAll(t, v, h.batches(40))
	// The view's connection moved to the stale replica, and it forgot what
	// it knew of the store (a failed Apply, a reassignment).
	v.conn = stale
	v.Reset()
	applyAll(t, v, h.batches(40))

	fetch()
	for _, tbl := range []string{"ledger_events_local", "account_balances_local", "volume_hourly_local"} {
		if err := stale.Exec(ctx, "SYSTEM SYNC REPLICA "+opts.Database+"."+tbl); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, stale, "SELECT count() FROM "+opts.Database+".ledger_events"); n != uint64(len(h.events)) {
		t.Errorf("%d event rows, want %d: an event was stored twice", n, len(h.events))
	}
	checkAccounts(t, v, h)
	checkHourlyExact(t, stale, opts, v)
}

// checkTimeSeriesExact compares the time series (on a cluster: from
// ledger_events) summed over all buckets with the exact summary.
func checkTimeSeriesExact(t *testing.T, v *View) {
	t.Helper()
	from, to := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range summary(t, v, time.Time{}, time.Time{}) {
		for metric, want := range map[string]int64{"deposits": s.Deposits, "withdrawals": s.Withdrawals, "deposit_count": s.DepositCount} {
			pts, err := v.TimeSeries(ctxFor(t), metric, 24*time.Hour, from, to, s.Currency)
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			for _, p := range pts {
				got += p.Value
			}
			if got != want {
				t.Errorf("%s %s: time series sums to %d, summary %d", s.Currency, metric, got, want)
			}
		}
	}
}
