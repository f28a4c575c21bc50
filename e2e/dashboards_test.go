package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/dashboards"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestDashboardMetrics checks that every metric the pipeline dashboard and
// the Prometheus rules name (deploy/grafana/dashboards/*.json on the
// Prometheus datasource, deploy/prometheus/rules.yml) is exported by the
// binaries: it starts ingest, projector and queryapi, makes them do what
// creates their labelled series (a command, a malformed event, a refused
// and an answered query), and scrapes their admin listeners' /metrics.
func TestDashboardMetrics(t *testing.T) {
	dash, err := filepath.Glob("../deploy/grafana/dashboards/pipeline-health.json")
	if err != nil || len(dash) != 1 {
		t.Fatalf("pipeline dashboard: %v %v", dash, err)
	}
	exprs, err := dashboards.PrometheusExprs(dash, []string{"../deploy/prometheus/rules.yml"})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, 2)
	ingest, projector, query := s.pipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A command through the gateway and the processor.
	if code, body := post(t, ingest.addr, "/v1/commands?wait=20s",
		cmd{"type": "OpenAccount", "command_id": "dash-1", "account_id": "dash-a", "owner": "Ada", "currency": "EUR"}); code != 200 {
		t.Fatalf("open: %d %v", code, body)
	}
	// A record no sink can decode: the projectors skip it (skipped_total).
	if err := s.client.ProduceSync(ctx, &kgo.Record{Topic: s.names.Events, Key: []byte("dash-x/1"), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A query answered and one refused (no token).
	deadline := time.Now().Add(45 * time.Second)
	for {
		resp, err := apiGet("http://" + query.addr + "/v1/accounts/dash-a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account not visible through the query API: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := testenv.Get(query.addr, "/v1/accounts/dash-a"); code != http.StatusUnauthorized {
		t.Fatalf("query without a token: %d, want 401", code)
	}

	// The series each binary exports, by sample name (histograms as
	// _bucket, _sum and _count).
	exported := map[string][]string{} // name → binaries
	scrape := func() {
		clear(exported)
		for _, p := range []*proc{ingest, projector, query} {
			code, body := testenv.Get(p.admin, "/metrics")
			if code != http.StatusOK {
				t.Fatalf("%s /metrics: %d", p.name, code)
			}
			for _, line := range strings.Split(body, "\n") {
				if line == "" || line[0] == '#' {
					continue
				}
				name := line[:strings.IndexAny(line, "{ ")]
				if l := exported[name]; len(l) == 0 || l[len(l)-1] != p.name {
					exported[name] = append(exported[name], p.name)
				}
			}
		}
	}
	// Series appear once their binary has done what they count: scrape
	// until every named metric is there or the deadline passes.
	missing := func() bool {
		for _, e := range exprs {
			names, _ := dashboards.MetricNames(e.Expr)
			for _, n := range names {
				if !dashboards.Synthetic[n] && len(exported[n]) == 0 {
					return true
				}
			}
		}
		return false
	}
	for scrape(); missing() && time.Now().Before(deadline); scrape() {
		time.Sleep(200 * time.Millisecond)
	}

	used := map[string]bool{}
	for _, e := range exprs {
		names, err := dashboards.MetricNames(e.Expr)
		if err != nil {
			t.Errorf("%s: %v", e.Where, err)
			continue
		}
		for _, n := range names {
			used[n] = true
			if dashboards.Synthetic[n] {
				continue
			}
			if len(exported[n]) == 0 {
				t.Errorf("%s: %s is not exported by ingest, projector or queryapi\n  expr: %s", e.Where, n, e.Expr)
			}
		}
	}
	var names []string
	for n := range used {
		names = append(names, n+" ("+strings.Join(exported[n], ", ")+")")
	}
	sort.Strings(names)
	t.Logf("%d expressions name %d metrics: %s", len(exprs), len(used), strings.Join(names, "; "))
}
