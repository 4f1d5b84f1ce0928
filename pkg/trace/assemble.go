package trace

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Defaults of [Options].
const (
	DefaultHorizon  = 10 * time.Second
	DefaultMaxOpen  = 100_000
	DefaultMaxSpans = 10_000
)

// Options bound an [Assembler].
type Options struct {
	// Horizon is how long a trace stays open after its last span arrived
	// (by the clock given to the Assembler, not the events' timestamps):
	// spans arriving later are "late" and merged into the stored trace by
	// the runtime. Must be positive.
	Horizon time.Duration
	// MaxOpen bounds the traces held open at once. Past it the trace idle
	// the longest is finished early (counted in [Stats].Evicted; nothing is
	// lost: its later spans merge like late ones). Must be positive.
	MaxOpen int
	// MaxSpans bounds the spans of one open trace; further spans are
	// dropped and counted ([Stats].DroppedSpans, [Finished].Dropped). Must
	// be positive.
	MaxSpans int
}

// DefaultOptions returns the defaults: a 10 s horizon, 100 000 open traces,
// 10 000 spans per trace.
func DefaultOptions() Options {
	return Options{Horizon: DefaultHorizon, MaxOpen: DefaultMaxOpen, MaxSpans: DefaultMaxSpans}
}

// ErrOptions is matched by the error of an invalid [Options] field.
var ErrOptions = errors.New("invalid trace options")

// Validate names the first bad field.
func (o Options) Validate() error {
	switch {
	case o.Horizon <= 0:
		return fmt.Errorf("%w: Horizon %s: must be positive", ErrOptions, o.Horizon)
	case o.MaxOpen <= 0:
		return fmt.Errorf("%w: MaxOpen %d: must be positive", ErrOptions, o.MaxOpen)
	case o.MaxSpans <= 0:
		return fmt.Errorf("%w: MaxSpans %d: must be positive", ErrOptions, o.MaxSpans)
	}
	return nil
}

// Finished is a trace handed over by the [Assembler].
type Finished struct {
	ID    events.TraceID
	Spans []Span
	// Dropped counts spans refused by MaxSpans.
	Dropped int
	// Evicted is true when the trace was finished early by MaxOpen.
	Evicted bool
	// FirstArrival is when the trace's first span arrived (the time given
	// to [Assembler.AddArrived], else the clock's).
	FirstArrival time.Time
}

// Stats are an Assembler's counters since it was made.
type Stats struct {
	// Open is the number of traces held now; Spans their spans.
	Open, Spans int
	// Added counts spans taken, Ignored events of no trace.
	Added, Ignored uint64
	// Finished counts traces handed over after the horizon, Evicted those
	// handed over early by MaxOpen, DroppedSpans spans refused by MaxSpans.
	Finished, Evicted, DroppedSpans uint64
}

// Assembler groups spans by trace until each trace has been quiet for the
// horizon. It is not safe for concurrent use: one goroutine owns it (the
// runtime's consumer), and the clock is passed in, so tests drive it
// directly. Its memory is bounded by MaxOpen × MaxSpans spans.
type Assembler struct {
	o          Options
	open       map[events.TraceID]*openTrace
	head, tail *openTrace // least and most recently touched
	// contexts maps the context ids of open traces to their trace.
	contexts map[string]events.TraceID
	strs     interner
	st       Stats
}

type openTrace struct {
	id         events.TraceID
	spans      []Span
	lastNS     int64
	firstNS    int64 // arrival of the first span
	dropped    int
	contexts   []string
	prev, next *openTrace
}

// NewAssembler returns an empty Assembler, or an error matching
// [ErrOptions].
func NewAssembler(o Options) (*Assembler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Assembler{o: o, open: make(map[events.TraceID]*openTrace), contexts: map[string]events.TraceID{}, strs: interner{max: 1 << 14}}, nil
}

// Add takes ev at time now and reports whether it belongs to a trace. When
// MaxOpen is reached, the trace idle the longest is passed to emit first.
func (a *Assembler) Add(now time.Time, ev events.Event, emit func(*Finished)) bool {
	return a.AddArrived(now, now, ev, emit)
}

// AddArrived is Add for an event that arrived (was stored by the bus) at
// arrived: [Assembler.Oldest] reports the arrival of the oldest open span,
// from which a restarted runtime recovers.
func (a *Assembler) AddArrived(now, arrived time.Time, ev events.Event, emit func(*Finished)) bool {
	id, s, ok := FromEvent(ev)
	if !ok {
		a.st.Ignored++
		return false
	}
	a.add(now, arrived, id, s, emit)
	return true
}

// AddSpan takes one span of trace id at time now; see [Assembler.Add]. A
// span whose context id belongs to another open trace joins that trace.
func (a *Assembler) AddSpan(now time.Time, id events.TraceID, s Span, emit func(*Finished)) {
	a.add(now, now, id, s, emit)
}

// Oldest returns the arrival of the first span of the open trace that began
// first, and false when none is open. It scans the open traces.
func (a *Assembler) Oldest() (time.Time, bool) {
	if a.head == nil {
		return time.Time{}, false
	}
	oldest := a.head.firstNS
	for t := a.head.next; t != nil; t = t.next {
		oldest = min(oldest, t.firstNS)
	}
	return time.Unix(0, oldest), true
}

func (a *Assembler) add(now, arrived time.Time, id events.TraceID, s Span, emit func(*Finished)) {
	if s.ContextID != "" {
		if other, ok := a.contexts[s.ContextID]; ok {
			id = other
		}
	}
	t := a.open[id]
	if t == nil {
		if len(a.open) >= a.o.MaxOpen {
			a.st.Evicted++
			a.finish(a.head, true, emit)
		}
		t = &openTrace{id: id, firstNS: arrived.UnixNano()}
		a.open[id] = t
	} else {
		a.unlink(t)
	}
	t.lastNS = now.UnixNano()
	a.pushBack(t)
	if len(t.spans) >= a.o.MaxSpans {
		t.dropped++
		a.st.DroppedSpans++
		return
	}
	if s.ContextID != "" {
		if _, ok := a.contexts[s.ContextID]; !ok {
			a.contexts[s.ContextID] = id
			t.contexts = append(t.contexts, s.ContextID)
		}
	}
	s.Service, s.Name, s.Status = a.strs.get(s.Service), a.strs.get(s.Name), a.strs.get(s.Status)
	t.spans = append(t.spans, s)
	a.st.Added++
	a.st.Spans++
}

// Expire hands every trace quiet for the horizon at now to emit, oldest
// first, and returns how many it handed over.
func (a *Assembler) Expire(now time.Time, emit func(*Finished)) int {
	n, cut := 0, now.Add(-a.o.Horizon).UnixNano()
	for a.head != nil && a.head.lastNS <= cut {
		a.st.Finished++
		a.finish(a.head, false, emit)
		n++
	}
	return n
}

// Drain hands every open trace to emit, oldest first (at shutdown).
func (a *Assembler) Drain(emit func(*Finished)) {
	for a.head != nil {
		a.st.Finished++
		a.finish(a.head, false, emit)
	}
}

// Next returns when the oldest open trace will have been quiet for the
// horizon, and false when none is open.
func (a *Assembler) Next() (time.Time, bool) {
	if a.head == nil {
		return time.Time{}, false
	}
	return time.Unix(0, a.head.lastNS).Add(a.o.Horizon), true
}

// Stats returns the counters.
func (a *Assembler) Stats() Stats {
	st := a.st
	st.Open = len(a.open)
	return st
}

func (a *Assembler) finish(t *openTrace, evicted bool, emit func(*Finished)) {
	a.unlink(t)
	delete(a.open, t.id)
	for _, c := range t.contexts {
		delete(a.contexts, c)
	}
	a.st.Spans -= len(t.spans)
	if emit != nil {
		emit(&Finished{ID: t.id, Spans: t.spans, Dropped: t.dropped, Evicted: evicted, FirstArrival: time.Unix(0, t.firstNS)})
	}
}

func (a *Assembler) unlink(t *openTrace) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		a.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		a.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

func (a *Assembler) pushBack(t *openTrace) {
	t.prev = a.tail
	if a.tail != nil {
		a.tail.next = t
	} else {
		a.head = t
	}
	a.tail = t
}

// interner shares the strings of services, names and statuses between
// spans, up to max distinct strings (then it stops adding: bounded).
type interner struct {
	m   map[string]string
	max int
}

func (in *interner) get(s string) string {
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < in.max {
		in.m[s] = s
	}
	return s
}

// Merge returns the spans of a and b without duplicates (by event id; a
// span without event id is kept), a's first. It is how a late span joins a
// stored trace.
func Merge(a, b []Span) []Span {
	out := make([]Span, 0, len(a)+len(b))
	if len(a)+len(b) <= smallTrace {
		// Few spans: comparing beats a map.
		for _, list := range [][]Span{a, b} {
			for _, s := range list {
				if s.EventID == "" || !slices.ContainsFunc(out, func(o Span) bool { return o.EventID == s.EventID }) {
					out = append(out, s)
				}
			}
		}
		return out
	}
	seen := make(map[string]struct{}, len(a)+len(b))
	for _, list := range [][]Span{a, b} {
		for _, s := range list {
			if s.EventID != "" {
				if _, dup := seen[s.EventID]; dup {
					continue
				}
				seen[s.EventID] = struct{}{}
			}
			out = append(out, s)
		}
	}
	return out
}

// smallTrace is the span count up to which linear scans replace maps.
const smallTrace = 16
