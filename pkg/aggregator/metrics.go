package aggregator

import (
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/pkg/windowing"
)

// Label values are capped so that no input makes /metrics large: at most
// maxLabelBytes bytes each, and the overflow counter names at most
// maxOverflowSources sources (then otherSource).
const (
	maxLabelBytes      = 128
	maxOverflowSources = 100
	otherSource        = "__other__"
)

type metrics struct {
	perSeries   *prometheus.CounterVec
	durations   prometheus.Histogram
	events      *prometheus.CounterVec
	bad         *prometheus.CounterVec
	emitted     prometheus.Counter
	overflow    *prometheus.CounterVec
	deadWindows *prometheus.CounterVec
	recreated   prometheus.Counter
	copies      *prometheus.CounterVec
	// deduplicated counts windows the stream already held.
	deduplicated prometheus.Counter
	leasesLost   prometheus.Counter
	pullsRenewed prometheus.Counter
	handoffs     *prometheus.CounterVec
	gauges       []prometheus.Collector
}

func newMetrics(s *Service) *metrics {
	m := &metrics{
		perSeries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_series_events_total",
			Help: "Events aggregated per live series (labels capped at 128 bytes); a series forgotten after the series TTL is deleted.",
		}, []string{"type", "source", "name"}),
		durations: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jetmon_aggregator_duration_seconds", Help: "Durations of the aggregated operation and phase events.",
			NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160,
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_events_total", Help: "Input events by outcome: added, late (sent in an amendment window), duplicate, not_aggregated.",
		}, []string{"outcome"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_bad_input_total", Help: "Input that could not be aggregated, by reason; each is dead-lettered.",
		}, []string{"reason"}),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_windows_emitted_total", Help: "Aggregated windows closed (published, or dead-lettered when refused for good).",
		}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_overflow_events_total",
			Help: "Events aggregated into an overflow series, by scope (source: the source's series limit; global: the instance's) and source (the first 100 sources, then __other__).",
		}, []string{"scope", "source"}),
		deadWindows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_windows_dead_lettered_total", Help: "Windows the server refused for good, dead-lettered, by reason.",
		}, []string{"reason"}),
		recreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_consumers_recreated_total", Help: "Consumers (and their streams) re-created after the server lost them.",
		}),
		deduplicated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_windows_deduplicated_total",
			Help: "Windows the stream already held under their id (a window recomputed after a crash or a takeover), dropped by the server's deduplication.",
		}),
		leasesLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_leases_lost_total",
			Help: "Partitions let go without emitting because their lease was lost: another instance wrote it, or no renewal reached the server within the member TTL.",
		}),
		pullsRenewed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetmon_aggregator_pulls_renewed_total",
			Help: "Pulls started afresh because messages waited on the server while none arrived for 10 s (a pull request the server lost).",
		}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_handoffs_total",
			Help: "Partitions let go with a handoff, by outcome: emitted (open windows stored, input acknowledged), unrecorded (the handoff record could not be written: nothing emitted, input handed back), partly_emitted (the input of the windows stored acknowledged, the rest handed back).",
		}, []string{"outcome"}),
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetmon_aggregator_history_copies_total",
			Help: "Copies of stored windows for the history (WINDOWS stream), by outcome: stored, dropped (queue full, refused for good, or still queued at shutdown).",
		}, []string{"outcome"}),
	}
	sum := func(f func(p *partition) float64) func() float64 {
		return func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			var n float64
			for _, p := range s.parts {
				n += f(p)
			}
			return n
		}
	}
	m.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_series", Help: "Live series."},
			sum(func(p *partition) float64 { return float64(p.agg.Stats().Series) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_open_windows", Help: "Windows still open."},
			sum(func(p *partition) float64 { return float64(p.agg.Stats().OpenWindows) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_pending_messages", Help: "Input messages held unacknowledged until their windows are published."},
			sum(func(p *partition) float64 { return float64(len(p.inFlight)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_consumer_lag", Help: "Messages waiting for the aggregator's consumers (sampled every second)."},
			sum(func(p *partition) float64 { return float64(p.backlog) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_leases_in_doubt", Help: "Partitions whose lease no renewal has confirmed lately: their windows stay open, nothing is emitted, until it is renewed or lost."},
			sum(func(p *partition) float64 {
				if now := time.Now(); !p.lease.valid(now) && !p.lease.gone(now) {
					return 1
				}
				return 0
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_aggregator_ready", Help: "1 while every consumer exists and makes progress (see /readyz)."},
			func() float64 {
				if s.Ready() {
					return 1
				}
				return 0
			}),
	}
	return m
}

// series returns the per-series counter of s.
func (m *metrics) series(s windowing.Series) prometheus.Counter {
	return m.perSeries.WithLabelValues(string(s.Type), capLabel(s.Source), capLabel(s.Name))
}

// forgetSeries deletes the per-series counter of a series the aggregator
// forgot.
func (m *metrics) forgetSeries(s windowing.Series) {
	m.perSeries.DeleteLabelValues(string(s.Type), capLabel(s.Source), capLabel(s.Name))
}

func (m *metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.perSeries, m.durations, m.events, m.bad, m.emitted, m.overflow, m.deadWindows, m.recreated, m.copies, m.deduplicated, m.leasesLost, m.pullsRenewed, m.handoffs}, m.gauges...)
}

// capLabel cuts v to at most maxLabelBytes bytes, at a rune boundary.
func capLabel(v string) string {
	if len(v) <= maxLabelBytes {
		return v
	}
	cut := maxLabelBytes
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut]
}
