package breaker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus collectors of one Publisher. The state and
// spool gauges are read at scrape time, so they are never stale.
type metrics struct {
	state       prometheus.GaugeFunc
	transitions *prometheus.CounterVec
	spoolEvents prometheus.GaugeFunc
	spoolBytes  prometheus.GaugeFunc
	spooled     prometheus.Counter
	dropped     *prometheus.CounterVec
	discarded   *prometheus.CounterVec
	failures    *prometheus.CounterVec
	latency     prometheus.Histogram
}

// newMetrics builds the collectors; state and depth are called at scrape
// time for the gauges.
func newMetrics(name string, state func() float64, depth func() (int, int64)) *metrics {
	labels := prometheus.Labels{"publisher": name}
	return &metrics{
		state: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jetmon_breaker_state", ConstLabels: labels,
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, state),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_breaker_transitions_total", ConstLabels: labels,
			Help: "Circuit breaker state changes.",
		}, []string{"from", "to"}),
		spoolEvents: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jetmon_spool_events", ConstLabels: labels,
			Help: "Events waiting in the spool.",
		}, func() float64 { n, _ := depth(); return float64(n) }),
		spoolBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "jetmon_spool_bytes", ConstLabels: labels,
			Help: "Bytes waiting in the spool.",
		}, func() float64 { _, b := depth(); return float64(b) }),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_spooled_events_total", ConstLabels: labels,
			Help: "Events put in the spool instead of being published at once.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_dropped_events_total", ConstLabels: labels,
			Help: "Events dropped because the spool was full, by event type.",
		}, []string{"event_type"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_discarded_events_total", ConstLabels: labels,
			Help: "Events discarded for good, never spooled or retried, by reason: invalid, too_large, unsupported, retries_exhausted (failed asynchronously too often), corrupt (undecodable in the spool).",
		}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_publish_failures_total", ConstLabels: labels,
			Help: "Failed publish attempts by kind (transient, permanent, async).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jetmon_publish_duration_seconds", ConstLabels: labels,
			Help:    "Time Publish took as the caller saw it (sampled).",
			Buckets: []float64{1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5},
			// Native histogram too, for scrapers that ask for it.
			NativeHistogramBucketFactor: 1.1,
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.state, m.transitions, m.spoolEvents, m.spoolBytes, m.spooled, m.dropped, m.discarded, m.failures, m.latency}
}
