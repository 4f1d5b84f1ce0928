package trace_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

func opEvent(id events.TraceID, span, parent events.SpanID, svc string, at time.Time, durMS float64) *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.OperationComplete, svc)
	ev.TraceID, ev.SpanID, ev.ParentSpanID = id, span, parent
	ev.Timestamp, ev.Operation, ev.DurationMS = at, "op-"+svc, durMS
	return ev
}

func TestAssemblerHorizon(t *testing.T) {
	a, err := trace.NewAssembler(trace.Options{Horizon: 10 * time.Second, MaxOpen: 10, MaxSpans: 10})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var got []*trace.Finished
	emit := func(f *trace.Finished) { got = append(got, f) }
	t1, t2 := events.NewTraceID(), events.NewTraceID()
	a.Add(now, opEvent(t1, sid(1), sid(0), "a", now, 5), emit)
	a.Add(now.Add(4*time.Second), opEvent(t2, sid(1), sid(0), "a", now, 5), emit)
	a.Add(now.Add(8*time.Second), opEvent(t1, sid(2), sid(1), "b", now, 1), emit) // keeps t1 open
	if a.Add(now, events.NewControlEvent(events.MonitoringEnabled, "ops"), emit) {
		t.Fatal("a control event joined a trace")
	}
	if n := a.Expire(now.Add(13*time.Second), emit); n != 0 {
		t.Fatalf("expired %d traces before the horizon", n)
	}
	if n := a.Expire(now.Add(14*time.Second), emit); n != 1 || got[0].ID != t2 || len(got[0].Spans) != 1 {
		t.Fatalf("at 14s: expired %d, %+v", n, got)
	}
	if next, ok := a.Next(); !ok || !next.Equal(now.Add(18*time.Second)) {
		t.Fatalf("Next = %v %v, want 18s", next, ok)
	}
	a.Expire(now.Add(18*time.Second), emit)
	if len(got) != 2 || got[1].ID != t1 || len(got[1].Spans) != 2 || got[1].Evicted {
		t.Fatalf("at 18s: %+v", got)
	}
	st := a.Stats()
	if st != (trace.Stats{Added: 3, Ignored: 1, Finished: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

// A million traces through an assembler bounded to 100 open traces: at most
// 100 are held, every other one is handed over early and counted.
func TestAssemblerBounds(t *testing.T) {
	a, _ := trace.NewAssembler(trace.Options{Horizon: time.Hour, MaxOpen: 100, MaxSpans: 3})
	now := time.Unix(1000, 0)
	var evicted, spans int
	emit := func(f *trace.Finished) {
		if !f.Evicted {
			t.Errorf("trace %v finished, not evicted", f.ID)
		}
		evicted++
		spans += len(f.Spans)
	}
	const n = 1_000_000
	for i := range n {
		id := events.TraceID{15: 1}
		id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
		a.AddSpan(now, id, trace.Span{EventID: "x", Service: "s", EndNS: 1}, emit)
	}
	big := events.NewTraceID()
	for range 10 {
		a.AddSpan(now, big, trace.Span{Service: "s"}, emit)
	}
	st := a.Stats()
	if evicted != n-100+1 || st.Evicted != uint64(evicted) || st.Open != 100 || st.DroppedSpans != 7 || st.Spans != 99+3 {
		t.Fatalf("evicted %d, stats %+v", evicted, st)
	}
	var last *trace.Finished
	a.Drain(func(f *trace.Finished) { last = f })
	if last.ID != big || last.Dropped != 7 || len(last.Spans) != 3 || a.Stats().Open != 0 {
		t.Fatalf("last drained %+v, stats %+v", last, a.Stats())
	}
	if _, err := trace.NewAssembler(trace.Options{Horizon: 1, MaxOpen: 0, MaxSpans: 1}); !errors.Is(err, trace.ErrOptions) {
		t.Fatalf("MaxOpen 0: %v", err)
	}
}

// TestBytesPerOpenTrace measures the heap held per open trace of one span
// (the documented figure, docs/traces.md) and checks it stays under a bound.
func TestBytesPerOpenTrace(t *testing.T) {
	const n = 200_000
	a, _ := trace.NewAssembler(trace.Options{Horizon: time.Hour, MaxOpen: n, MaxSpans: 10})
	now := time.Unix(1000, 0)
	ids := make([]string, n) // event ids exist before the assembler sees them
	for i := range ids {
		ids[i] = events.NewID()
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		id := events.NewTraceID()
		a.AddSpan(now, id, trace.Span{ID: events.NewSpanID(), EventID: ids[i], Type: events.OperationComplete, Service: "svc", Name: "op", EndNS: 1}, nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per open trace of one span (1 M open traces: %.0f MiB)", per, per*1e6/(1<<20))
	if per > 512 {
		t.Fatalf("%.0f bytes per open trace, want at most 512", per)
	}
	runtime.KeepAlive(a)
}

// A validation run whose events were made separately (each with its own
// trace, as events.NewValidationEvent does) but share a context_id is one
// trace: the run from started to completed, its phase under it.
func TestAssemblerJoinsContextAcrossTraces(t *testing.T) {
	a, _ := trace.NewAssembler(trace.Options{Horizon: time.Second, MaxOpen: 10, MaxSpans: 10})
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	started := events.NewValidationEvent(events.ValidationStarted, "orders", "order-7")
	started.Timestamp = at
	phaseStart := events.NewPerformanceEvent(events.PhaseStart, "orders")
	phaseStart.SetTrace(started.Trace().Child())
	phaseStart.ContextID, phaseStart.Phase, phaseStart.Timestamp = "order-7", "validation", at
	completed := events.NewValidationEvent(events.ValidationCompleted, "orders", "order-7") // another trace
	completed.Timestamp, completed.DurationMS = at.Add(40*time.Millisecond), 40
	phaseEnd := events.NewPerformanceEvent(events.PhaseEnd, "orders")
	phaseEnd.SetTrace(completed.Trace().Child())
	phaseEnd.ContextID, phaseEnd.Phase, phaseEnd.Timestamp, phaseEnd.DurationMS = "order-7", "validation", at.Add(39*time.Millisecond), 39
	unrelated := events.NewValidationEvent(events.ValidationStarted, "orders", "order-8")
	var got []*trace.Finished
	for _, ev := range []events.Event{started, phaseStart, completed, phaseEnd, unrelated} {
		a.Add(at, ev, nil)
	}
	a.Drain(func(f *trace.Finished) { got = append(got, f) })
	if len(got) != 2 || got[0].ID != started.TraceID || len(got[0].Spans) != 4 || len(got[1].Spans) != 1 {
		t.Fatalf("finished %d traces: %+v", len(got), got)
	}
	tr := trace.Build(got[0].ID, got[0].Spans)
	if want := "orders self=1 crit=1\n orders self=39 crit=39\npath: orders:39 orders:1"; shape(tr) != want {
		t.Fatalf("got\n%s\nwant\n%s", shape(tr), want)
	}
	if tr.Nodes[0].Type != events.ValidationCompleted || tr.Nodes[1].Type != events.PhaseEnd || tr.Nodes[1].Orphan {
		t.Fatalf("nodes %+v", tr.Nodes)
	}
	// The context is forgotten with its trace: a later run of order-7 is new.
	again := events.NewValidationEvent(events.ValidationStarted, "orders", "order-7")
	a.Add(at, again, nil)
	a.Drain(func(f *trace.Finished) { got = append(got, f) })
	if got[2].ID != again.TraceID {
		t.Fatalf("a later run joined %v", got[2].ID)
	}
}
