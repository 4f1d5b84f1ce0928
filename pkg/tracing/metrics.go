package tracing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/pkg/trace"
)

type metrics struct {
	ignored, stored, merged, evicted, storeErrors prometheus.Counter
	duration                                      *prometheus.HistogramVec
	// services holds the label values given so far (owned by Run's
	// goroutine); past maxServiceLabels a new service counts as "other".
	services map[string]struct{}
}

const maxServiceLabels = 100

// newMetrics registers the runtime's metrics on reg (none when nil). The
// duration histogram carries the trace id of a slow trace as an exemplar
// (shown on /metrics in the OpenMetrics format).
func newMetrics(reg prometheus.Registerer, s *Service) metrics {
	m := metrics{
		ignored:     prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_traces_ignored_events_total", Help: "Events of no trace (or of a type traces leave out)."}),
		stored:      prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_traces_stored_total", Help: "Traces stored (a late part stores its trace again)."}),
		merged:      prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_traces_late_merged_total", Help: "Late parts merged into a stored trace."}),
		evicted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_traces_evicted_total", Help: "Traces finished early because MaxOpen traces were open."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "jetmon_traces_store_errors_total", Help: "Failures to read or store a trace."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jetmon_trace_duration_seconds", Help: "Duration of assembled traces by root service, with trace id exemplars.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"service"}),
		services: map[string]struct{}{},
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.ignored, m.stored, m.merged, m.evicted, m.storeErrors, m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_traces_open", Help: "Traces held open by the assembler."},
			func() float64 { return float64(s.Stats().Open) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jetmon_traces_open_spans", Help: "Spans of the open traces."},
			func() float64 { return float64(s.Stats().Spans) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jetmon_traces_dropped_spans_total", Help: "Spans refused by MaxSpans per trace."},
			func() float64 { return float64(s.Stats().DroppedSpans) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jetmon_traces_spans_total", Help: "Spans taken by the assembler."},
			func() float64 { return float64(s.Stats().Added) }),
	)
	return m
}

func (m metrics) observe(t *trace.Tree) {
	if len(t.Roots) == 0 {
		return
	}
	svc := t.Nodes[t.Roots[0]].Service
	if _, ok := m.services[svc]; !ok {
		if len(m.services) >= maxServiceLabels {
			svc = "other"
		} else {
			m.services[svc] = struct{}{}
		}
	}
	if o, ok := m.duration.WithLabelValues(svc).(prometheus.ExemplarObserver); ok {
		o.ObserveWithExemplar(t.DurationMS()/1e3, prometheus.Labels{"trace_id": t.ID.String()})
	}
}
