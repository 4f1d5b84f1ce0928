package windowing

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// cutoff returns the latest window start that src's watermark has closed.
func (a *Aggregator) cutoff(src *sourceState) int64 {
	if src.watermark == math.MinInt64 {
		return math.MinInt64
	}
	return src.watermark - int64(a.o.Lateness) - int64(a.o.Window)
}

func (a *Aggregator) markDue(src *sourceState) {
	if !src.due && src.open > 0 && src.oldestOpen <= a.cutoff(src) {
		src.due = true
		a.due = append(a.due, src)
	}
}

// Watermark returns the watermark of source (zero when it has none).
func (a *Aggregator) Watermark(source string) time.Time {
	if src := a.sources[source]; src != nil && src.watermark != math.MinInt64 {
		return time.Unix(0, src.watermark).UTC()
	}
	return time.Time{}
}

// IsClosed reports whether the window of source starting at start can no
// longer change: it was collected by Closed, Advance, AdvanceIdle or Flush
// (or its source forgotten, which happens only once it has no open window).
func (a *Aggregator) IsClosed(source string, start time.Time) bool {
	src := a.sources[source]
	return src == nil || start.UnixNano() <= src.closedThrough
}

// Advance moves the watermark of every source with open windows to t if t is
// later (use it when the whole input is idle, with the wall clock) and
// returns the windows that closed.
func (a *Aggregator) Advance(t time.Time) []*events.AggregateEvent {
	tn := t.UnixNano()
	for _, src := range a.sources {
		if src.open > 0 && tn > src.watermark {
			src.watermark = tn
			a.markDue(src)
		}
	}
	return a.Closed()
}

// AdvanceIdle moves to now the watermark of every source with open windows
// whose last event arrived (see AggregateArrived) at least idle before now,
// and returns the windows that closed: a source that went quiet has its
// windows closed by the clock while the others go on by their own event
// time. now is the wall clock when the input is idle, or the arrival time
// of the latest message while messages flow.
func (a *Aggregator) AdvanceIdle(now time.Time, idle time.Duration) []*events.AggregateEvent {
	nn, quiet := now.UnixNano(), now.Add(-idle).UnixNano()
	for _, src := range a.sources {
		if src.open > 0 && src.lastArrival <= quiet && nn > src.watermark {
			src.watermark = nn
			a.markDue(src)
		}
	}
	a.maybeSweep(a.o.Now().UnixNano())
	return a.Closed()
}

// Closed returns (and forgets) every window whose end plus the lateness its
// source's watermark has passed, sorted by window start, then series.
func (a *Aggregator) Closed() []*events.AggregateEvent {
	if len(a.due) == 0 {
		return nil
	}
	var out []*events.AggregateEvent
	for _, src := range a.due {
		src.due = false
		out = a.collectAmends(out, src)
		cutoff := a.cutoff(src)
		if src.open == 0 || src.oldestOpen > cutoff {
			continue
		}
		src.closedThrough = max(src.closedThrough, cutoff)
		out = a.collect(out, src, func(start int64) bool { return start <= cutoff })
	}
	clear(a.due)
	a.due = a.due[:0]
	return a.sorted(out)
}

// Flush returns (and forgets) every open window: the end of a replay, or a
// shutdown that will not come back for them.
func (a *Aggregator) Flush() []*events.AggregateEvent {
	var out []*events.AggregateEvent
	for _, src := range a.sources {
		out = a.collectAmends(out, src)
		if src.open == 0 {
			continue
		}
		n := len(out)
		out = a.collect(out, src, func(int64) bool { return true })
		for _, w := range out[n:] {
			src.closedThrough = max(src.closedThrough, w.WindowStart.UnixNano())
		}
	}
	return a.sorted(out)
}

func (a *Aggregator) collect(out []*events.AggregateEvent, src *sourceState, closed func(start int64) bool) []*events.AggregateEvent {
	src.oldestOpen = math.MaxInt64
	for sk, ss := range src.series {
		for key, w := range ss.windows {
			if !closed(key) {
				src.oldestOpen = min(src.oldestOpen, key)
				continue
			}
			out = append(out, a.emit(Series{sk.typ, src.name, sk.name}, time.Unix(0, key).UTC(), w))
			delete(ss.windows, key)
			a.open--
			src.open--
		}
	}
	return out
}

// collectAmends appends src's amendment windows to out and forgets them.
func (a *Aggregator) collectAmends(out []*events.AggregateEvent, src *sourceState) []*events.AggregateEvent {
	for k, w := range src.amends {
		ev := a.emit(Series{k.series.typ, src.name, k.series.name}, time.Unix(0, k.start).UTC(), w)
		ev.Amendment = true
		if w.first != 0 {
			ev.ID = events.WindowID(ev.AggregatedType, ev.Source, ev.Name(), ev.WindowStart, w.first)
		} else {
			// No input sequence tells it from the first window (whose id,
			// the AggregateID, emit gave it): number it.
			a.amendments++
			ev.ID += "-amendment-" + strconv.FormatUint(a.amendments, 10)
		}
		out = append(out, ev)
	}
	clear(src.amends)
	return out
}

func (a *Aggregator) sorted(out []*events.AggregateEvent) []*events.AggregateEvent {
	a.st.Emitted += uint64(len(out))
	slices.SortFunc(out, func(x, y *events.AggregateEvent) int {
		return cmp.Or(x.WindowStart.Compare(y.WindowStart), cmp.Compare(x.AggregatedType, y.AggregatedType),
			cmp.Compare(x.Source, y.Source), cmp.Compare(x.Name(), y.Name()), cmp.Compare(x.ID, y.ID))
	})
	return out
}

func (a *Aggregator) emit(s Series, start time.Time, w *window) *events.AggregateEvent {
	ev := events.NewAggregateEvent(s.Type, s.Source, s.Name, start, start.Add(a.o.Window))
	ev.Count, ev.ErrorCount = w.count, w.errors
	ev.Sum, ev.Min, ev.Max = w.sum.value(), w.min, w.max
	if w.count > 0 {
		ev.Avg = ev.Sum / float64(w.count)
	}
	if qs, err := w.sketch.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99}); err == nil {
		// The sketch's bucket midpoints can fall just outside the exact
		// extremes; clamp so that min <= quantiles <= max always holds.
		clamp := func(v float64) float64 { return min(max(v, w.min), w.max) }
		ev.P50, ev.P90, ev.P95, ev.P99 = clamp(qs[0]), clamp(qs[1]), clamp(qs[2]), clamp(qs[3])
	}
	w.sketch.Encode(&ev.Sketch, false)
	if w.slow.n > 0 {
		ev.SlowestTraceIDs = append([]events.TraceID(nil), w.slow.id[:w.slow.n]...)
	}
	return ev
}

// sweepEvery is how often (by Now) idle series are looked for: a tenth of
// SeriesTTL, between 1 s and 1 min.
func (a *Aggregator) sweepEvery() int64 {
	return int64(min(max(a.o.SeriesTTL/10, time.Second), time.Minute))
}

func (a *Aggregator) maybeSweep(now int64) {
	if now-a.lastSweep >= a.sweepEvery() {
		a.Sweep(time.Unix(0, now))
	}
}

// Sweep forgets, at now, every series without an open window whose last
// event is SeriesTTL or more before now, and every source left without
// series; it returns how many series it forgot. Add and AdvanceIdle call it
// every tenth of SeriesTTL (at least every minute).
func (a *Aggregator) Sweep(now time.Time) int {
	nn := now.UnixNano()
	a.lastSweep = nn
	idle := nn - int64(a.o.SeriesTTL)
	n := 0
	for name, src := range a.sources {
		for sk, ss := range src.series {
			if len(ss.windows) > 0 || ss.lastSeen > idle {
				continue
			}
			a.forget(src, sk)
			n++
		}
		if len(src.series) == 0 && !src.due && len(src.amends) == 0 && nn >= src.keepUntil {
			delete(a.sources, name)
		}
	}
	a.st.SeriesEvicted += uint64(n)
	return n
}

func (a *Aggregator) forget(src *sourceState, sk seriesKey) {
	delete(src.series, sk)
	if sk.name != OverflowName || src.name != a.o.OverflowSource {
		a.limit.release(1)
	}
	a.nSeries--
	if sk.name != OverflowName {
		src.named--
	}
	if a.o.OnEvict != nil {
		a.o.OnEvict(Series{sk.typ, src.name, sk.name})
	}
}
