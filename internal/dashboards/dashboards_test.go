package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/dashboards"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

const dashboardsDir = "../../deploy/grafana/dashboards/"

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int      `json:"id"`
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Panels  []panel  `json:"panels"` // collapsed rows
	Targets []target `json:"targets"`
}

type target struct {
	RefID  string `json:"refId"`
	RawSQL string `json:"rawSql"`
	Expr   string `json:"expr"`
}

func load(t *testing.T, name string) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardsDir + name)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var ledgerDB = regexp.MustCompile(`\bledger\.(ledger_events|account_balances|volume_hourly)\b`)

// render is dashboards.RenderSQL, failing t on an unknown macro.
func render(t *testing.T, sql, currency string, from, to time.Time, db string) string {
	t.Helper()
	out, err := dashboards.RenderSQL(sql, currency, from, to, db)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkReads fails for a query that reads a ReplacingMergeTree without
// FINAL or volume_hourly without GROUP BY (rows before a merge).
func checkReads(t *testing.T, title, sql string) {
	t.Helper()
	for _, m := range regexp.MustCompile(`FROM\s+ledger\.(ledger_events|account_balances)(\s+FINAL)?\b`).FindAllStringSubmatch(sql, -1) {
		if m[2] == "" && !strings.Contains(sql, "argMax(") {
			t.Errorf("panel %q reads ledger.%s without FINAL or argMax", title, m[1])
		}
	}
	if strings.Contains(sql, "ledger.volume_hourly") && !strings.Contains(sql, "GROUP BY") {
		t.Errorf("panel %q reads ledger.volume_hourly without GROUP BY", title)
	}
	if !ledgerDB.MatchString(sql) {
		t.Errorf("panel %q names no ledger.<table>", title)
	}
}

// row is one result row by column name: numbers as float64, strings,
// times.
type row map[string]any

func query(t *testing.T, conn driver.Conn, sql string) []row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("query fails: %v\n%s", err, sql)
	}
	defer rs.Close()
	cols := rs.ColumnTypes()
	var out []row
	for rs.Next() {
		ptrs := make([]any, len(cols))
		for i, c := range cols {
			ptrs[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("scan: %v\n%s", err, sql)
		}
		r := row{}
		for i, c := range cols {
			v := reflect.ValueOf(ptrs[i]).Elem().Interface()
			switch x := v.(type) {
			case string, time.Time:
				r[c.Name()] = x
			default:
				rv := reflect.ValueOf(v)
				switch rv.Kind() {
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
					r[c.Name()] = float64(rv.Int())
				case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
					r[c.Name()] = float64(rv.Uint())
				case reflect.Float32, reflect.Float64:
					r[c.Name()] = rv.Float()
				default:
					t.Fatalf("column %s: unexpected type %T", c.Name(), v)
				}
			}
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("query fails: %v\n%s", err, sql)
	}
	return out
}

func num(t *testing.T, r row, col string) float64 {
	t.Helper()
	v, ok := r[col].(float64)
	if !ok {
		t.Fatalf("column %q: %v (%T), want a number; row %v", col, r[col], r[col], r)
	}
	return v
}

func str(t *testing.T, r row, col string) string {
	t.Helper()
	v, ok := r[col].(string)
	if !ok {
		t.Fatalf("column %q: %v (%T), want a string; row %v", col, r[col], r[col], r)
	}
	return v
}

// total sums a numeric column over rows, checking that the rows are a time
// series (a time column, ascending) when time is true.
func total(t *testing.T, rows []row, col string) float64 {
	t.Helper()
	var s float64
	for _, r := range rows {
		s += num(t, r, col)
	}
	return s
}

func checkSeries(t *testing.T, rows []row) {
	t.Helper()
	var last time.Time
	for i, r := range rows {
		tm, ok := r["time"].(time.Time)
		if !ok {
			t.Fatalf("row %d: no time column: %v", i, r)
		}
		if tm.Before(last) {
			t.Fatalf("row %d: time %s before %s: not ordered by time", i, tm, last)
		}
		last = tm
	}
}

func eq(t *testing.T, what string, got float64, want int64) {
	t.Helper()
	if got != float64(want) || math.IsNaN(got) {
		t.Errorf("%s = %v, want %d", what, got, want)
	}
}

// balanceRange is the analytics dashboard's bucketing of a balance.
func balanceRange(b int64) string {
	switch {
	case b < 0:
		return "below 0"
	case b == 0:
		return "0"
	case b < 10000:
		return "0.01 to 99.99"
	case b < 100000:
		return "100 to 999.99"
	case b < 1000000:
		return "1k to 9,999.99"
	case b < 10000000:
		return "10k to 99,999.99"
	}
	return "100k and above"
}

// TestAnalyticsDashboard runs every query of ledger-analytics.json on
// ClickHouse after a generated history and compares its numbers with the
// ClickHouse view the query API answers from (Summary, TopAccounts) and
// with the history's own final state.
func TestAnalyticsDashboard(t *testing.T) {
	d := load(t, "ledger-analytics.json")
	conn, db := testenv.ClickHouseDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := chsink.Options{Database: db}
	if err := chsink.Migrate(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	v, err := chsink.NewView(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := projectiontest.Generate(16, "dash-", 60, 3000)
	stretch(t, h.Events, 10) // ten seconds apart: hours of history
	projectiontest.ApplyInBatches(t, v, h.Events, 97, 500, 13)
	// Redelivered: the view inserts nothing twice (so volume_hourly stays
	// exact), and account_balances holds a row per batch that changed an
	// account, which a reader without FINAL would count several times.
	projectiontest.ApplyInBatches(t, v, h.Events[:400], 50)
	var rows, final uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".account_balances").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".account_balances FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if rows <= final {
		t.Logf("account_balances: %d rows, %d accounts: merged already, FINAL is not put to the test", rows, final)
	}

	last := h.Events[len(h.Events)-1].OccurredAt
	from, to := projectiontest.Base.Truncate(time.Hour), last.Add(time.Hour)
	if last.Sub(projectiontest.Base) < 2*time.Hour {
		t.Fatalf("the history spans %s; want several hours", last.Sub(projectiontest.Base))
	}

	sums, err := v.Summary(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	summary := map[string]projection.CurrencySummary{}
	for _, s := range sums {
		summary[s.Currency] = s
	}
	top, err := v.TopAccounts(ctx, "balance", projection.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) == projection.MaxLimit {
		t.Fatal("more open accounts than TopAccounts returns: the top-accounts check would be partial")
	}
	refundReasons := map[string]map[string]int64{} // currency → reason → count
	for _, e := range h.Events {
		if r, ok := e.Value.(*codec.TransferRefunded); ok {
			if refundReasons[r.Currency] == nil {
				refundReasons[r.Currency] = map[string]int64{}
			}
			refundReasons[r.Currency][r.Reason]++
		}
	}

	// The currency variable.
	var currencies []string
	for _, vr := range d.Templating.List {
		if vr.Name != "currency" {
			t.Fatalf("unexpected template variable %q: add it to the test", vr.Name)
		}
		q, ok := vr.Query.(string)
		if !ok {
			t.Fatalf("variable currency: query %v is not SQL text", vr.Query)
		}
		checkReads(t, "variable currency", q)
		for _, r := range query(t, conn, render(t, q, "", from, to, db)) {
			for _, c := range r {
				currencies = append(currencies, c.(string))
			}
		}
	}
	var want []string
	for _, a := range h.Accounts {
		if !slices.Contains(want, a.Currency) {
			want = append(want, a.Currency)
		}
	}
	sort.Strings(want)
	if !slices.Equal(currencies, want) {
		t.Fatalf("currency variable: %v, want %v", currencies, want)
	}

	checks := map[string]func(t *testing.T, cur string, rows []row){
		"Volume and net flow (${currency})": func(t *testing.T, cur string, rows []row) {
			checkSeries(t, rows)
			s := summary[cur]
			eq(t, "volume", total(t, rows, "volume"), s.Deposits+s.Withdrawals+s.Transfers+s.TransfersCredited+s.TransfersRefunded)
			eq(t, "net_flow", total(t, rows, "net_flow"), s.Deposits-s.Withdrawals-s.Transfers+s.TransfersCredited+s.TransfersRefunded)
		},
		"Volume per currency": func(t *testing.T, _ string, rows []row) {
			checkSeries(t, rows)
			got := map[string]float64{}
			for _, r := range rows {
				got[str(t, r, "currency")] += num(t, r, "volume")
			}
			if len(got) != len(summary) {
				t.Errorf("currencies %v, want those of %v", got, sums)
			}
			for c, s := range summary {
				eq(t, "volume of "+c, got[c], s.Deposits+s.Withdrawals+s.Transfers+s.TransfersCredited+s.TransfersRefunded)
			}
		},
		"Deposits vs withdrawals (${currency})": func(t *testing.T, cur string, rows []row) {
			checkSeries(t, rows)
			eq(t, "deposits", total(t, rows, "deposits"), summary[cur].Deposits)
			eq(t, "withdrawals", total(t, rows, "withdrawals"), summary[cur].Withdrawals)
		},
		"Transfers completed vs refunded (${currency})": func(t *testing.T, cur string, rows []row) {
			checkSeries(t, rows)
			eq(t, "completed", total(t, rows, "completed"), summary[cur].CreditedCount)
			eq(t, "refunded", total(t, rows, "refunded"), summary[cur].RefundedCount)
		},
		"Transfer refunds by reason (${currency})": func(t *testing.T, cur string, rows []row) {
			checkSeries(t, rows)
			got := map[string]float64{}
			for _, r := range rows {
				got[str(t, r, "reason")] += num(t, r, "refunds")
			}
			eq(t, "refunds", total(t, rows, "refunds"), summary[cur].RefundedCount)
			if len(got) != len(refundReasons[cur]) {
				t.Errorf("reasons %v, want %v", got, refundReasons[cur])
			}
			for reason, n := range refundReasons[cur] {
				eq(t, "refunds for "+reason, got[reason], n)
			}
		},
		"Top accounts by balance (${currency})": func(t *testing.T, cur string, rows []row) {
			var want []projection.AccountRank
			for _, r := range top {
				if r.Currency == cur && len(want) < 10 {
					want = append(want, r)
				}
			}
			if len(rows) != len(want) {
				t.Fatalf("%d rows, want %d (TopAccounts: %v)", len(rows), len(want), want)
			}
			for i, r := range rows {
				if str(t, r, "account_id") != want[i].AccountID || num(t, r, "balance") != float64(want[i].Value) {
					t.Errorf("row %d: %v, want %+v", i, r, want[i])
				}
				a := h.Accounts[want[i].AccountID]
				if str(t, r, "owner") != a.Owner || num(t, r, "version") != float64(a.Version) {
					t.Errorf("row %d: %v, want owner %q version %d", i, r, a.Owner, a.Version)
				}
			}
		},
		"Balance distribution (${currency})": func(t *testing.T, cur string, rows []row) {
			want := map[string]int64{}
			var open int64
			for _, a := range h.Accounts {
				if a.Currency == cur && a.Status == projection.StatusOpen {
					want[balanceRange(a.Balance)]++
					open++
				}
			}
			eq(t, "accounts in all ranges", total(t, rows, "accounts"), open)
			if len(rows) != len(want) {
				t.Errorf("ranges %v, want %v", rows, want)
			}
			for _, r := range rows {
				eq(t, "accounts in "+str(t, r, "balance_range"), num(t, r, "accounts"), want[str(t, r, "balance_range")])
			}
		},
	}

	// The statements as run here, for scripts/sqlcheck (current ClickHouse):
	// the DDL first, then every query with its variables substituted.
	var corpus []map[string]string
	for _, q := range chsink.Schema(opts) {
		corpus = append(corpus, map[string]string{"sql": q})
	}
	for _, vr := range d.Templating.List {
		corpus = append(corpus, map[string]string{"sql": render(t, vr.Query.(string), "", from, to, db)})
	}
	ran := 0
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		check, ok := checks[p.Title]
		if !ok {
			t.Errorf("panel %q has no check in this test: add one", p.Title)
			continue
		}
		if len(p.Targets) != 1 || p.Targets[0].RawSQL == "" {
			t.Errorf("panel %q: want one target with rawSql, have %+v", p.Title, p.Targets)
			continue
		}
		sql := p.Targets[0].RawSQL
		checkReads(t, p.Title, sql)
		for _, cur := range currencies {
			q := render(t, sql, cur, from, to, db)
			corpus = append(corpus, map[string]string{"sql": q})
			t.Run(fmt.Sprintf("%d/%s", p.ID, cur), func(t *testing.T) {
				rows := query(t, conn, q)
				if len(rows) == 0 {
					t.Fatalf("panel %q: no rows for %s\n%s", p.Title, cur, sql)
				}
				check(t, cur, rows)
			})
			ran++
		}
	}
	if ran == 0 || len(checks) != countPanels(d.Panels) {
		t.Errorf("checks for %d panels, the dashboard has %d", len(checks), countPanels(d.Panels))
	}
	if path := os.Getenv("LEDGER_DASHBOARD_SQL"); path != "" && !t.Failed() {
		b, err := json.MarshalIndent(map[string]any{"name": "the analytics dashboard", "database": db, "statements": corpus}, "", "  ")
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// stretch spaces the events factor times further apart from
// projectiontest.Base, in the events and in their values.
func stretch(t *testing.T, events []projection.Event, factor int) {
	t.Helper()
	for i := range events {
		e := &events[i]
		e.OccurredAt = projectiontest.Base.Add(e.OccurredAt.Sub(projectiontest.Base) * time.Duration(factor))
		f := reflect.ValueOf(e.Value).Elem().FieldByName("OccurredAt")
		if !f.IsValid() || !f.CanSet() {
			t.Fatalf("event %T has no OccurredAt", e.Value)
		}
		f.Set(reflect.ValueOf(e.OccurredAt))
	}
}

func countPanels(ps []panel) int {
	n := 0
	for _, p := range allPanels(ps) {
		if p.Type != "row" {
			n++
		}
	}
	return n
}
