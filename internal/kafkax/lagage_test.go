package kafkax

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLagAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	a := NewLagAge("x_lag_seconds", "help", prometheus.Labels{"sink": "s"})
	a.now = func() time.Time { return now }
	want := func(text string) {
		t.Helper()
		if err := testutil.CollectAndCompare(a, strings.NewReader("# HELP x_lag_seconds help\n# TYPE x_lag_seconds gauge\n"+text)); err != nil {
			t.Fatal(err)
		}
	}
	a.Waiting("t", 0, t0)
	a.Waiting("t", 0, t0.Add(3*time.Second)) // younger: the oldest stays
	a.Waiting("t", 1, t0.Add(2*time.Second))
	now = t0.Add(5 * time.Second)
	want("x_lag_seconds{partition=\"0\",sink=\"s\",topic=\"t\"} 5\nx_lag_seconds{partition=\"1\",sink=\"s\",topic=\"t\"} 3\n")
	now = t0.Add(9 * time.Second) // nothing applied: it grows
	a.Done("t", 1)
	want("x_lag_seconds{partition=\"0\",sink=\"s\",topic=\"t\"} 9\nx_lag_seconds{partition=\"1\",sink=\"s\",topic=\"t\"} 0\n")
	a.Drop("t", 0)
	a.Waiting("t", 1, t0.Add(8*time.Second))
	want("x_lag_seconds{partition=\"1\",sink=\"s\",topic=\"t\"} 1\n")
}
