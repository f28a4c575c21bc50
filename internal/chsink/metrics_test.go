package chsink

import (
	"slices"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/projection"
)

// TestEveryMetricHasAnExpression: the time-series metrics the read side
// offers (projection.Metrics) are exactly those this view computes.
func TestEveryMetricHasAnExpression(t *testing.T) {
	for _, name := range projection.Metrics() {
		if _, ok := metrics[name]; !ok {
			t.Errorf("metric %q has no expression here", name)
		}
	}
	for name := range metrics {
		if !slices.Contains(projection.Metrics(), name) {
			t.Errorf("metric %q is computed here but not offered by projection.Metrics", name)
		}
	}
}
