package alerting

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	input         prometheus.Counter
	transitions   *prometheus.CounterVec
	alerts        *prometheus.GaugeVec
	series        prometheus.Gauge
	notifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	publishErrors prometheus.Counter
	reloads       *prometheus.CounterVec
	configOK      prometheus.Gauge
	rateLimited   *prometheus.CounterVec
	patternKeys   prometheus.Gauge
	evictions     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		input: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_input_events_total", Help: "Events evaluated against the rules.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_transitions_total", Help: "Alert state transitions by new state.",
		}, []string{"to"}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetmon_alertmanager_alerts", Help: "Alerts by state.",
		}, []string{"state"}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmon_alertmanager_series",
			Help: "Series of rate and anomaly rules whose state (counts, learned baseline) is held in memory.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_notifications_total",
			Help: "Notification attempts by receiver, integration and result: sent, failed, skipped (already sent or nothing new), busy (a peer instance is sending), error.",
		}, []string{"receiver", "integration", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jetmon_alertmanager_notification_duration_seconds", Help: "Time to deliver a notification, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"integration"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_publish_errors_total", Help: "Lifecycle events or alert records that could not be published.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_reloads_total", Help: "Rules reloads by result.",
		}, []string{"result"}),
		configOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmon_alertmanager_config_last_reload_successful", Help: "Whether the last rules reload succeeded.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_rate_limited_total", Help: "Notification attempts answered with a rate limit (HTTP 429 or 503 with Retry-After), by receiver and integration.",
		}, []string{"receiver", "integration"}),
		patternKeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetmon_alertmanager_pattern_keys", Help: "Open keys of pattern rules (absence and sequence) held in memory.",
		}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_alertmanager_pattern_evictions_total", Help: "Open keys of pattern rules dropped because the rule's max_keys was reached, by rule.",
		}, []string{"rule"}),
	}
	m.configOK.Set(1)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.input, m.transitions, m.alerts, m.series, m.notifications, m.latency, m.publishErrors, m.reloads, m.configOK, m.rateLimited, m.patternKeys, m.evictions}
}
