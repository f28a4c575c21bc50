package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	commands *prometheus.CounterVec // by type and outcome: produced, invalid, produce_failed
	results  *prometheus.CounterVec // command results read, by outcome: ok, undecodable
	produce  prometheus.Histogram   // time to produce one request's records
}

func newMetrics(reg prometheus.Registerer, ws *waiters) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_gateway_commands_total",
			Help: "Commands received by the HTTP gateway, by type and outcome (produced, invalid, produce_failed).",
		}, []string{"type", "outcome"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_gateway_results_total",
			Help: "Command results read by the gateway's results follower, by outcome (ok, undecodable).",
		}, []string{"outcome"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ledger_gateway_produce_seconds",
			Help:    "Time for Kafka to acknowledge the records of one request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg == nil {
		return m, nil
	}
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ledger_gateway_waiting_requests",
		Help: "Requests waiting for a command result (?wait=).",
	}, func() float64 { return float64(ws.count()) })
	var errs []error
	for _, c := range []prometheus.Collector{m.commands, m.results, m.produce, waiting} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
