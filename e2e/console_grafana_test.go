package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chromedp/chromedp"

	"github.com/cqrs-ledger/ledger/internal/dashboards"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/query/ui"
)

// grafanaPanels runs each panel's SQL of the analytics dashboard on the
// test's ClickHouse (EUR for the per-currency panels, the workload's
// period), draws the rows in a test page with the console's uPlot, checks
// that it drew them, and screenshots it as grafana-<slug>.png. The numbers
// of the "Deposits vs withdrawals" panel are also checked against the
// query API's summary.
func (b *browser) grafanaPanels(a *queryAPI, conn driver.Conn, db string, from, to time.Time) {
	b.t.Helper()
	panels, err := dashboards.SQLPanels("../deploy/grafana/dashboards/ledger-analytics.json")
	if err != nil || len(panels) == 0 {
		b.t.Fatalf("analytics dashboard: %d panels, %v", len(panels), err)
	}
	page, err := os.ReadFile("testdata/grafana-panel.html")
	if err != nil {
		b.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+ui.Prefix, ui.Handler()) // the vendored uPlot
	mux.HandleFunc("GET /panel", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var sum struct{ Currencies []projection.CurrencySummary }
	a.mustGet("/v1/analytics/summary?"+period(from, to), &sum)

	const cur = "EUR"
	slugs := map[string]bool{}
	for _, p := range panels {
		sql, err := dashboards.RenderSQL(p.SQL, cur, from, to, db)
		if err != nil {
			b.t.Fatalf("panel %q: %v", p.Title, err)
		}
		cols, rows := queryRows(b.t, conn, sql)
		if len(rows) == 0 {
			b.t.Errorf("panel %q: no rows for the workload", p.Title)
			continue
		}
		title := strings.ReplaceAll(p.Title, "${currency}", cur)
		if p.Title == "Deposits vs withdrawals (${currency})" {
			var dep, wd float64
			for _, r := range rows {
				dep += r[slices.IndexFunc(cols, func(c column) bool { return c.Name == "deposits" })].(float64)
				wd += r[slices.IndexFunc(cols, func(c column) bool { return c.Name == "withdrawals" })].(float64)
			}
			for _, c := range sum.Currencies {
				if c.Currency == cur && (dep != float64(c.Deposits) || wd != float64(c.Withdrawals)) {
					b.t.Errorf("panel %q: deposits %v, withdrawals %v; the query API's summary says %d, %d", title, dep, wd, c.Deposits, c.Withdrawals)
				}
			}
		}
		panel, _ := json.Marshal(map[string]any{
			"title": title, "type": p.Type, "sql": strings.TrimSpace(p.SQL), "columns": cols, "rows": rows,
			"range": from.Format("2006-01-02 15:04") + " to " + to.Format("2006-01-02 15:04") + " UTC",
		})
		b.do(chromedp.Navigate(srv.URL + "/panel"))
		drawn := eval[struct {
			Series []string
			Rows   int
		}](b, "renderPanel("+string(panel)+")")
		if drawn.Rows != len(rows) || len(drawn.Series) == 0 {
			b.t.Errorf("panel %q: drew %+v of %d rows", title, drawn, len(rows))
		}
		if p.Type != "table" {
			if n := eval[int](b, `document.querySelectorAll("#out canvas").length`); n != 1 {
				b.t.Errorf("panel %q: %d canvases, want the chart's 1", title, n)
			}
		}
		slug := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(strings.ReplaceAll(p.Title, "${currency}", "")), "-"), "-")
		if slugs[slug] {
			b.t.Fatalf("two panels make the file name grafana-%s.png", slug)
		}
		slugs[slug] = true
		b.shot("grafana-"+slug, false)
	}
}

// column is a result column as the panel page reads it.
type column struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // time (Unix seconds), number or string
}

// queryRows runs sql and returns its columns and rows, numbers as float64
// (as Grafana reads them), times as Unix seconds.
func queryRows(t *testing.T, conn driver.Conn, sql string) ([]column, [][]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("query fails: %v\n%s", err, sql)
	}
	defer rs.Close()
	var cols []column
	for _, c := range rs.ColumnTypes() {
		kind := "number"
		switch c.ScanType() {
		case reflect.TypeFor[string]():
			kind = "string"
		case reflect.TypeFor[time.Time]():
			kind = "time"
		}
		cols = append(cols, column{Name: c.Name(), Kind: kind})
	}
	var out [][]any
	for rs.Next() {
		ptrs := make([]any, len(cols))
		for i, c := range rs.ColumnTypes() {
			ptrs[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("scan: %v\n%s", err, sql)
		}
		row := make([]any, len(cols))
		for i := range ptrs {
			v := reflect.ValueOf(ptrs[i]).Elem()
			switch x := v.Interface().(type) {
			case string:
				row[i] = x
			case time.Time:
				row[i] = x.Unix()
			default:
				switch {
				case v.CanInt():
					row[i] = float64(v.Int())
				case v.CanUint():
					row[i] = float64(v.Uint())
				case v.CanFloat():
					row[i] = v.Float()
				default:
					t.Fatalf("column %s: unexpected type %T", cols[i].Name, x)
				}
			}
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("query fails: %v\n%s", err, sql)
	}
	return cols, out
}
