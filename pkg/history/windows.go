package history

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
	"github.com/jetmon/jetmon/streams"
)

// WindowQuery selects windows. With Source, Type and Operation all set it
// names one series (and reads only that series' subject); otherwise each
// set field filters (Source alone reads only that source's subjects).
type WindowQuery struct {
	// Source, Type (the aggregated event type, e.g.
	// performance.operation.complete) and Operation (the operation or
	// metric) select the series.
	Source, Type, Operation string
	// From and To bound the windows by their start: From <= start < To.
	From, To time.Time
	// Step re-buckets the windows: a bucket [From+k*Step, From+(k+1)*Step)
	// merges the windows that start in it. Zero keeps every window as it is
	// stored; a series with more than MaxPoints of them in the range is
	// then refused ([ErrBadQuery]), never cut short.
	Step time.Duration
}

// Point is one bucket of one series: counts are exact sums of the merged
// windows; Min, Max and Sum are exact; quantiles come from the merged
// DDSketch and so stay within its relative accuracy (1%).
type Point struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Windows    int       `json:"windows"`
	Count      uint64    `json:"count"`
	ErrorCount uint64    `json:"error_count"`
	LateCount  uint64    `json:"late_count,omitempty"`
	Sum        float64   `json:"sum"`
	Avg        float64   `json:"avg"`
	Min        float64   `json:"min"`
	Max        float64   `json:"max"`
	P50        float64   `json:"p50"`
	P90        float64   `json:"p90"`
	P95        float64   `json:"p95"`
	P99        float64   `json:"p99"`
	// SlowestTraceIDs names the traces of the bucket's slowest events,
	// slowest first: a stored window's own list, or for a re-bucketed
	// point the lists of its windows, those with the larger Max first,
	// without repeats, at most [windowing.SlowestTraces] (the first is the
	// trace of the point's Max; the rest are approximate).
	SlowestTraceIDs []string `json:"slowest_trace_ids,omitempty"`
}

// Series is the points of one series, in time order; buckets without
// windows are left out.
type Series struct {
	Source    string  `json:"source"`
	Type      string  `json:"type"`
	Operation string  `json:"operation"`
	Unit      string  `json:"unit,omitempty"`
	Points    []Point `json:"points"`
}

// WindowResult answers a [WindowQuery].
type WindowResult struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Step is the bucket width in seconds (0: windows as stored).
	Step float64 `json:"step"`
	// Scanned counts the stored windows read; Matched those in the answer.
	Scanned int      `json:"scanned"`
	Matched int      `json:"matched"`
	Series  []Series `json:"series"`
	// SeriesOmitted counts series left out beyond MaxSeries.
	SeriesOmitted int `json:"series_omitted,omitempty"`
}

type seriesKey struct{ source, typ, op string }

// Windows answers q from the WINDOWS stream. Errors about q's values wrap
// [ErrBadQuery]; a query that would read more than MaxScan stored windows
// fails with [ErrTooMuch]. Windows that cannot be decoded are skipped.
// Series come sorted by source, type and operation.
func (r *Reader) Windows(ctx context.Context, q WindowQuery) (*WindowResult, error) {
	if err := r.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	span := q.To.Sub(q.From)
	switch {
	case q.Step < 0:
		return nil, bad("step must not be negative")
	case q.Step > 0 && q.Step < time.Second:
		return nil, bad("step %s is shorter than 1s", q.Step)
	case q.Step > 0 && span/q.Step >= time.Duration(r.o.MaxPoints):
		return nil, bad("%s at step %s makes %d points, more than the %d allowed; take a coarser step", span, q.Step, span/q.Step, r.o.MaxPoints)
	}
	for _, f := range []struct{ name, v string }{{"source", q.Source}, {"type", q.Type}, {"operation", q.Operation}} {
		if len(f.v) > 256 {
			return nil, bad("%s is longer than 256 bytes", f.name)
		}
	}
	filter := streams.WindowsPrefix + ">"
	switch {
	case q.Source != "" && q.Type != "" && q.Operation != "":
		filter = streams.WindowSubject(events.Type(q.Type), q.Source, q.Operation)
	case q.Source != "":
		filter = streams.WindowsPrefix + events.SubjectToken(q.Source) + ".*"
	}
	res := &WindowResult{From: q.From.UTC(), To: q.To.UTC(), Step: q.Step.Seconds()}
	groups := map[seriesKey]map[int64][]*events.AggregateEvent{}
	units := map[seriesKey]string{}
	omitted := map[seriesKey]bool{}
	// Windows are stored when they close, about in order of their start:
	// the scan begins with what was stored at From and stops at the first
	// window that starts Grace after To.
	stopAt := q.To.Add(r.o.Grace)
	err := scanDirect(ctx, r.js.Conn(), streams.Windows, filter, q.From, r.o.MaxScan, func(data []byte) error {
		res.Scanned++
		w := decodeWindow(data)
		if w != nil && !w.WindowStart.Before(stopAt) {
			return errStop
		}
		if w == nil || w.WindowStart.Before(q.From) || !w.WindowStart.Before(q.To) ||
			(q.Source != "" && w.Source != q.Source) || (q.Type != "" && string(w.AggregatedType) != q.Type) ||
			(q.Operation != "" && w.Name() != q.Operation) {
			return nil
		}
		k := seriesKey{w.Source, string(w.AggregatedType), w.Name()}
		g := groups[k]
		if g == nil {
			if len(groups) >= r.o.MaxSeries {
				omitted[k] = true
				return nil
			}
			g = map[int64][]*events.AggregateEvent{}
			groups[k] = g
		}
		b := w.WindowStart.UnixNano()
		if q.Step > 0 {
			b = int64(w.WindowStart.Sub(q.From) / q.Step)
		} else if len(g) >= r.o.MaxPoints {
			if _, ok := g[b]; !ok {
				return bad("series %s/%s has more than %d windows in the range; give a step", w.Source, w.Name(), r.o.MaxPoints)
			}
		}
		g[b] = append(g[b], w)
		units[k] = w.Unit
		res.Matched++
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.SeriesOmitted = len(omitted)
	for k, g := range groups {
		s := Series{Source: k.source, Type: k.typ, Operation: k.op, Unit: units[k]}
		idx := make([]int64, 0, len(g))
		for b := range g {
			idx = append(idx, b)
		}
		slices.Sort(idx)
		for _, b := range idx {
			p, err := point(g[b], q, b)
			if err != nil {
				continue // a window with values out of range is not charted
			}
			s.Points = append(s.Points, p)
		}
		res.Series = append(res.Series, s)
	}
	slices.SortFunc(res.Series, cmpSeries)
	return res, nil
}

func cmpSeries(a, b Series) int {
	if c := strings.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.Operation, b.Operation)
}

// point merges the windows of one bucket. The same window stored twice (a
// redelivered publish outside the dedup window) counts once.
func point(ws []*events.AggregateEvent, q WindowQuery, b int64) (Point, error) {
	seen := make(map[string]bool, len(ws))
	uniq := ws[:0:0]
	for _, w := range ws {
		if !seen[w.ID] {
			seen[w.ID] = true
			uniq = append(uniq, w)
		}
	}
	start, end := uniq[0].WindowStart, uniq[0].WindowEnd
	if q.Step > 0 {
		start = q.From.Add(time.Duration(b) * q.Step).UTC()
		end = start.Add(q.Step)
	}
	var m *events.AggregateEvent
	if len(uniq) == 1 {
		m = uniq[0]
	} else {
		var err error
		if m, err = windowing.Merge(uniq); err != nil {
			return Point{}, fmt.Errorf("history: merge: %w", err)
		}
	}
	p := Point{
		Start: start, End: end, Windows: len(uniq), Count: m.Count, ErrorCount: m.ErrorCount, LateCount: m.LateCount,
		Sum: m.Sum, Avg: m.Avg, Min: m.Min, Max: m.Max, P50: m.P50, P90: m.P90, P95: m.P95, P99: m.P99,
	}
	for _, id := range m.SlowestTraceIDs {
		if len(p.SlowestTraceIDs) == windowing.SlowestTraces {
			break
		}
		p.SlowestTraceIDs = append(p.SlowestTraceIDs, id.String())
	}
	for _, v := range []float64{p.Sum, p.Avg, p.Min, p.Max, p.P50, p.P90, p.P95, p.P99} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Point{}, windowing.ErrNotFinite
		}
	}
	return p, nil
}

// decodeWindow returns the window in data, or nil for anything else (a
// message that cannot be decoded is skipped, not fatal to a query).
func decodeWindow(data []byte) *events.AggregateEvent {
	ev, _ := events.Decode(data)
	w, _ := ev.(*events.AggregateEvent)
	return w
}
