package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SQLPanel is one panel of a dashboard on the ClickHouse datasource: its
// single target's raw SQL, with Grafana's macros and variables unexpanded.
type SQLPanel struct {
	ID    int
	Title string // may name ${currency}
	Type  string // timeseries, table, barchart, …
	SQL   string
}

// SQLPanels reads the panels of the dashboard at path (rows flattened) that
// have a target with rawSql, in the dashboard's order.
func SQLPanels(path string) ([]SQLPanel, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type panel struct {
		ID      int     `json:"id"`
		Title   string  `json:"title"`
		Type    string  `json:"type"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []SQLPanel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.RawSQL != "" {
					out = append(out, SQLPanel{ID: p.ID, Title: p.Title, Type: p.Type, SQL: t.RawSQL})
					break
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out, nil
}

var (
	timeFilter = regexp.MustCompile(`\$__timeFilter\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)`)
	ledgerDB   = regexp.MustCompile(`\bledger\.(ledger_events|account_balances|volume_hourly)\b`)
	anyMacro   = regexp.MustCompile(`\$\{?[A-Za-z_]`)
)

// RenderSQL substitutes what Grafana and its ClickHouse plugin substitute
// in a panel's SQL: the currency variable, the time macros ($__timeFilter,
// $__fromTime, $__toTime) for from..to, and the database (the dashboards
// name ledger.<table>; db replaces "ledger"). A macro or variable it does
// not know is an error, never left for ClickHouse to choke on.
func RenderSQL(sql, currency string, from, to time.Time, db string) (string, error) {
	f, u := strconv.FormatInt(from.Unix(), 10), strconv.FormatInt(to.Unix(), 10)
	sql = timeFilter.ReplaceAllString(sql, "$1 >= toDateTime("+f+") AND $1 <= toDateTime("+u+")")
	sql = strings.NewReplacer("${currency}", currency, "$currency", currency,
		"$__fromTime", "toDateTime("+f+")", "$__toTime", "toDateTime("+u+")").Replace(sql)
	sql = ledgerDB.ReplaceAllString(sql, db+".$1")
	if m := anyMacro.FindString(sql); m != "" {
		return "", fmt.Errorf("unsubstituted macro or variable %q in:\n%s", m, sql)
	}
	return sql, nil
}
