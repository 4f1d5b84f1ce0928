// Package aggregate is the aggregation stage of the pipeline: tumbling
// event-time windows per series with mergeable sketches.
//
// A series is an aggregated event type, a source and an operation (or phase,
// or metric). performance.operation.complete and .failed form one series
// (the failed ones are its errors); performance.phase.end and
// performance.metric.recorded form series of their own; other types are not
// aggregated. An [Aggregator] puts each event in the window its timestamp
// falls in and keeps per window the count, error count, sum, min, max and a
// DDSketch (1% relative accuracy) of the durations (or metric values). The
// watermark — the latest event time seen, or the time the caller advances it
// to when the input is idle — closes a window once it passes the window's end
// plus the allowed lateness; a closed window becomes one
// performance.metric.aggregated event whose id is derived from series and
// window, so recomputing a window always yields the same id. Events for a
// window that was already emitted are late: counted, never silently dropped.
package aggregate

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/jetmon/jetmon/pkg/events"
)

// OverflowName is the series name that collects a source's events once it
// has MaxSeriesPerSource series: memory stays bounded whatever the input.
const OverflowName = "__overflow__"

// Options configures an Aggregator. Zero values mean the defaults.
type Options struct {
	// Window is the tumbling window's length (default 10 s).
	Window time.Duration
	// Lateness is how long after its end a window still takes events
	// (default 5 s).
	Lateness time.Duration
	// RelativeAccuracy of the quantiles (default 0.01).
	RelativeAccuracy float64
	// MaxSeriesPerSource bounds the series of one source (default 1000);
	// further series of that source are aggregated as OverflowName.
	MaxSeriesPerSource int
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.Lateness < 0 {
		o.Lateness = 0
	} else if o.Lateness == 0 {
		o.Lateness = 5 * time.Second
	}
	if o.RelativeAccuracy <= 0 {
		o.RelativeAccuracy = 0.01
	}
	if o.MaxSeriesPerSource <= 0 {
		o.MaxSeriesPerSource = 1000
	}
	return o
}

// Series identifies a series.
type Series struct {
	Type   events.Type // the aggregated type: operation.complete, phase.end or metric.recorded
	Source string
	Name   string
}

// Outcome says what Add did with an event.
type Outcome uint8

// Outcomes of Add.
const (
	Added         Outcome = iota // aggregated
	Late                         // its window was already closed
	NotAggregated                // a type that is not aggregated (phase.start, resource.*, ...)
)

// Stats counts what an Aggregator did.
type Stats struct {
	Added, Late, NotAggregated, Overflowed uint64
	OpenWindows, Series                    int
	Emitted                                uint64
}

// window is one series' aggregate over one window.
type window struct {
	count, errors uint64
	sum, min, max float64
	sketch        *ddsketch.DDSketch
}

type seriesState struct {
	windows map[int64]*window // by window start (Unix ns)
}

// Aggregator aggregates events into windows. It is not safe for concurrent
// use: give each consumer (partition) its own.
type Aggregator struct {
	o          Options
	series     map[Series]*seriesState
	perSource  map[string]int
	watermark  time.Time
	oldestOpen int64 // earliest open window start, for a cheap Advance
	// closedThrough is the latest window start already emitted: an event
	// for a window at or before it is late. (A window the watermark has
	// passed but that was not emitted yet still takes events.)
	closedThrough int64
	st            Stats
}

// New returns an empty Aggregator.
func New(o Options) *Aggregator {
	return &Aggregator{o: o.withDefaults(), series: map[Series]*seriesState{}, perSource: map[string]int{}, oldestOpen: math.MaxInt64, closedThrough: math.MinInt64}
}

// SeriesOf returns the series ev belongs to and its value, or false for a
// type that is not aggregated.
func SeriesOf(ev events.Event) (s Series, value float64, failed bool, ok bool) {
	p, isPerf := ev.(*events.PerformanceEvent)
	if !isPerf {
		return Series{}, 0, false, false
	}
	switch p.Type {
	case events.OperationComplete, events.OperationFailed:
		return Series{events.OperationComplete, p.Source, p.Operation}, p.DurationMS, p.Type == events.OperationFailed, true
	case events.PhaseEnd:
		return Series{events.PhaseEnd, p.Source, p.Phase}, p.DurationMS, p.Status == events.StatusFailure, true
	case events.MetricRecorded:
		return Series{events.MetricRecorded, p.Source, p.Metric}, p.Value, false, true
	}
	return Series{}, 0, false, false
}

// Add aggregates ev (by its timestamp) and, as event time moves on, advances
// the watermark; closed windows are collected by Advance or Closed.
func (a *Aggregator) Add(ev events.Event) Outcome {
	s, v, failed, ok := SeriesOf(ev)
	if !ok {
		a.st.NotAggregated++
		return NotAggregated
	}
	ts := ev.Metadata().Timestamp
	start := ts.Truncate(a.o.Window)
	if start.UnixNano() <= a.closedThrough {
		a.st.Late++
		return Late
	}
	st := a.series[s]
	if st == nil {
		if a.perSource[s.Source] >= a.o.MaxSeriesPerSource {
			a.st.Overflowed++
			s.Name = OverflowName
			st = a.series[s]
		}
		if st == nil {
			st = &seriesState{windows: map[int64]*window{}}
			a.series[s] = st
			a.perSource[s.Source]++
		}
	}
	key := start.UnixNano()
	w := st.windows[key]
	if w == nil {
		sk, _ := ddsketch.LogCollapsingLowestDenseDDSketch(a.o.RelativeAccuracy, 2048)
		w = &window{sketch: sk, min: v, max: v}
		st.windows[key] = w
		a.st.OpenWindows++
		a.oldestOpen = min(a.oldestOpen, key)
	}
	w.count++
	if failed {
		w.errors++
	}
	w.sum += v
	w.min, w.max = min(w.min, v), max(w.max, v)
	_ = w.sketch.Add(v)
	a.st.Added++
	if ts.After(a.watermark) {
		a.watermark = ts
	}
	return Added
}

// SeriesName returns the name s is aggregated under: its own, or
// OverflowName when its source has hit the series limit.
func (a *Aggregator) SeriesName(s Series) string {
	if _, ok := a.series[s]; ok {
		return s.Name
	}
	return OverflowName
}

// Watermark returns the current watermark.
func (a *Aggregator) Watermark() time.Time { return a.watermark }

// Advance moves the watermark to t if t is later (use it when the input is
// idle, with the wall clock) and returns the windows that closed.
func (a *Aggregator) Advance(t time.Time) []*events.AggregateEvent {
	if t.After(a.watermark) {
		a.watermark = t
	}
	return a.Closed()
}

// Closed returns (and forgets) every window whose end plus the lateness the
// watermark has passed, sorted by window start, then series.
func (a *Aggregator) Closed() []*events.AggregateEvent {
	cutoff := a.watermark.Add(-a.o.Lateness - a.o.Window).UnixNano() // windows starting at or before cutoff are closed
	if a.oldestOpen > cutoff {
		return nil
	}
	a.closedThrough = max(a.closedThrough, cutoff)
	return a.collect(func(start int64) bool { return start <= cutoff })
}

// Flush returns (and forgets) every open window: the end of a replay, or a
// shutdown that will not come back for them.
func (a *Aggregator) Flush() []*events.AggregateEvent {
	out := a.collect(func(int64) bool { return true })
	for _, w := range out {
		a.closedThrough = max(a.closedThrough, w.WindowStart.UnixNano())
	}
	return out
}

func (a *Aggregator) collect(closed func(start int64) bool) []*events.AggregateEvent {
	var out []*events.AggregateEvent
	a.oldestOpen = math.MaxInt64
	for s, st := range a.series {
		for key, w := range st.windows {
			if !closed(key) {
				a.oldestOpen = min(a.oldestOpen, key)
				continue
			}
			out = append(out, a.emit(s, time.Unix(0, key).UTC(), w))
			delete(st.windows, key)
			a.st.OpenWindows--
		}
	}
	a.st.Emitted += uint64(len(out))
	slices.SortFunc(out, func(x, y *events.AggregateEvent) int {
		return cmp.Or(x.WindowStart.Compare(y.WindowStart), cmp.Compare(x.AggregatedType, y.AggregatedType),
			cmp.Compare(x.Source, y.Source), cmp.Compare(x.Name(), y.Name()))
	})
	return out
}

func (a *Aggregator) emit(s Series, start time.Time, w *window) *events.AggregateEvent {
	ev := events.NewAggregateEvent(s.Type, s.Source, s.Name, start, start.Add(a.o.Window))
	ev.Count, ev.ErrorCount = w.count, w.errors
	ev.Sum, ev.Min, ev.Max = w.sum, w.min, w.max
	if w.count > 0 {
		ev.Avg = w.sum / float64(w.count)
	}
	if qs, err := w.sketch.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99}); err == nil {
		// The sketch's bucket midpoints can fall just outside the exact
		// extremes; clamp so that min <= quantiles <= max always holds.
		clamp := func(v float64) float64 { return min(max(v, w.min), w.max) }
		ev.P50, ev.P90, ev.P95, ev.P99 = clamp(qs[0]), clamp(qs[1]), clamp(qs[2]), clamp(qs[3])
	}
	w.sketch.Encode(&ev.Sketch, false)
	return ev
}

// Stats returns the counters.
func (a *Aggregator) Stats() Stats {
	st := a.st
	st.Series = len(a.series)
	return st
}

// DecodeSketch decodes an aggregate's sketch, for merging.
func DecodeSketch(b []byte) (*ddsketch.DDSketch, error) {
	return ddsketch.DecodeDDSketch(b, store.DefaultProvider, nil)
}

// Merge combines aggregates of one series and window (from several
// partitions or instances) into one, with quantiles from the merged sketch.
// It returns nil for an empty input.
func Merge(parts []*events.AggregateEvent) (*events.AggregateEvent, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	first := parts[0]
	out := events.NewAggregateEvent(first.AggregatedType, first.Source, first.Name(), first.WindowStart, first.WindowEnd)
	var merged *ddsketch.DDSketch
	for i, p := range parts {
		sk, err := DecodeSketch(p.Sketch)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = sk
		} else if err := merged.MergeWith(sk); err != nil {
			return nil, err
		}
		out.Count += p.Count
		out.ErrorCount += p.ErrorCount
		out.LateCount += p.LateCount
		out.Sum += p.Sum
		if i == 0 || p.Min < out.Min {
			out.Min = p.Min
		}
		if i == 0 || p.Max > out.Max {
			out.Max = p.Max
		}
	}
	if out.Count > 0 {
		out.Avg = out.Sum / float64(out.Count)
	}
	if qs, err := merged.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99}); err == nil {
		clamp := func(v float64) float64 { return min(max(v, out.Min), out.Max) }
		out.P50, out.P90, out.P95, out.P99 = clamp(qs[0]), clamp(qs[1]), clamp(qs[2]), clamp(qs[3])
	}
	merged.Encode(&out.Sketch, false)
	return out, nil
}
