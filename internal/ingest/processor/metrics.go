package processor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// outcome is what became of a command record.
type outcome uint8

const (
	outcomeAccepted outcome = iota
	outcomeRejected
	outcomeDuplicate
	outcomeDLQ
	outcomeReused
	numOutcomes
)

// outcomeLabels are the "outcome" label values of commands_total.
var outcomeLabels = [numOutcomes]string{"accepted", "rejected", "duplicate", "dlq", "reused"}

type metrics struct {
	commands     *prometheus.CounterVec // outcome
	transactions *prometheus.CounterVec // result: committed, aborted, failed
	batch        prometheus.Histogram   // seconds per transaction
	restore      prometheus.Histogram   // seconds per partition restore
	partitions   prometheus.Gauge       // owned partitions
	restarts     prometheus.Counter     // sessions replaced after a failure
	lag          *prometheus.GaugeVec   // records behind, per partition
	age          *kafkax.LagAge         // the lag in seconds
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "commands_total",
			Help: "Command records processed, by outcome (accepted, rejected, duplicate, dlq, reused: refused as idempotency_key_reused); counted when their transaction commits.",
		}, []string{"outcome"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "transactions_total",
			Help: "Batch transactions by result: committed, aborted, or failed (End returned an error; outcome unknown).",
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "batch_duration_seconds",
			Help:    "Time from the first record of a batch to the end of its transaction.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "restore_duration_seconds",
			Help:    "Time to restore the state of one set of assigned partitions from snapshots and results.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "owned_partitions",
			Help: "Command partitions this processor owns and has restored.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ledger", Subsystem: "processor", Name: "session_restarts_total",
			Help: "Group transact sessions that failed and were replaced by a new one (new clients, state restored from Kafka).",
		}),
	}
	m.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ledger", Subsystem: "processor", Name: "lag",
		Help: "Command records between the last one processed and the high watermark of the last fetch, per partition.",
	}, []string{"topic", "partition"})
	m.age = kafkax.NewLagAge("ledger_processor_lag_seconds",
		"Age (from its record timestamp) of the oldest polled command record whose transaction has not committed yet, per partition: the consumer lag in time; 0 when none waits.",
		nil)
	for _, o := range outcomeLabels {
		m.commands.WithLabelValues(o)
	}
	for _, r := range []string{"committed", "aborted", "failed"} {
		m.transactions.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.commands, m.transactions, m.batch, m.restore, m.partitions, m.restarts, m.lag, m.age} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
