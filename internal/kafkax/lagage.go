package kafkax

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LagAge is a consumer's lag in time, as a Prometheus gauge per topic and
// partition computed when scraped, so that it grows while nothing is
// applied: the age (from its record timestamp) of the oldest record the
// consumer fetched and has not finished with yet; 0 when none waits.
// Records not fetched yet do not count: the lag in records shows those.
type LagAge struct {
	desc   *prometheus.Desc
	now    func() time.Time
	mu     sync.Mutex
	oldest map[lagKey]time.Time
}

type lagKey struct {
	topic     string
	partition int32
}

// NewLagAge is the gauge name with help and constant labels.
func NewLagAge(name, help string, labels prometheus.Labels) *LagAge {
	return &LagAge{desc: prometheus.NewDesc(name, help, []string{"topic", "partition"}, labels),
		now: time.Now, oldest: map[lagKey]time.Time{}}
}

// Waiting records that a record of the partition stamped at waits, unless
// an older one already does.
func (a *LagAge) Waiting(topic string, partition int32, at time.Time) {
	k := lagKey{topic, partition}
	a.mu.Lock()
	if a.oldest[k].IsZero() {
		a.oldest[k] = at
	}
	a.mu.Unlock()
}

// Done records that nothing fetched of the partition waits any more.
func (a *LagAge) Done(topic string, partition int32) {
	k := lagKey{topic, partition}
	a.mu.Lock()
	if _, ok := a.oldest[k]; ok {
		a.oldest[k] = time.Time{}
	}
	a.mu.Unlock()
}

// Drop forgets the partition (it was revoked).
func (a *LagAge) Drop(topic string, partition int32) {
	a.mu.Lock()
	delete(a.oldest, lagKey{topic, partition})
	a.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (a *LagAge) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector.
func (a *LagAge) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, at := range a.oldest {
		v := 0.0
		if !at.IsZero() {
			v = max(now.Sub(at).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, v, k.topic, strconv.Itoa(int(k.partition)))
	}
}
