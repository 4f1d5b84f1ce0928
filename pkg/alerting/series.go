package alerting

import (
	"math"
	"path"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// sample is what one event contributes to one rule: the series it belongs
// to and the value observed for it.
type sample struct {
	series seriesID
	value  float64
	at     time.Time // event time
}

// seriesID names a series by its labels' values; comparable, so that the
// engine finds a known series without building its labels.
type seriesID struct {
	source, operation, metric, component, eventType string
	// patternKey is a pattern rule's key value (not a series label).
	patternKey string
}

// labels returns the series labels (no alertname, no rule labels).
func (id seriesID) labels() Labels {
	l := Labels{"source": id.source}
	for k, v := range map[string]string{"operation": id.operation, "metric": id.metric, "component": id.component, "event_type": id.eventType} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// sampleOf returns the sample ev contributes to r, if any.
func (r *Rule) sampleOf(ev events.Event) (sample, bool) {
	m := r.Match
	switch r.Kind {
	case KindThreshold, KindAnomaly, KindPredict:
		// An amendment holds only the few events that came after their
		// window: a sample of its own would mislead every rule on the
		// series (the history API merges it into its window instead).
		a, ok := ev.(*events.AggregateEvent)
		if !ok || a.Amendment || !events.Match(m.Type, a.AggregatedType) || !glob(m.Source, a.Source) ||
			!glob(m.Operation, a.Operation) || !glob(m.Metric, a.Metric) {
			return sample{}, false
		}
		return sample{series: seriesID{source: a.Source, operation: a.Operation, metric: a.Metric}, value: fieldOf(a, r.Field), at: a.WindowEnd}, true
	case KindHealth:
		h, ok := ev.(*events.HealthEvent)
		if !ok || !events.Match(m.Type, h.Type) || h.Component == "" || !glob(m.Source, h.Source) || !glob(m.Component, h.Component) {
			return sample{}, false
		}
		return sample{series: seriesID{source: h.Source, component: h.Component}, value: severity(h.Status), at: h.Timestamp}, true
	case KindRate:
		md := ev.Metadata()
		if !events.Match(m.Type, md.Type) || !glob(m.Source, md.Source) {
			return sample{}, false
		}
		c := componentOf(ev)
		if !glob(m.Component, c) {
			return sample{}, false
		}
		return sample{series: seriesID{source: md.Source, eventType: string(md.Type), component: c}, value: 1, at: md.Timestamp}, true
	}
	return sample{}, false
}

func componentOf(ev events.Event) string {
	switch e := ev.(type) {
	case *events.HealthEvent:
		return e.Component
	case *events.SystemEvent:
		return e.Component
	}
	return ""
}

// severity orders health statuses: healthy 0, degraded 1, failed 2.
func severity(status string) float64 {
	switch status {
	case events.StatusDegraded:
		return 1
	case events.StatusFailed:
		return 2
	}
	return 0
}

// FieldOf returns the named value of an aggregated window (see
// [Rule].Field), NaN for an unknown name.
func FieldOf(a *events.AggregateEvent, field string) float64 { return fieldOf(a, field) }

// fieldOf returns the named value of an aggregated window.
func fieldOf(a *events.AggregateEvent, field string) float64 {
	switch field {
	case "count":
		return float64(a.Count)
	case "error_count":
		return float64(a.ErrorCount)
	case "error_rate":
		if a.Count == 0 {
			return 0
		}
		return float64(a.ErrorCount) / float64(a.Count)
	case "late_count":
		return float64(a.LateCount)
	case "rate":
		if d := a.WindowEnd.Sub(a.WindowStart).Seconds(); d > 0 {
			return float64(a.Count) / d
		}
		return 0
	case "sum":
		return a.Sum
	case "avg":
		return a.Avg
	case "min":
		return a.Min
	case "max":
		return a.Max
	case "p50":
		return a.P50
	case "p90":
		return a.P90
	case "p95":
		return a.P95
	case "p99":
		return a.P99
	}
	return math.NaN()
}

// compare applies op: value op threshold.
func compare(op string, value, threshold float64) bool {
	switch op {
	case ">=":
		return value >= threshold
	case "<":
		return value < threshold
	case "<=":
		return value <= threshold
	}
	return value > threshold
}

// recovered reports whether value is back across the recovery threshold of
// a condition "value op threshold".
func recovered(op string, value, recover float64) bool {
	if op[0] == '>' {
		return value <= recover
	}
	return value >= recover
}

// rateCounter counts events of one series in ten buckets spanning the
// rule's sliding window.
type rateCounter struct {
	width  time.Duration
	start  []time.Time // bucket start, zero when empty
	counts []float64
}

const rateBuckets = 10

func newRateCounter(window time.Duration) *rateCounter {
	w := max(window/rateBuckets, time.Nanosecond)
	return &rateCounter{width: w, start: make([]time.Time, rateBuckets), counts: make([]float64, rateBuckets)}
}

func (c *rateCounter) add(at time.Time, v float64) {
	b := at.Truncate(c.width)
	i := int(b.UnixNano()/int64(c.width)) % rateBuckets
	if !c.start[i].Equal(b) {
		if c.start[i].After(b) {
			return // older than the window
		}
		c.start[i], c.counts[i] = b, 0
	}
	c.counts[i] += v
}

// nextExpiry returns when the oldest bucket still counted at now leaves
// the window, or the zero time.
func (c *rateCounter) nextExpiry(now time.Time) time.Time {
	var next time.Time
	for i, st := range c.start {
		end := st.Add(c.width * (rateBuckets + 1))
		if !st.IsZero() && c.counts[i] != 0 && end.After(now) && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	return next
}

// sum returns the count of events in (now-window, now].
func (c *rateCounter) sum(now time.Time) float64 {
	from := now.Add(-c.width * rateBuckets)
	var s float64
	for i, st := range c.start {
		if !st.IsZero() && st.Add(c.width).After(from) && !st.After(now) {
			s += c.counts[i]
		}
	}
	return s
}

// detector learns the normal range of one series.
type detector struct {
	cfg        *AnomalyConfig
	values     []float64 // mad: ring of the last History values
	next       int
	n          int
	mean, vari float64 // ewma
}

func newDetector(cfg *AnomalyConfig) *detector { return &detector{cfg: cfg} }

// Baseline is what a detector has learned about a series.
type Baseline struct {
	Samples int     `json:"samples"`
	Center  float64 `json:"center"`
	Scale   float64 `json:"scale"`
	Lower   float64 `json:"lower"`
	Upper   float64 `json:"upper"`
	// Ready is false during warm-up (fewer than min_samples values).
	Ready bool `json:"ready"`
}

func (d *detector) baseline() Baseline {
	var center, scale float64
	if d.cfg.Method == "ewma" {
		center, scale = d.mean, math.Sqrt(d.vari)
	} else {
		center, scale = medianMAD(d.values)
	}
	dev := d.cfg.K * scale
	minDev := d.cfg.MinDeviation
	if minDev == 0 {
		minDev = 0.01 * math.Abs(center)
	}
	dev = max(dev, minDev)
	return Baseline{Samples: d.n, Center: center, Scale: scale, Lower: center - dev, Upper: center + dev, Ready: d.n >= d.cfg.MinSamples}
}

// observe evaluates v against what was learned before it, then learns v.
// It returns whether v is anomalous and the threshold it crossed (or would
// cross).
func (d *detector) observe(v float64) (anomalous bool, threshold float64) {
	b := d.baseline()
	threshold = b.Upper
	if b.Ready && !math.IsNaN(v) {
		switch d.cfg.Direction {
		case "up":
			anomalous = v > b.Upper
		case "down":
			anomalous, threshold = v < b.Lower, b.Lower
		default:
			anomalous = v > b.Upper || v < b.Lower
			if v < b.Lower {
				threshold = b.Lower
			}
		}
	}
	d.learn(v)
	return anomalous, threshold
}

func (d *detector) learn(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	d.n++
	if d.cfg.Method == "ewma" {
		if d.n == 1 {
			d.mean = v
			return
		}
		diff := v - d.mean
		incr := d.cfg.Alpha * diff
		d.mean += incr
		d.vari = (1 - d.cfg.Alpha) * (d.vari + diff*incr)
		return
	}
	if len(d.values) < d.cfg.History {
		d.values = append(d.values, v)
		return
	}
	d.values[d.next] = v
	d.next = (d.next + 1) % len(d.values)
}

// medianMAD returns the median of vs and 1.4826 × their median absolute
// deviation (a consistent estimator of the standard deviation).
func medianMAD(vs []float64) (median, scale float64) {
	if len(vs) == 0 {
		return 0, 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	median = mid(s)
	for i, v := range s {
		s[i] = math.Abs(v - median)
	}
	slices.Sort(s)
	return median, 1.4826 * mid(s)
}

func mid(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Suggest proposes a static threshold for a series from its history of
// values: the upper (or, for direction down, lower) bound of median ±
// k·MAD, never closer to the median than 1% of it. It needs at least two
// values.
func Suggest(values []float64, k float64, direction string) (Baseline, bool) {
	if len(values) < 2 {
		return Baseline{}, false
	}
	d := newDetector(&AnomalyConfig{Method: "mad", K: k, History: len(values), MinSamples: 2, Direction: direction})
	for _, v := range values {
		d.learn(v)
	}
	return d.baseline(), true
}
