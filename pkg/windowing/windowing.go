// Package windowing is the aggregation stage of the pipeline: tumbling
// event-time windows per series with mergeable sketches.
//
// A series is an aggregated event type, a source and an operation (or phase,
// or metric). performance.operation.complete and .failed form one series
// (the failed ones are its errors); performance.phase.end and
// performance.metric.recorded form series of their own; other types are not
// aggregated. An [Aggregator] puts each event in the window its timestamp
// falls in and keeps per window the count, error count, sum (compensated),
// min, max and a DDSketch (1% relative accuracy) of the durations (or metric
// values).
//
// Event time is kept per source: each source has its own watermark — the
// latest event time of that source, or the time the caller advances it to
// when the source is idle — which closes the source's windows once it passes
// a window's end plus the allowed lateness. One source's clock therefore
// never makes another source's events late nor closes its windows early. A
// closed window becomes one performance.metric.aggregated event whose id is
// derived from series and window, so recomputing a window always yields the
// same id. Events for a window that was already emitted are late: counted,
// never silently dropped.
//
// Nothing an event carries can break the aggregator: values that are not
// finite or out of range ([MaxDurationMS], [MaxAbsValue]) and timestamps more
// than MaxFutureSkew ahead of the clock are rejected with a
// [*events.ValidationError]; an event sent again (same source and id, within
// DedupWindow) is counted once; series are bounded per source and in total
// (overflow series), and idle ones are forgotten after SeriesTTL.
package windowing

import (
	"math"
	"strconv"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/jetmon/jetmon/pkg/events"
)

// OverflowName is the series name that collects a source's events once it
// has MaxSeriesPerSource series, and (with the source OverflowSource) every
// new series once the aggregator has MaxSeries: memory stays bounded
// whatever the input.
const OverflowName = "__overflow__"

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
	Duplicate                    // the same event (source and id) was added within DedupWindow
	Rejected                     // a value or timestamp out of range: see Result.Err
	Amended                      // its window was already closed; it went to an amendment window (Options.AmendLate)
)

func (o Outcome) String() string {
	switch o {
	case Added:
		return "added"
	case Late:
		return "late"
	case NotAggregated:
		return "not_aggregated"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	case Amended:
		return "amended"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Overflow says whether an added event went to an overflow series.
type Overflow uint8

// Overflows.
const (
	NoOverflow     Overflow = iota
	SourceOverflow          // its source has MaxSeriesPerSource series: Series is (type, source, OverflowName)
	GlobalOverflow          // the aggregator has MaxSeries series: Series is (type, OverflowSource, OverflowName)
)

// Result is what [Aggregator.Aggregate] did with an event.
type Result struct {
	Outcome Outcome
	// Series is the series the event was added to (Added): its own or an
	// overflow series, as Overflow says.
	Series   Series
	Overflow Overflow
	// WindowStart is the start of the window it was added to (Added,
	// Amended).
	WindowStart time.Time
	// Err says why it was rejected (Rejected): a [*events.ValidationError].
	Err error
}

// Stats counts what an Aggregator did.
type Stats struct {
	Added, Late, NotAggregated, Overflowed, Duplicates, Rejected uint64
	// Amended counts late events that went to amendment windows
	// (Options.AmendLate); Late counts only those that did not.
	Amended uint64
	// DedupEvicted counts ids forgotten before DedupWindow for room
	// (MaxDedupIDs); SeriesEvicted counts series forgotten after SeriesTTL.
	DedupEvicted, SeriesEvicted uint64
	OpenWindows, Series         int
	Sources, DedupIDs           int
	Emitted                     uint64
}

// window is one series' aggregate over one window.
type window struct {
	count, errors uint64
	sum           kahan
	min, max      float64
	sketch        *ddsketch.DDSketch
	slow          slowest
	first         uint64 // the lowest input sequence added (0: none): an amendment's id
}

func (a *Aggregator) newWindow(v float64) *window {
	sketch, _ := ddsketch.LogCollapsingLowestDenseDDSketch(a.o.RelativeAccuracy, 2048)
	return &window{sketch: sketch, min: v, max: v}
}

// add adds one event's value; seq is its input's sequence (0: unknown).
func (w *window) add(v float64, failed bool, trace events.TraceID, seq uint64) {
	w.count++
	if failed {
		w.errors++
	}
	w.sum.add(v)
	w.min, w.max = min(w.min, v), max(w.max, v)
	_ = w.sketch.Add(v)
	w.slow.add(trace, v)
	if seq != 0 && (w.first == 0 || seq < w.first) {
		w.first = seq
	}
}

// slowest keeps the trace ids of a window's slowest events with a trace,
// slowest first.
type slowest struct {
	n  int
	id [SlowestTraces]events.TraceID
	v  [SlowestTraces]float64
}

// SlowestTraces is how many trace ids each window names
// (AggregateEvent.SlowestTraceIDs).
const SlowestTraces = 3

func (s *slowest) add(id events.TraceID, v float64) {
	if id.IsZero() {
		return
	}
	for i := range s.n {
		if s.id[i] == id {
			if v <= s.v[i] {
				return
			}
			copy(s.id[i:], s.id[i+1:s.n]) // re-inserted below at its new rank
			copy(s.v[i:], s.v[i+1:s.n])
			s.n--
			break
		}
	}
	i := s.n
	for i > 0 && s.v[i-1] < v {
		i--
	}
	if i >= SlowestTraces {
		return
	}
	end := min(s.n, SlowestTraces-1)
	copy(s.id[i+1:end+1], s.id[i:end])
	copy(s.v[i+1:end+1], s.v[i:end])
	s.id[i], s.v[i] = id, v
	s.n = min(s.n+1, SlowestTraces)
}

type seriesKey struct {
	typ  events.Type
	name string
}

type seriesState struct {
	windows  map[int64]*window // by window start (Unix ns)
	lastSeen int64             // Now of its last event (Unix ns)
}

// sourceState is the event time and the series of one source.
type sourceState struct {
	name      string
	watermark int64 // latest event time (Unix ns)
	// closedThrough is the latest window start already emitted: an event
	// for a window at or before it is late. (A window the watermark has
	// passed but that was not emitted yet still takes events.)
	closedThrough int64
	oldestOpen    int64 // earliest open window start, for a cheap check
	open          int   // open windows
	lastArrival   int64 // Now of its last event (Unix ns)
	named         int   // series other than the overflow series
	due           bool  // in Aggregator.due
	series        map[seriesKey]*seriesState
	amends        map[amendKey]*window // amendment windows waiting to be emitted (AmendLate)
	keepUntil     int64                // Sweep keeps the source until then (Adopt)
}

// amendKey names an amendment window: a series and a window start.
type amendKey struct {
	series seriesKey
	start  int64
}

// Aggregator aggregates events into windows. It is not safe for concurrent
// use: give each consumer (partition) its own.
type Aggregator struct {
	o         Options
	sources   map[string]*sourceState
	due       []*sourceState // sources that may have windows to close
	limit     *SeriesLimit
	nSeries   int
	dedup     *dedup
	open      int
	lastSweep int64
	// amendments numbers the amendment windows of input without sequences.
	amendments uint64
	closed     bool
	st         Stats
}

// New returns an empty Aggregator. Options out of range (see
// [Options.Validate]) are replaced by the defaults.
func New(o Options) *Aggregator {
	o = o.withDefaults()
	a := &Aggregator{o: o, sources: map[string]*sourceState{}, limit: o.Limit, dedup: newDedup(int64(o.DedupWindow), o.MaxDedupIDs)}
	if a.limit == nil {
		a.limit = NewSeriesLimit(o.MaxSeries)
	}
	a.lastSweep = o.Now().UnixNano()
	return a
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

// minTime is the earliest timestamp aggregated: Unix nanoseconds cannot
// hold much earlier ones, and none is plausible.
var minTime = time.Unix(0, 0)

// Check reports why ev cannot be aggregated at now — a value that is not
// finite or out of range, a timestamp before 1970 or more than
// MaxFutureSkew after now — as a [*events.ValidationError], or nil.
func (a *Aggregator) Check(ev events.Event, now time.Time) error {
	s, v, _, ok := SeriesOf(ev)
	if !ok {
		return nil
	}
	return a.check(ev, s, v, now)
}

func (a *Aggregator) check(ev events.Event, s Series, v float64, now time.Time) error {
	field := "duration_ms"
	if s.Type == events.MetricRecorded {
		field = "value"
	}
	switch {
	case !finite(v):
		return &events.ValidationError{Field: field, Reason: "must be a finite number"}
	case s.Type == events.MetricRecorded && math.Abs(v) > MaxAbsValue:
		return &events.ValidationError{Field: field, Reason: "out of range: |value| must be at most 1e15"}
	case s.Type != events.MetricRecorded && (v < 0 || v > MaxDurationMS):
		return &events.ValidationError{Field: field, Reason: "out of range: must be between 0 and 1e10 ms"}
	}
	ts := ev.Metadata().Timestamp
	switch {
	case ts.Before(minTime):
		return &events.ValidationError{Field: "timestamp", Reason: "before 1970"}
	case ts.After(now.Add(a.o.MaxFutureSkew)):
		return &events.ValidationError{Field: "timestamp", Reason: ts.UTC().Format(time.RFC3339) +
			" is more than " + a.o.MaxFutureSkew.String() + " ahead of the aggregator's clock"}
	}
	return nil
}

// Add aggregates ev (by its timestamp) and, as its source's event time moves
// on, advances the source's watermark; closed windows are collected by
// Advance, AdvanceIdle or Closed. See [Aggregator.Aggregate] for details.
func (a *Aggregator) Add(ev events.Event) Outcome { return a.Aggregate(ev).Outcome }

// Aggregate adds ev like Add and says where it went.
func (a *Aggregator) Aggregate(ev events.Event) Result { return a.AggregateArrived(ev, time.Time{}) }

// AggregateArrived is Aggregate with the time ev arrived — when the stream
// stored its message — which AdvanceIdle compares against (zero: Now).
// Arrival by the stream's clock keeps a consumer that falls behind from
// taking the sources whose messages wait for it for quiet ones.
func (a *Aggregator) AggregateArrived(ev events.Event, arrived time.Time) Result {
	return a.AggregateInput(ev, arrived, 0)
}

// AggregateInput is AggregateArrived with the sequence number of the input
// message that carried ev (its stream sequence; 0: none). A window's id
// names its series and start only, so that a window recomputed after a
// crash from part of its input has the id of the one already stored (and
// the server drops it); an amendment's id adds the lowest sequence it holds
// ([events.WindowID]), so that the same late input always yields the same
// amendment and other late input another one.
func (a *Aggregator) AggregateInput(ev events.Event, arrived time.Time, seq uint64) Result {
	s, v, failed, ok := SeriesOf(ev)
	if !ok {
		a.st.NotAggregated++
		return Result{Outcome: NotAggregated}
	}
	nowT := a.o.Now()
	now := nowT.UnixNano()
	arrival := now
	if !arrived.IsZero() {
		arrival = arrived.UnixNano()
	}
	if err := a.check(ev, s, v, nowT); err != nil {
		a.st.Rejected++
		return Result{Outcome: Rejected, Err: err}
	}
	md := ev.Metadata()
	if a.dedup.seen(s.Source, md.ID, now) {
		a.st.Duplicates++
		return Result{Outcome: Duplicate}
	}
	a.maybeSweep(now)
	ts := md.Timestamp
	start := ts.Truncate(a.o.Window)
	key := start.UnixNano()

	// Find the series, or where a new one would go.
	over := NoOverflow
	src := a.sources[s.Source]
	sk := seriesKey{s.Type, s.Name}
	var ss *seriesState
	if src != nil {
		ss = src.series[sk]
	}
	needTake := false
	if ss == nil {
		if src != nil && src.named >= a.o.MaxSeriesPerSource {
			over, sk = SourceOverflow, seriesKey{s.Type, OverflowName}
			ss = src.series[sk]
		}
		if ss == nil {
			if a.limit.take() {
				needTake = true
			} else {
				over, sk = GlobalOverflow, seriesKey{s.Type, OverflowName}
				src = a.sources[a.o.OverflowSource]
				ss = nil
				if src != nil {
					ss = src.series[sk]
				}
			}
		}
	}
	if src != nil && key <= src.closedThrough {
		if needTake {
			a.limit.release(1)
		}
		if !a.o.AmendLate {
			a.st.Late++
			return Result{Outcome: Late}
		}
		return a.amend(src, sk, key, v, failed, md.TraceID, seq, over)
	}
	if src == nil {
		name := s.Source
		if over == GlobalOverflow {
			name = a.o.OverflowSource
		}
		src = &sourceState{name: name, watermark: math.MinInt64, closedThrough: math.MinInt64, oldestOpen: math.MaxInt64, series: map[seriesKey]*seriesState{}}
		a.sources[name] = src
	}
	if ss == nil {
		ss = &seriesState{windows: map[int64]*window{}}
		src.series[sk] = ss
		a.nSeries++
		if over == NoOverflow {
			src.named++
		}
	}
	if over != NoOverflow {
		a.st.Overflowed++
	}
	w := ss.windows[key]
	if w == nil {
		w = a.newWindow(v)
		ss.windows[key] = w
		a.open++
		src.open++
		src.oldestOpen = min(src.oldestOpen, key)
	}
	w.add(v, failed, md.TraceID, seq)
	a.st.Added++
	ss.lastSeen, src.lastArrival = now, max(src.lastArrival, arrival)
	if t := ts.UnixNano(); t > src.watermark {
		src.watermark = t
	}
	a.markDue(src)
	return Result{Outcome: Added, Series: Series{sk.typ, src.name, sk.name}, Overflow: over, WindowStart: start}
}

// amend adds a late event to the amendment window of its series and window
// start, which the next Closed, AdvanceIdle or Flush emits.
func (a *Aggregator) amend(src *sourceState, sk seriesKey, key int64, v float64, failed bool, trace events.TraceID, seq uint64, over Overflow) Result {
	k := amendKey{sk, key}
	w := src.amends[k]
	if w == nil {
		if src.amends == nil {
			src.amends = map[amendKey]*window{}
		}
		w = a.newWindow(v)
		src.amends[k] = w
	}
	w.add(v, failed, trace, seq)
	a.st.Amended++
	if !src.due {
		src.due = true
		a.due = append(a.due, src)
	}
	return Result{Outcome: Amended, Series: Series{sk.typ, src.name, sk.name}, Overflow: over, WindowStart: time.Unix(0, key).UTC()}
}

// Close returns the aggregator's series to its SeriesLimit (calling OnEvict
// for each) and forgets them; open windows are dropped. Use it when the
// aggregator's partition moves elsewhere. It is idempotent; the aggregator
// must not be used afterwards.
func (a *Aggregator) Close() {
	if a.closed {
		return
	}
	a.closed = true
	for _, src := range a.sources {
		for sk := range src.series {
			a.forget(src, sk)
		}
	}
	clear(a.sources)
	clear(a.due)
	a.due, a.open = nil, 0
}

// Stats returns the counters.
func (a *Aggregator) Stats() Stats {
	st := a.st
	st.OpenWindows = a.open
	st.Sources = len(a.sources)
	st.Series = a.nSeries
	st.DedupIDs = a.dedup.len()
	st.DedupEvicted = a.dedup.evicted
	return st
}
