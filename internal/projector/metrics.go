package projector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

type metrics struct {
	events, outcomes, batches, applyErrors, retries, commitErrors prometheus.Counter
	skipped                                                       *prometheus.CounterVec
	lag                                                           *prometheus.GaugeVec
	age                                                           *kafkax.LagAge
}

// newMetrics creates the projector's metrics, labelled with the sink name so
// several projectors can share one registry, and registers them on reg when
// it is not nil.
func newMetrics(reg prometheus.Registerer, sink string) (*metrics, error) {
	labels := prometheus.Labels{"sink": sink}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &metrics{
		events:       counter("ledger_projector_events_applied_total", "Events in batches the sink applied (redeliveries included)."),
		outcomes:     counter("ledger_projector_outcomes_applied_total", "Command outcomes in batches the result sink applied."),
		batches:      counter("ledger_projector_batches_total", "Batches applied and committed."),
		applyErrors:  counter("ledger_projector_apply_errors_total", "Failed applies of a batch."),
		retries:      counter("ledger_projector_retries_total", "Retries of a failed batch."),
		commitErrors: counter("ledger_projector_commit_errors_total", "Offset commits that failed after a successful apply (the batch is delivered again)."),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ledger_projector_skipped_total",
			Help: "Records skipped: tombstone, malformed, unknown_schema, unknown_type.", ConstLabels: labels}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ledger_projector_lag",
			Help: "Records between the committed offset and the high watermark of the last fetch, per partition.", ConstLabels: labels},
			[]string{"topic", "partition"}),
		age: kafkax.NewLagAge("ledger_projector_lag_seconds",
			"Age (from its record timestamp) of the oldest fetched record the sink has not applied yet, per partition: the consumer lag in time; 0 when none waits. It grows while the sink fails.",
			labels),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.outcomes, m.batches, m.applyErrors, m.retries, m.commitErrors, m.skipped, m.lag, m.age} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("projector metrics: %w", err)
			}
		}
	}
	return m, nil
}
