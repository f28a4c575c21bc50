package dashboards_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/dashboards"
)

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum by (outcome) (rate(ledger_processor_commands_total[$__rate_interval]))`, []string{"ledger_processor_commands_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(ledger_query_request_seconds_bucket{route!~"x(y)"}[5m])))`, []string{"ledger_query_request_seconds_bucket"}},
		{`sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) > 1e3`, []string{"a_count", "a_sum"}},
		{`max by (sink) (ledger_projector_lag_seconds) > 60`, []string{"ledger_projector_lag_seconds"}},
		{`up{job=~"ledger-.*"} == 0 and on (job) b offset 5m`, []string{"b", "up"}},
		{`x unless ignoring(instance) y`, []string{"x", "y"}},
	} {
		got, err := dashboards.MetricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("MetricNames(%q) = %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`rat(x[1m])`, `sum by (x) ()`} {
		if got, err := dashboards.MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%q) = %v, want an error", bad, got)
		}
	}
}

// TestPrometheusExprsParse reads every PromQL expression of the pipeline
// dashboard and the rules; that each names metrics the binaries export is
// checked by e2e TestDashboardMetrics against their /metrics.
func TestPrometheusExprsParse(t *testing.T) {
	exprs, err := dashboards.PrometheusExprs([]string{dashboardsDir + "pipeline-health.json"}, []string{"../../deploy/prometheus/rules.yml"})
	if err != nil {
		t.Fatal(err)
	}
	var rules int
	for _, e := range exprs {
		if strings.HasPrefix(e.Where, "rules.yml") {
			rules++
		}
		if _, err := dashboards.MetricNames(e.Expr); err != nil {
			t.Errorf("%s: %v", e.Where, err)
		}
	}
	if len(exprs) < 10 || rules < 3 {
		t.Fatalf("%d expressions, %d of them rules: the files did not parse as expected", len(exprs), rules)
	}
}
