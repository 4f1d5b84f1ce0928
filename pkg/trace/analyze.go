package trace

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/jetmon/jetmon/pkg/events"
)

// AnalyzerOptions bound an [Analyzer].
type AnalyzerOptions struct {
	// Window is the width of the tumbling windows (by trace end time);
	// Windows how many of the newest it keeps. Both must be positive.
	Window  time.Duration
	Windows int
	// MaxKeys bounds the edges and the operations of one window each; past
	// it new keys are dropped and counted ([Analyzer.Dropped]).
	MaxKeys int
	// Exemplars is how many slowest trace ids each edge and operation keeps.
	Exemplars int
}

// DefaultAnalyzerOptions returns 1-minute windows, 60 of them, 1000 keys
// and 3 exemplars.
func DefaultAnalyzerOptions() AnalyzerOptions {
	return AnalyzerOptions{Window: time.Minute, Windows: 60, MaxKeys: 1000, Exemplars: 3}
}

// Validate names the first bad field.
func (o AnalyzerOptions) Validate() error {
	switch {
	case o.Window <= 0:
		return fmt.Errorf("%w: Window %s: must be positive", ErrOptions, o.Window)
	case o.Windows <= 0:
		return fmt.Errorf("%w: Windows %d: must be positive", ErrOptions, o.Windows)
	case o.MaxKeys <= 0:
		return fmt.Errorf("%w: MaxKeys %d: must be positive", ErrOptions, o.MaxKeys)
	case o.Exemplars < 0:
		return fmt.Errorf("%w: Exemplars %d: must not be negative", ErrOptions, o.Exemplars)
	}
	return nil
}

// Analyzer aggregates assembled traces into per-window service dependency
// edges (caller → callee, from parent spans of another service) and
// critical-path time per operation. Memory: Windows × MaxKeys × 2 entries,
// each with a DDSketch (1% relative accuracy). It is safe for concurrent
// use.
type Analyzer struct {
	o       AnalyzerOptions
	mu      sync.Mutex
	windows map[int64]*window // by window start, Unix ns
	dropped uint64
}

type window struct {
	edges map[Edge]*edgeAgg
	ops   map[Op]*opAgg
	crit  int64 // critical-path ns of every trace in the window
}

// Edge names a dependency: Caller's spans have children in Callee.
type Edge struct{ Caller, Callee string }

// Op names an operation: a span name in a service.
type Op struct{ Service, Operation string }

type edgeAgg struct {
	calls, errors uint64
	sk            *ddsketch.DDSketch
	slow          exemplars
}

type opAgg struct {
	critNS int64
	traces uint64
	slow   exemplars
}

// NewAnalyzer returns an empty Analyzer, or an error matching [ErrOptions].
func NewAnalyzer(o AnalyzerOptions) (*Analyzer, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Analyzer{o: o, windows: map[int64]*window{}}, nil
}

// Observe adds one trace to the window of its end time. A trace older than
// the kept windows is dropped and counted.
func (a *Analyzer) Observe(t *Tree) {
	if len(t.Nodes) == 0 {
		return
	}
	w := a.o.Window.Nanoseconds()
	start := t.EndNS - ((t.EndNS%w)+w)%w
	a.mu.Lock()
	defer a.mu.Unlock()
	win := a.windows[start]
	if win == nil {
		oldest := start
		for s := range a.windows {
			oldest = min(oldest, s)
		}
		if len(a.windows) >= a.o.Windows && start < oldest {
			a.dropped++
			return
		}
		win = &window{edges: map[Edge]*edgeAgg{}, ops: map[Op]*opAgg{}}
		a.windows[start] = win
		for len(a.windows) > a.o.Windows {
			delete(a.windows, oldest)
			oldest = start
			for s := range a.windows {
				oldest = min(oldest, s)
			}
		}
	}
	dur := t.EndNS - t.StartNS
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.Up >= 0 && t.Nodes[n.Up].Service != n.Service {
			k := Edge{Caller: t.Nodes[n.Up].Service, Callee: n.Service}
			e := win.edges[k]
			if e == nil {
				if len(win.edges) >= a.o.MaxKeys {
					a.dropped++
					continue
				}
				sk, _ := ddsketch.NewDefaultDDSketch(0.01)
				e = &edgeAgg{sk: sk}
				win.edges[k] = e
			}
			e.calls++
			if n.Error {
				e.errors++
			}
			_ = e.sk.Add(max(n.DurationMS(), 0))
			e.slow.add(a.o.Exemplars, t.ID, n.EndNS-n.StartNS)
		}
	}
	seen := map[Op]int64{}
	for _, s := range t.Critical {
		if s.Node >= 0 {
			n := &t.Nodes[s.Node]
			seen[Op{n.Service, n.Name}] += s.EndNS - s.StartNS
		}
	}
	for k, ns := range seen {
		o := win.ops[k]
		if o == nil {
			if len(win.ops) >= a.o.MaxKeys {
				a.dropped++
				continue
			}
			o = &opAgg{}
			win.ops[k] = o
		}
		o.critNS += ns
		o.traces++
		o.slow.add(a.o.Exemplars, t.ID, dur)
	}
	win.crit += dur
}

// Dropped counts traces and keys refused by the bounds.
func (a *Analyzer) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Dependency is one edge of the dependency map over a time range.
type Dependency struct {
	Caller       string   `json:"caller"`
	Callee       string   `json:"callee"`
	Calls        uint64   `json:"calls"`
	Errors       uint64   `json:"errors"`
	CallsPerSec  float64  `json:"calls_per_sec"`
	ErrorRate    float64  `json:"error_rate"`
	P95MS        float64  `json:"p95_ms"`
	SlowestTrace []string `json:"slowest_traces"`
}

// Bottleneck is an operation's share of the critical paths over a range.
type Bottleneck struct {
	Service      string   `json:"service"`
	Operation    string   `json:"operation"`
	CriticalMS   float64  `json:"critical_ms"`
	Share        float64  `json:"share"`
	Traces       uint64   `json:"traces"`
	SlowestTrace []string `json:"slowest_traces"`
}

// Dependencies returns the edges of the windows that start in [from, to),
// sorted by caller then callee. Rates are per second of the windows covered.
func (a *Analyzer) Dependencies(from, to time.Time) []Dependency {
	a.mu.Lock()
	defer a.mu.Unlock()
	type acc struct {
		d    Dependency
		sk   *ddsketch.DDSketch
		slow exemplars
	}
	all := map[Edge]*acc{}
	nwin := 0
	for start, w := range a.windows {
		if start < from.UnixNano() || start >= to.UnixNano() {
			continue
		}
		nwin++
		for k, e := range w.edges {
			x := all[k]
			if x == nil {
				sk, _ := ddsketch.NewDefaultDDSketch(0.01)
				x = &acc{d: Dependency{Caller: k.Caller, Callee: k.Callee}, sk: sk}
				all[k] = x
			}
			x.d.Calls += e.calls
			x.d.Errors += e.errors
			_ = x.sk.MergeWith(e.sk)
			for _, ex := range e.slow {
				x.slow.add(a.o.Exemplars, ex.id, ex.ns)
			}
		}
	}
	secs := max(float64(nwin)*a.o.Window.Seconds(), 1e-9)
	out := make([]Dependency, 0, len(all))
	for _, x := range all {
		d := x.d
		d.CallsPerSec = float64(d.Calls) / secs
		if d.Calls > 0 {
			d.ErrorRate = float64(d.Errors) / float64(d.Calls)
		}
		if q, err := x.sk.GetValueAtQuantile(0.95); err == nil {
			d.P95MS = q
		}
		d.SlowestTrace = x.slow.ids()
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Dependency) int {
		return cmp.Or(cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee))
	})
	return out
}

// Bottlenecks returns the operations on the critical paths of the traces
// that ended in the windows starting in [from, to), ranked by their share of
// all critical-path time (largest first), at most limit (0: all).
func (a *Analyzer) Bottlenecks(from, to time.Time, limit int) []Bottleneck {
	a.mu.Lock()
	defer a.mu.Unlock()
	type acc struct {
		b    Bottleneck
		ns   int64
		slow exemplars
	}
	all := map[Op]*acc{}
	var total int64
	for start, w := range a.windows {
		if start < from.UnixNano() || start >= to.UnixNano() {
			continue
		}
		total += w.crit
		for k, o := range w.ops {
			x := all[k]
			if x == nil {
				x = &acc{b: Bottleneck{Service: k.Service, Operation: k.Operation}}
				all[k] = x
			}
			x.ns += o.critNS
			x.b.Traces += o.traces
			for _, ex := range o.slow {
				x.slow.add(a.o.Exemplars, ex.id, ex.ns)
			}
		}
	}
	out := make([]Bottleneck, 0, len(all))
	for _, x := range all {
		b := x.b
		b.CriticalMS = float64(x.ns) / 1e6
		if total > 0 {
			b.Share = float64(x.ns) / float64(total)
		}
		b.SlowestTrace = x.slow.ids()
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Bottleneck) int {
		return cmp.Or(cmp.Compare(b.CriticalMS, a.CriticalMS), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// exemplars keeps the slowest trace ids seen, slowest first, one entry per
// trace.
type exemplars []exemplar

type exemplar struct {
	id events.TraceID
	ns int64
}

func (e *exemplars) add(limit int, id events.TraceID, ns int64) {
	for i, x := range *e {
		if x.id == id {
			if ns > x.ns {
				(*e)[i].ns = ns
				slices.SortStableFunc(*e, func(a, b exemplar) int { return cmp.Compare(b.ns, a.ns) })
			}
			return
		}
	}
	if len(*e) < limit {
		*e = append(*e, exemplar{id, ns})
	} else if limit > 0 && ns > (*e)[len(*e)-1].ns {
		(*e)[len(*e)-1] = exemplar{id, ns}
	} else {
		return
	}
	slices.SortStableFunc(*e, func(a, b exemplar) int { return cmp.Compare(b.ns, a.ns) })
}

func (e exemplars) ids() []string {
	out := make([]string, len(e))
	for i, x := range e {
		out[i] = x.id.String()
	}
	return out
}

// ErrNotFound is matched when a trace is not stored.
var ErrNotFound = errors.New("trace not found")
