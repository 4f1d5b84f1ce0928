package windowing_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
)

// Each window names the traces of its slowest events, slowest first; an
// event without a trace is not named; a trace counts once; merged parts name
// the merged maximum's trace first.
func TestWindowNamesSlowestTraces(t *testing.T) {
	a := windowing.New(windowing.Options{Window: 10 * time.Second})
	ids := make([]events.TraceID, 6)
	for i := range ids {
		ids[i] = events.NewTraceID()
	}
	add := func(a *windowing.Aggregator, id events.TraceID, ms float64) {
		ev := op("svc", "q", t0.Add(time.Second), ms, false)
		ev.TraceID = id
		if id.IsZero() {
			ev.SpanID = events.SpanID{}
		}
		a.Add(ev)
	}
	add(a, ids[0], 10)
	add(a, ids[1], 50)
	add(a, events.TraceID{}, 99) // slowest, but no trace
	add(a, ids[2], 30)
	add(a, ids[3], 20)
	add(a, ids[0], 40) // trace 0 again, now slower
	add(a, ids[4], 5)
	w := a.Flush()[0]
	if want := []events.TraceID{ids[1], ids[0], ids[2]}; !slices.Equal(w.SlowestTraceIDs, want) {
		t.Fatalf("slowest %v, want %v", w.SlowestTraceIDs, want)
	}
	back, err := events.Decode(w.AppendJSON(nil))
	if err != nil || !slices.Equal(back.(*events.AggregateEvent).SlowestTraceIDs, w.SlowestTraceIDs) {
		t.Fatalf("round trip: %v", err)
	}
	b := windowing.New(windowing.Options{Window: 10 * time.Second})
	add(b, ids[5], 120)
	m, err := windowing.Merge([]*events.AggregateEvent{w, b.Flush()[0]})
	if err != nil {
		t.Fatal(err)
	}
	if want := []events.TraceID{ids[5], ids[1], ids[0]}; !slices.Equal(m.SlowestTraceIDs, want) {
		t.Fatalf("merged slowest %v, want %v", m.SlowestTraceIDs, want)
	}
}
