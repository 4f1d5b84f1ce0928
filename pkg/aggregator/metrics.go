package aggregator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	perSeries *prometheus.CounterVec
	durations prometheus.Histogram
	lag       prometheus.Gauge
	events    *prometheus.CounterVec
	bad       *prometheus.CounterVec
	emitted   prometheus.Counter
	open      prometheus.Gauge
	series    prometheus.Gauge
	pending   prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		perSeries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_series_events_total",
			Help: "Events aggregated per series; bounded by the per-source series limit (overflow series).",
		}, []string{"type", "source", "name"}),
		durations: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jetmon_aggregator_duration_seconds", Help: "Durations of the aggregated operation and phase events.",
			NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160,
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmon_aggregator_consumer_lag", Help: "Messages waiting for the aggregator's consumer (sampled every few seconds).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_events_total", Help: "Input events by outcome: added, late, not_aggregated.",
		}, []string{"outcome"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_bad_input_total", Help: "Input that could not be aggregated, by reason; each is dead-lettered.",
		}, []string{"reason"}),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_windows_emitted_total", Help: "Aggregated windows published.",
		}),
		open:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmon_aggregator_open_windows", Help: "Windows still open."}),
		series:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmon_aggregator_series", Help: "Live series."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jetmon_aggregator_pending_messages", Help: "Input messages held unacknowledged until their windows are published."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.perSeries, m.durations, m.lag, m.events, m.bad, m.emitted, m.open, m.series, m.pending}
}
