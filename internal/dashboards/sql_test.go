package dashboards

import (
	"strings"
	"testing"
	"time"
)

func TestSQLPanelsAndRender(t *testing.T) {
	ps, err := SQLPanels("../../deploy/grafana/dashboards/ledger-analytics.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 7 {
		t.Fatalf("%d SQL panels, want the analytics dashboard's 7 or more", len(ps))
	}
	from := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for _, p := range ps {
		sql, err := RenderSQL(p.SQL, "EUR", from, from.Add(time.Hour), "test_db")
		if err != nil {
			t.Errorf("panel %d %q: %v", p.ID, p.Title, err)
			continue
		}
		if strings.Contains(sql, "ledger.") || !strings.Contains(sql, "test_db.") {
			t.Errorf("panel %d: database not substituted:\n%s", p.ID, sql)
		}
		if strings.Contains(p.SQL, "$__timeFilter") && !strings.Contains(sql, "toDateTime(1767322800)") {
			t.Errorf("panel %d: time filter not substituted:\n%s", p.ID, sql)
		}
	}
	if _, err := RenderSQL("SELECT 1 FROM ledger.ledger_events WHERE x = $__interval", "EUR", from, from, "db"); err == nil {
		t.Error("an unknown macro was left in the SQL without an error")
	}
}
