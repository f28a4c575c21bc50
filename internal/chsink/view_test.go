package chsink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setup migrates generation gen in a fresh database and returns a view on it.
func setup(t *testing.T, gen int) (driver.Conn, Options, *View) {
	t.Helper()
	conn, db := testenv.ClickHouseDB(t)
	opts := Options{Database: db, Generation: gen, BatchRows: 40}
	if err := Migrate(ctxFor(t), conn, opts); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return conn, opts, v
}

func applyAll(t *testing.T, v *View, batches [][]projection.Event) {
	t.Helper()
	for i, b := range batches {
		if err := v.Apply(ctxFor(t), b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
}

func count(t *testing.T, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(ctxFor(t), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkAccounts compares every account of the view with the fold.
func checkAccounts(t *testing.T, v *View, h *history) {
	t.Helper()
	for _, id := range h.accountIDs() {
		want := h.fold.Accounts[id]
		got, ok, err := v.Account(ctxFor(t), id)
		if err != nil || !ok {
			t.Fatalf("Account(%s) = ok %v, %v", id, ok, err)
		}
		status := "open"
		if want.Closed {
			status = "closed"
		}
		if got.Balance != want.Balance || got.Version != want.Version || got.Currency != want.Currency ||
			got.Status != status || got.Owner != h.owner[id] || got.OverdraftLimit != h.limit[id] || got.AccountID != id {
			t.Errorf("account %s: view %+v, fold %+v", id, got, *want)
		}
		last := lastEvent(h, id)
		if !got.UpdatedAt.Equal(last.OccurredAt) {
			t.Errorf("account %s: updated_at %s, last event at %s", id, got.UpdatedAt, last.OccurredAt)
		}
	}
	if _, ok, err := v.Account(ctxFor(t), "no-such-account"); ok || err != nil {
		t.Errorf("unknown account: ok %v, err %v", ok, err)
	}
}

func lastEvent(h *history, id string) projection.Event {
	var last projection.Event
	for _, e := range h.events {
		if e.AggregateID == id {
			last = e
		}
	}
	return last
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	conn, db := testenv.ClickHouseDB(t)
	ctx := ctxFor(t)
	snapshot := func() []string {
		rows, err := conn.Query(ctx, "SELECT name, engine, create_table_query, toString(metadata_modification_time) FROM system.tables WHERE database = ? ORDER BY name", db)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n, e, q, m string
			if err := rows.Scan(&n, &e, &q, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, n+"|"+e+"|"+q+"|"+m)
		}
		return out
	}
	for _, gen := range []int{0, 2} {
		if err := Migrate(ctx, conn, Options{Database: db, Generation: gen}); err != nil {
			t.Fatalf("first migrate, generation %d: %v", gen, err)
		}
	}
	before := snapshot()
	if len(before) != 8 {
		t.Fatalf("want 8 tables (4 per generation), got %d: %v", len(before), before)
	}
	time.Sleep(1100 * time.Millisecond) // a re-created table would show a new modification time
	for _, gen := range []int{0, 2} {
		if err := Migrate(ctx, conn, Options{Database: db, Generation: gen}); err != nil {
			t.Fatalf("second migrate, generation %d: %v", gen, err)
		}
	}
	after := snapshot()
	if len(after) != len(before) {
		t.Fatalf("tables changed: %v → %v", before, after)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("table changed:\n%s\n→\n%s", before[i], after[i])
		}
	}
}

// TestMigrateVolumeToExactColumns: a database made before volume_hourly
// had its exact inflow/outflow columns (the DDL below is that release's)
// is brought to today's layout by Migrate, with every stored hour carried
// over and the view feeding the new table afterwards.
func TestMigrateVolumeToExactColumns(t *testing.T) {
	conn, db := testenv.ClickHouseDB(t)
	ctx := ctxFor(t)
	opts := Options{Database: db, BatchRows: 40}
	old := []string{
		Schema(opts)[0], Schema(opts)[1],
		`CREATE TABLE ` + db + `.volume_hourly (currency String, hour DateTime('UTC'), type String,
    events UInt64, volume Int64, net Int64)
ENGINE = SummingMergeTree((events, volume, net)) PARTITION BY toYYYYMM(hour) ORDER BY (currency, hour, type)`,
		`CREATE MATERIALIZED VIEW ` + db + `.volume_hourly_mv TO ` + db + `.volume_hourly AS
SELECT currency, toStartOfHour(occurred_at) AS hour, type,
    count() AS events, toInt64(sum(abs(amount))) AS volume, sum(amount) AS net
FROM ` + db + `.ledger_events WHERE amount != 0 GROUP BY currency, hour, type`,
	}
	for _, q := range old {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	h := generate(t, 7, "mig-", 10, 400)
	batches := h.batches(37)
	half := len(batches) / 2
	v, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v, batches[:half])

	if err := Migrate(ctx, conn, opts); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cols, err := columnsOf(ctx, conn, db, "volume_hourly")
	if err != nil || !cols["outflow_rest"] {
		t.Fatalf("volume_hourly columns after migrate: %v %v", cols, err)
	}
	if have, err := existing(ctx, conn, db, "volume_hourly_v1", "volume_hourly_next", "volume_hourly_mv"); err != nil || have["volume_hourly_v1"] || have["volume_hourly_next"] || !have["volume_hourly_mv"] {
		t.Fatalf("tables after migrate: %v %v; want the view and no leftovers", have, err)
	}
	check := func(stage string) {
		t.Helper()
		for _, s := range summary(t, v, time.Time{}, time.Time{}) {
			for metric, want := range map[string]int64{"deposits": s.Deposits, "withdrawals": s.Withdrawals,
				"net": s.Deposits - s.Withdrawals - s.Transfers + s.TransfersCredited + s.TransfersRefunded} {
				pts, err := v.TimeSeries(ctx, metric, 100*365*24*time.Hour, time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), s.Currency)
				if err != nil {
					t.Fatalf("%s: %s %s: %v", stage, s.Currency, metric, err)
				}
				var got int64
				for _, p := range pts {
					got += p.Value
				}
				if got != want {
					t.Errorf("%s: %s %s from volume_hourly = %d, from ledger_events = %d", stage, s.Currency, metric, got, want)
				}
			}
		}
	}
	check("migrated")
	applyAll(t, v, batches[half:])
	check("written after the migration")
	if err := Migrate(ctx, conn, opts); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	check("migrated twice")
}

func TestViewMatchesFoldAndRedeliveryIsNoop(t *testing.T) {
	conn, opts, v := setup(t, 0)
	h := generate(t, 1, "m-", 12, 500)
	applyAll(t, v, h.batches(37))
	checkAccounts(t, v, h)

	events, balances := tablesOf(0).events, tablesOf(0).balances
	perAggregate := func(final string) map[string]uint64 {
		return perAggregateOn(t, conn, opts.Database+"."+events+final)
	}
	check := func(stage string) {
		t.Helper()
		final, raw := perAggregate(" FINAL"), perAggregate("")
		for _, id := range h.accountIDs() {
			want := uint64(h.fold.Accounts[id].Version)
			if final[id] != want {
				t.Errorf("%s: %s has %d events with FINAL, fold says %d", stage, id, final[id], want)
			}
			// Without FINAL: the rows actually stored, before any merge.
			// Equal counts mean no duplicate was ever inserted, which is
			// what keeps the summing hourly view exact.
			if raw[id] != want {
				t.Errorf("%s: %s has %d raw rows, want %d (a duplicate was inserted)", stage, id, raw[id], want)
			}
		}
		if n := count(t, conn, "SELECT count() FROM "+opts.Database+"."+balances+" FINAL"); n != uint64(len(h.fold.Accounts)) {
			t.Errorf("%s: %d account rows with FINAL, want %d", stage, n, len(h.fold.Accounts))
		}
		checkAccounts(t, v, h)
	}
	check("first delivery")
	rawBalances := count(t, conn, "SELECT count() FROM "+opts.Database+"."+balances)

	// Redelivery through the same view (cache warm), in other batch sizes
	// and with overlaps.
	applyAll(t, v, h.batches(50))
	if err := v.Apply(ctxFor(t), h.events[100:260]); err != nil {
		t.Fatal(err)
	}
	check("redelivered, warm cache")

	// Redelivery through a new view: a restarted projector with an empty
	// cache that replays from offset 0.
	v2, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v2, h.batches(64))
	check("redelivered, cold cache")
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+"."+balances); n != rawBalances {
		t.Errorf("redelivery wrote account rows: %d raw rows, were %d", n, rawBalances)
	}

	checkHourlyExact(t, conn, opts, v)
}

// perAggregateOn counts the rows of each aggregate in table (an events
// table, with FINAL or without, or one server's local one).
func perAggregateOn(t *testing.T, conn driver.Conn, table string) map[string]uint64 {
	t.Helper()
	rows, err := conn.Query(ctxFor(t), "SELECT aggregate_id, count() FROM "+table+" GROUP BY aggregate_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// checkHourlyExact compares the summing hourly volume (which counts every
// inserted row, merged or not) with the exact totals: a duplicate insert
// shows here even after ReplacingMergeTree merged it away in ledger_events.
func checkHourlyExact(t *testing.T, conn driver.Conn, opts Options, v *View) {
	t.Helper()
	for _, s := range summary(t, v, time.Time{}, time.Time{}) {
		var dep, wd int64
		q := "SELECT sumIf(volume, type = 'FundsDeposited'), sumIf(volume, type = 'FundsWithdrawn') FROM " + opts.Database + ".volume_hourly WHERE currency = ?"
		if err := conn.QueryRow(ctxFor(t), q, s.Currency).Scan(&dep, &wd); err != nil {
			t.Fatal(err)
		}
		if dep != s.Deposits || wd != s.Withdrawals {
			t.Errorf("%s: hourly volume deposits %d withdrawals %d, exact %d %d", s.Currency, dep, wd, s.Deposits, s.Withdrawals)
		}
	}
}

func summary(t *testing.T, v *View, from, to time.Time) []projection.CurrencySummary {
	t.Helper()
	s, err := v.Summary(ctxFor(t), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGapIsNotApplied: an event after a missing version is recorded in
// ledger_events but does not move the account until the gap is filled.
func TestGapIsNotApplied(t *testing.T) {
	_, _, v := setup(t, 0)
	h := generate(t, 2, "g-", 3, 20)
	id := h.events[0].AggregateID
	var mine []projection.Event
	for _, e := range h.events {
		if e.AggregateID == id {
			mine = append(mine, e)
		}
	}
	if len(mine) < 4 {
		t.Fatalf("want ≥ 4 events of %s, have %d", id, len(mine))
	}
	if err := v.Apply(ctxFor(t), []projection.Event{mine[0], mine[2], mine[3]}); err != nil {
		t.Fatal(err)
	}
	got, _, err := v.Account(ctxFor(t), id)
	if err != nil || got.Version != 1 {
		t.Fatalf("after a gap: version %d (%v), want 1", got.Version, err)
	}
	if err := v.Apply(ctxFor(t), mine[1:4]); err != nil {
		t.Fatal(err)
	}
	got, _, err = v.Account(ctxFor(t), id)
	if err != nil || got.Version != 4 {
		t.Fatalf("gap filled: version %d (%v), want 4", got.Version, err)
	}
	rows, _, err := v.History(ctxFor(t), id, time.Time{}, time.Time{}, "", 100)
	if err != nil || len(rows) != 4 {
		t.Fatalf("history: %d rows (%v), want 4", len(rows), err)
	}
}

// TestCrashBetweenTables: events reached ledger_events but the balances did
// not (a crash between the two inserts). The retry through a new view must
// fold the balances and insert no event twice.
func TestCrashBetweenTables(t *testing.T) {
	conn, opts, v := setup(t, 0)
	h := generate(t, 3, "c-", 5, 80)
	var rows []eventRow
	for _, e := range h.events {
		rows = append(rows, rowOf(e))
	}
	if err := v.insertEvents(ctxFor(t), rows[:60]); err != nil {
		t.Fatal(err)
	}
	v2, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v2, h.batches(25))
	checkAccounts(t, v2, h)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events"); n != uint64(len(h.events)) {
		t.Errorf("%d raw event rows, want %d", n, len(h.events))
	}
}

func TestReaders(t *testing.T) {
	_, _, v := setup(t, 0)
	h := generate(t, 4, "r-", 10, 400)
	applyAll(t, v, h.batches(100))
	ctx := ctxFor(t)

	t.Run("history pages cover every event once", func(t *testing.T) {
		for _, id := range h.accountIDs() {
			var got []projection.EventRow
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatal("history does not end")
				}
				rows, next, err := v.History(ctx, id, time.Time{}, time.Time{}, cursor, 7)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) > 7 {
					t.Fatalf("page of %d rows, limit 7", len(rows))
				}
				got = append(got, rows...)
				if next == "" {
					break
				}
				cursor = next
			}
			var want []projection.Event
			for _, e := range h.events {
				if e.AggregateID == id {
					want = append(want, e)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d history rows, %d events", id, len(got), len(want))
			}
			for i := range want {
				r, e := got[i], want[i]
				if r.EventID != e.EventID || r.Version != e.Version || !r.OccurredAt.Equal(e.OccurredAt) || r.Type != e.Type[len("ledger.events."):] {
					t.Errorf("%s row %d: %+v, event %s v%d at %s", id, i, r, e.EventID, e.Version, e.OccurredAt)
				}
			}
		}
	})

	t.Run("history window", func(t *testing.T) {
		id := h.accountIDs()[3]
		from, to := genStart.Add(time.Hour), genStart.Add(3*time.Hour)
		rows, next, err := v.History(ctx, id, from, to, "", 1000)
		if err != nil || next != "" {
			t.Fatalf("next %q, err %v", next, err)
		}
		n := 0
		for _, e := range h.events {
			if e.AggregateID == id && !e.OccurredAt.Before(from) && e.OccurredAt.Before(to) {
				n++
			}
		}
		if len(rows) != n || n == 0 {
			t.Errorf("window: %d rows, want %d (> 0)", len(rows), n)
		}
	})

	t.Run("history rejects bad arguments", func(t *testing.T) {
		if _, _, err := v.History(ctx, "x", time.Time{}, time.Time{}, "abc", 5); err == nil {
			t.Error("bad cursor accepted")
		}
		if _, _, err := v.History(ctx, "x", time.Time{}, time.Time{}, "", projection.MaxLimit+1); err == nil {
			t.Error("limit above max accepted")
		}
	})

	t.Run("balance at", func(t *testing.T) {
		for _, id := range h.accountIDs() {
			var evs []projection.Event
			for _, e := range h.events {
				if e.AggregateID == id {
					evs = append(evs, e)
				}
			}
			balanceOf := func(e projection.Event) int64 {
				return rowOf(e).BalanceAfter
			}
			if _, _, ok, err := v.BalanceAt(ctx, id, evs[0].OccurredAt.Add(-time.Millisecond)); ok || err != nil {
				t.Errorf("%s before opening: ok %v, err %v", id, ok, err)
			}
			for _, i := range []int{0, len(evs) / 3, len(evs) / 2, len(evs) - 1} {
				for _, at := range []time.Time{evs[i].OccurredAt, evs[i].OccurredAt.Add(time.Millisecond)} {
					bal, ver, ok, err := v.BalanceAt(ctx, id, at)
					if err != nil || !ok || bal != balanceOf(evs[i]) || ver != evs[i].Version {
						t.Errorf("%s at %s: %d v%d ok %v err %v, want %d v%d", id, at, bal, ver, ok, err, balanceOf(evs[i]), evs[i].Version)
					}
				}
			}
			bal, ver, ok, err := v.BalanceAt(ctx, id, genStart.Add(1000*time.Hour))
			if err != nil || !ok || bal != h.fold.Accounts[id].Balance || ver != h.fold.Accounts[id].Version {
				t.Errorf("%s at the end: %d v%d ok %v err %v, fold %+v", id, bal, ver, ok, err, *h.fold.Accounts[id])
			}
		}
	})

	t.Run("summary equals the fold", func(t *testing.T) {
		got := summary(t, v, time.Time{}, time.Time{})
		if len(got) != len(h.fold.Totals) {
			t.Fatalf("%d currencies, fold has %d", len(got), len(h.fold.Totals))
		}
		for _, s := range got {
			w := h.fold.Totals[s.Currency]
			if w == nil || s.Deposits != w.Deposits || s.Withdrawals != w.Withdrawals || s.Events != int64(w.Events) ||
				s.Transfers != h.debited[s.Currency] || s.TransfersCredited != h.credited[s.Currency] || s.TransfersRefunded != h.refunded[s.Currency] {
				t.Errorf("%s: summary %+v, fold %+v, transfers %d/%d/%d", s.Currency, s, w,
					h.debited[s.Currency], h.credited[s.Currency], h.refunded[s.Currency])
			}
		}
		// A window: recompute from the events.
		from, to := genStart.Add(90*time.Minute), genStart.Add(4*time.Hour)
		want := map[string]int64{}
		for _, e := range h.events {
			if r := rowOf(e); r.Type == "FundsDeposited" && !e.OccurredAt.Before(from) && e.OccurredAt.Before(to) {
				want[r.Currency] += r.Amount
			}
		}
		for _, s := range summary(t, v, from, to) {
			if s.Deposits != want[s.Currency] {
				t.Errorf("window %s: deposits %d, want %d", s.Currency, s.Deposits, want[s.Currency])
			}
		}
	})

	t.Run("time series", func(t *testing.T) {
		for _, interval := range []time.Duration{time.Hour, 3 * time.Hour, 24 * time.Hour} {
			want := map[int64]int64{}
			for _, e := range h.events {
				if r := rowOf(e); r.Type == "FundsWithdrawn" && r.Currency == "USD" {
					b := e.OccurredAt.Unix() / int64(interval/time.Second) * int64(interval/time.Second)
					want[b] += -r.Amount
				}
			}
			pts, err := v.TimeSeries(ctx, "withdrawals", interval, genStart.Add(-time.Hour), genStart.Add(100*time.Hour), "USD")
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != len(want) {
				t.Errorf("interval %s: %d points, want %d", interval, len(pts), len(want))
			}
			for _, p := range pts {
				if want[p.Time.Unix()] != p.Value {
					t.Errorf("interval %s at %s: %d, want %d", interval, p.Time, p.Value, want[p.Time.Unix()])
				}
			}
		}
		for _, bad := range []struct {
			metric   string
			interval time.Duration
			currency string
		}{{"bogus", time.Hour, "EUR"}, {"deposits", 90 * time.Minute, "EUR"}, {"deposits", time.Hour, ""}} {
			if _, err := v.TimeSeries(ctx, bad.metric, bad.interval, genStart, genStart.Add(time.Hour), bad.currency); err == nil {
				t.Errorf("%+v accepted", bad)
			}
		}
	})

	t.Run("top accounts", func(t *testing.T) {
		type kv struct {
			id  string
			val int64
		}
		var byBalance, byVolume []kv
		volume := map[string]int64{}
		for _, e := range h.events {
			if a := rowOf(e).Amount; a != 0 {
				volume[e.AggregateID] += max(a, -a)
			}
		}
		for _, id := range h.accountIDs() {
			if a := h.fold.Accounts[id]; !a.Closed {
				byBalance = append(byBalance, kv{id, a.Balance})
			}
			if volume[id] != 0 {
				byVolume = append(byVolume, kv{id, volume[id]})
			}
		}
		for by, want := range map[string][]kv{"balance": byBalance, "volume": byVolume} {
			sort.Slice(want, func(i, j int) bool {
				if want[i].val != want[j].val {
					return want[i].val > want[j].val
				}
				return want[i].id < want[j].id
			})
			got, err := v.TopAccounts(ctx, by, 5)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != min(5, len(want)) {
				t.Fatalf("by %s: %d rows, want %d", by, len(got), min(5, len(want)))
			}
			for i := range got {
				if got[i].AccountID != want[i].id || got[i].Value != want[i].val || got[i].Currency != h.fold.Accounts[want[i].id].Currency {
					t.Errorf("by %s #%d: %+v, want %+v", by, i, got[i], want[i])
				}
			}
		}
		if _, err := v.TopAccounts(ctx, "bogus", 5); err == nil {
			t.Error("bogus order accepted")
		}
	})
}

func TestSwap(t *testing.T) {
	conn, opts, live := setup(t, 0)
	ctx := ctxFor(t)
	h := generate(t, 5, "s-", 6, 150)
	half := len(h.events) / 2
	applyAll(t, live, [][]projection.Event{h.events[:half]})

	// A rebuild writes generation 3 from the start.
	rebuild := opts
	rebuild.Generation = 3
	if err := Migrate(ctx, conn, rebuild); err != nil {
		t.Fatal(err)
	}
	rv, err := NewView(conn, rebuild)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, rv, h.batches(40)[:len(h.batches(40))-1]) // all but the last batch

	if err := Swap(ctx, conn, opts, 3); err != nil {
		t.Fatal(err)
	}
	have, err := existing(ctx, conn, opts.Database, "ledger_events", "account_balances", "volume_hourly", "volume_hourly_mv",
		"ledger_events_g3", "account_balances_g3", "volume_hourly_g3", "volume_hourly_mv_g3", "ledger_events_old")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ledger_events", "account_balances", "volume_hourly", "volume_hourly_mv"} {
		if !have[n] {
			t.Errorf("after swap: %s missing", n)
		}
	}
	for _, n := range []string{"ledger_events_g3", "account_balances_g3", "volume_hourly_g3", "volume_hourly_mv_g3", "ledger_events_old"} {
		if have[n] {
			t.Errorf("after swap: %s still there", n)
		}
	}
	// A new live view finishes the history on the swapped tables; the
	// recreated hourly view keeps counting.
	v, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, v, h.batches(40))
	checkAccounts(t, v, h)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events"); n != uint64(len(h.events)) {
		t.Errorf("%d raw event rows, want %d", n, len(h.events))
	}
	var dep int64
	if err := conn.QueryRow(ctx, "SELECT sumIf(volume, type = 'FundsDeposited') FROM "+opts.Database+".volume_hourly").Scan(&dep); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, tot := range h.fold.Totals {
		want += tot.Deposits
	}
	if dep != want {
		t.Errorf("hourly deposits after swap %d, fold %d", dep, want)
	}

	if err := Swap(ctx, conn, opts, 4); err == nil {
		t.Error("swap to a generation that does not exist succeeded")
	}
}

// TestSwapWithoutLiveTables: the first rebuild into an empty database.
func TestSwapWithoutLiveTables(t *testing.T) {
	conn, db := testenv.ClickHouseDB(t)
	ctx := ctxFor(t)
	opts := Options{Database: db, Generation: 1}
	if err := Migrate(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	if err := Swap(ctx, conn, Options{Database: db}, 1); err != nil {
		t.Fatal(err)
	}
	have, err := existing(ctx, conn, db, "ledger_events", "ledger_events_g1")
	if err != nil {
		t.Fatal(err)
	}
	if !have["ledger_events"] || have["ledger_events_g1"] {
		t.Errorf("after swap: %v", have)
	}
}

// TestUnknownValueWritesNothing: a stray record (a command on the events
// topic) must not take the (aggregate, version) slot of the real event.
func TestUnknownValueWritesNothing(t *testing.T) {
	conn, opts, v := setup(t, 0)
	h := generate(t, 6, "u-", 2, 10)
	first := h.events[0]
	stray := projection.Event{Type: "ledger.commands.OpenAccount", Value: &codec.OpenAccount{AggregateID: first.AggregateID},
		AggregateID: first.AggregateID, Version: 1, EventID: "stray", OccurredAt: first.OccurredAt}
	if err := v.Apply(ctxFor(t), []projection.Event{stray}); err != nil {
		t.Fatal(err)
	}
	applyAll(t, v, h.batches(5))
	checkAccounts(t, v, h)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events WHERE event_id = 'stray'"); n != 0 {
		t.Errorf("stray record written %d times", n)
	}
}

// TestEventRows checks the flattened columns: signed amounts, transfer
// counterparties, and the currency of AccountClosed taken from the account.
func TestEventRows(t *testing.T) {
	_, _, v := setup(t, 0)
	h := generate(t, 7, "e-", 4, 120)
	applyAll(t, v, h.batches(30))
	closed := 0
	for _, id := range h.accountIDs() {
		rows, _, err := v.History(ctxFor(t), id, time.Time{}, time.Time{}, "", projection.MaxLimit)
		if err != nil {
			t.Fatal(err)
		}
		byVersion := map[int64]projection.EventRow{}
		for _, r := range rows {
			byVersion[r.Version] = r
		}
		for _, e := range h.events {
			if e.AggregateID != id {
				continue
			}
			r := byVersion[e.Version]
			var ok bool
			switch x := e.Value.(type) {
			case *codec.AccountOpened:
				ok = r.Type == "AccountOpened" && r.Amount == 0 && r.Currency == x.Currency
			case *codec.FundsDeposited:
				ok = r.Amount == x.Amount && r.BalanceAfter == x.BalanceAfter && r.Reference == x.Reference
			case *codec.FundsWithdrawn:
				ok = r.Amount == -x.Amount && r.BalanceAfter == x.BalanceAfter
			case *codec.TransferDebited:
				ok = r.Amount == -x.Amount && r.Counterparty == x.ToAccountID && r.TransferID == x.TransferID
			case *codec.TransferCredited:
				ok = r.Amount == x.Amount && r.Counterparty == x.FromAccountID && r.TransferID == x.TransferID
			case *codec.TransferRefunded:
				ok = r.Amount == x.Amount && r.Counterparty == x.ToAccountID && r.Reason == x.Reason
			case *codec.AccountClosed:
				closed++
				ok = r.Type == "AccountClosed" && r.Currency == h.fold.Accounts[id].Currency && r.Amount == 0 && r.BalanceAfter == 0
			}
			if !ok || r.CommandID == "" || r.CorrelationID == "" || r.CausationID == "" {
				t.Errorf("%s v%d: row %+v for %T %+v", id, e.Version, r, e.Value, e.Value)
			}
		}
	}
	if closed == 0 {
		t.Error("history has no AccountClosed")
	}
}

// TestInstancesTakeTurns: a partition moves from one projector to another
// and back. The first one's cache is stale when it gets the partition back;
// the events after the other's must still apply, and none be inserted twice.
func TestInstancesTakeTurns(t *testing.T) {
	conn, opts, a := setup(t, 0)
	b, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := generate(t, 8, "t-", 5, 150)
	for i, batch := range h.batches(20) {
		v := a
		if i%3 == 1 {
			v = b
		}
		if err := v.Apply(ctxFor(t), batch); err != nil {
			t.Fatal(err)
		}
	}
	checkAccounts(t, a, h)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events"); n != uint64(len(h.events)) {
		t.Errorf("%d raw event rows, want %d", n, len(h.events))
	}
}

// TestDefaultDatabase: without Options.Database every name is unqualified
// and resolves in the connection's default database.
func TestDefaultDatabase(t *testing.T) {
	conn, _ := testenv.ClickHouseDB(t)
	ctx := ctxFor(t)
	if err := Migrate(ctx, conn, Options{Generation: 1}); err != nil {
		t.Fatal(err)
	}
	if err := Swap(ctx, conn, Options{}, 1); err != nil {
		t.Fatal(err)
	}
	v, err := NewView(conn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := generate(t, 9, "d-", 3, 30)
	applyAll(t, v, h.batches(10))
	checkAccounts(t, v, h)
}

// TestLongIDsKeepStatementsBounded: regression of one long id stopping the
// ClickHouse projector for good ("Max query size exceeded" on every retry).
// 1,000 new accounts with ids at the domain's bound in one batch, and one
// account with a 300 KB id (older than the bounds), all apply; then the
// same records reach the store again through a fresh view (which reads
// every account's state: statements naming all the ids) and once more
// through that view (a redelivery below what it knows is stored: the
// version lookup names them all too).
func TestLongIDsKeepStatementsBounded(t *testing.T) {
	conn, opts, v := setup(t, 0)
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	open := func(id string, offset int64) projection.Event {
		return projection.Event{AggregateID: id, Version: 1, EventID: id + "/1", OccurredAt: at, Offset: offset,
			Value: &codec.AccountOpened{EventID: id + "/1", AggregateID: id, Version: 1, CommandID: "c", OccurredAt: at, Owner: "o", Currency: "EUR"}}
	}
	var batch []projection.Event
	for i := range 1000 {
		id := fmt.Sprintf("%04d-", i) + strings.Repeat("x", domain.MaxIDBytes-5)
		batch = append(batch, open(id, int64(i)))
	}
	huge := open(strings.Repeat("h", 300<<10), 1000)
	applyAll(t, v, [][]projection.Event{batch, {huge}})
	again, err := NewView(conn, opts) // no cache: asks the table for everything
	if err != nil {
		t.Fatal(err)
	}
	all := append(batch, huge)
	applyAll(t, again, [][]projection.Event{all, all})
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events"); n != 1001 {
		t.Fatalf("%d rows in ledger_events, want 1001", n)
	}
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".account_balances FINAL"); n != 1001 {
		t.Fatalf("%d accounts, want 1001", n)
	}
}

// TestSummaryDoesNotWrap: regression of analytics sums that overflowed
// Int64 silently. 10,000 deposits of the largest amount sum to 10^19: the
// summary refuses with projection.ErrOverflow instead of a wrapped total, and a total
// within range is exact.
func TestSummaryDoesNotWrap(t *testing.T) {
	conn, opts, v := setup(t, 0)
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	ev := func(acc string, ver int64, amount int64) projection.Event {
		return projection.Event{AggregateID: acc, Version: ver, EventID: fmt.Sprint(acc, "/", ver), OccurredAt: at,
			Value: &codec.FundsDeposited{EventID: fmt.Sprint(acc, "/", ver), AggregateID: acc, Version: ver, CommandID: "c", OccurredAt: at,
				Amount: amount, Currency: "EUR", BalanceAfter: amount * ver}}
	}
	var batch []projection.Event
	for i := range 9 {
		batch = append(batch, ev("ok", int64(i+1), domain.MaxAmount))
	}
	applyAll(t, v, [][]projection.Event{batch})
	got := summary(t, v, time.Time{}, time.Time{})
	if len(got) != 1 || got[0].Deposits != 9*domain.MaxAmount {
		t.Fatalf("summary %+v, want deposits %d", got, 9*domain.MaxAmount)
	}
	batch = batch[:0]
	for i := range 10_000 {
		batch = append(batch, ev("big", int64(i+1), domain.MaxAmount))
	}
	applyAll(t, v, [][]projection.Event{batch})
	if _, err := v.Summary(ctxFor(t), time.Time{}, time.Time{}); !errors.Is(err, projection.ErrOverflow) {
		t.Fatalf("summary of 10^19: %v, want projection.ErrOverflow", err)
	}
	// The hourly series sums volume_hourly's exact inflow/outflow columns:
	// 10^19 is an error, not a wrapped number, whether the hour's rows are
	// merged or not.
	series := func(metric string) (int64, error) {
		t.Helper()
		pts, err := v.TimeSeries(ctxFor(t), metric, time.Hour, at.Add(-time.Hour), at.Add(time.Hour), "EUR")
		if err != nil {
			return 0, err
		}
		if len(pts) != 1 {
			t.Fatalf("%s: %v, want one bucket", metric, pts)
		}
		return pts[0].Value, nil
	}
	for _, merged := range []bool{false, true} {
		if merged {
			// Force the merge that sums the hour's rows (and wraps the Int64
			// volume column).
			if err := conn.Exec(ctxFor(t), "OPTIMIZE TABLE "+opts.Database+".volume_hourly FINAL"); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range []string{"deposits", "net"} {
			if got, err := series(m); !errors.Is(err, projection.ErrOverflow) {
				t.Fatalf("%s of 10^19 (merged: %v): %d %v, want projection.ErrOverflow", m, merged, got, err)
			}
		}
	}
	// What an Int64 sum cannot see: 8,447 more deposits take the hour's
	// volume just past 2^64, where it wraps back to a positive number.
	batch = batch[:0]
	for i := range 8_447 {
		batch = append(batch, ev("big", int64(10_001+i), domain.MaxAmount))
	}
	applyAll(t, v, [][]projection.Event{batch})
	if err := conn.Exec(ctxFor(t), "OPTIMIZE TABLE "+opts.Database+".volume_hourly FINAL"); err != nil {
		t.Fatal(err)
	}
	var wrapped int64
	if err := conn.QueryRow(ctxFor(t), "SELECT sumIf(volume, type = 'FundsDeposited') FROM "+opts.Database+".volume_hourly").Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	if wrapped < 0 {
		t.Fatalf("the Int64 volume column is %d; this test wants it wrapped past 2^64 back to a positive number", wrapped)
	}
	if got, err := series("deposits"); !errors.Is(err, projection.ErrOverflow) {
		t.Fatalf("deposits of 1.8447*10^19 (Int64 column wrapped to %d): %d %v, want projection.ErrOverflow", wrapped, got, err)
	}
	// Withdrawals of the same size leave a net that fits: exact, although
	// inflow and outflow are each far beyond int64.
	wd := func(ver int64, amount int64) projection.Event {
		id := fmt.Sprint("big/", ver)
		return projection.Event{AggregateID: "big", Version: ver, EventID: id, OccurredAt: at,
			Value: &codec.FundsWithdrawn{EventID: id, AggregateID: "big", Version: ver, CommandID: "c", OccurredAt: at,
				Amount: amount, Currency: "EUR"}}
	}
	batch = batch[:0]
	for i := range 18_447 {
		amount := domain.MaxAmount
		if i == 0 {
			amount -= 12_345 // the whole net
		}
		batch = append(batch, wd(int64(18_448+i), amount))
	}
	applyAll(t, v, [][]projection.Event{batch})
	wantNet := 9*domain.MaxAmount + 12_345
	if got, err := series("net"); err != nil || got != wantNet {
		t.Fatalf("net: %d %v, want %d", got, err, wantNet)
	}
}

// countingConn counts the reads made through it, by kind: where the
// partitions' events end (positions), which versions of aggregates are
// stored (lookups), and stored account states (loads, by account).
type countingConn struct {
	driver.Conn
	positions, lookups, other atomic.Int64
	mu                        sync.Mutex
	loads                     map[string]int
}

func (c *countingConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	switch {
	case strings.HasPrefix(q, "SELECT kafka_partition, kafka_offset"):
		c.positions.Add(1)
	case strings.HasPrefix(q, "SELECT DISTINCT aggregate_id, version"):
		c.lookups.Add(1)
	case strings.HasPrefix(q, "SELECT account_id") && len(args) == 1:
		c.mu.Lock()
		if c.loads == nil {
			c.loads = map[string]int{}
		}
		if set, ok := args[0].(clickhouse.GroupSet); ok {
			for _, id := range set.Value {
				c.loads[id.(string)]++
			}
		}
		c.mu.Unlock()
	default:
		c.other.Add(1)
	}
	return c.Conn.Query(ctx, q, args...)
}

func (c *countingConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	c.other.Add(1)
	return c.Conn.QueryRow(ctx, q, args...)
}

// reads reports the counts; loadedTwice is any account loaded more than once.
func (c *countingConn) reads() (positions, lookups, other int64, loaded int, loadedTwice string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.loads {
		if n > 1 {
			loadedTwice = id
		}
	}
	return c.positions.Load(), c.lookups.Load(), c.other.Load(), len(c.loads), loadedTwice
}

// TestNoReadBeforeInsert: in log order, the view reads the table once, when
// it first sees the partitions (where each one's events end), and then
// inserts every batch without a lookup, new accounts included. A successor
// taking over from a predecessor that crashed after writing a scattered
// part of the uncommitted events reads their positions once, inserts each
// missing event once, reads the stored state of each account it had not
// seen once, and nothing else.
func TestNoReadBeforeInsert(t *testing.T) {
	conn, opts, _ := setup(t, 0)
	cc := &countingConn{Conn: conn}
	v, err := NewView(cc, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := generate(t, 21, "nr-", 40, 1200)
	batches := h.batches(50)
	half := len(batches) / 2
	applyAll(t, v, batches[:half])
	if p, l, o, n, _ := cc.reads(); p != 1 || l != 0 || o != 0 || n != 0 {
		t.Fatalf("%d batches from an empty table: %d position reads (want 1), %d lookups, %d other reads, %d accounts loaded (want none)", half, p, l, o, n)
	}

	// The predecessor wrote every third event of the next 300 and crashed
	// before committing: the successor is given them again from the
	// committed offset.
	done := half * 50
	var rows []eventRow
	for i, e := range h.events[done : done+300] {
		if i%3 == 0 {
			rows = append(rows, rowOf(e))
		}
	}
	if err := v.insertEvents(ctxFor(t), rows); err != nil {
		t.Fatal(err)
	}
	cc2 := &countingConn{Conn: conn}
	v2, err := NewView(cc2, opts)
	if err != nil {
		t.Fatal(err)
	}
	var rest [][]projection.Event
	for i := done; i < len(h.events); i += 100 {
		rest = append(rest, h.events[i:min(i+100, len(h.events))])
	}
	applyAll(t, v2, rest)
	if p, l, o, n, twice := cc2.reads(); p != 1 || l != 0 || o != 0 || twice != "" || n > len(h.fold.Accounts) {
		t.Errorf("successor: %d position reads (want 1), %d lookups, %d other reads (want none), %d accounts loaded, %q more than once", p, l, o, n, twice)
	}
	checkAccounts(t, v2, h)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events"); n != uint64(len(h.events)) {
		t.Errorf("%d raw event rows, want %d (an event inserted twice, or lost)", n, len(h.events))
	}
	checkHourlyExact(t, conn, opts, v2)
}

// TestRecreatedTopicIsNotTakenForWritten: the events topic was deleted and
// made again (its offsets restart at 0) while the tables stayed. The new
// topic's events sit at offsets the table holds for other events; they are
// all inserted, and the old ones stay.
func TestRecreatedTopicIsNotTakenForWritten(t *testing.T) {
	conn, opts, v := setup(t, 0)
	old := generate(t, 31, "old-", 10, 300)
	applyAll(t, v, old.batches(50))
	again, err := NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	fresh := generate(t, 32, "new-", 10, 300) // the same offsets, other events
	applyAll(t, again, fresh.batches(50))
	checkAccounts(t, again, fresh)
	checkAccounts(t, again, old)
	if n := count(t, conn, "SELECT count() FROM "+opts.Database+".ledger_events FINAL"); n != uint64(len(old.events)+len(fresh.events)) {
		t.Errorf("%d events, want %d old and %d new", n, len(old.events), len(fresh.events))
	}
}
