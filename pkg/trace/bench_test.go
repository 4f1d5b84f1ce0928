package trace_test

import (
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

// BenchmarkAssemble measures spans/s through the assembler on one core,
// 3-span traces, with the building of each finished tree; its baseline in
// the same group is the conversion of the events alone (FromEvent).
func BenchmarkAssemble(b *testing.B) {
	const traces = 4096
	evs := make([]events.Event, 0, traces*3)
	now := time.Now()
	for range traces {
		id := events.NewTraceID()
		root := events.NewSpanID()
		child := events.NewSpanID()
		evs = append(evs, opEvent(id, root, events.SpanID{}, "a", now, 30), opEvent(id, child, root, "b", now, 20),
			opEvent(id, events.NewSpanID(), child, "c", now, 10))
	}
	b.Run("baseline=convert", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for _, ev := range evs {
				if _, _, ok := trace.FromEvent(ev); ok {
					n++
				}
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("assemble+build", func(b *testing.B) {
		b.ReportAllocs()
		a, _ := trace.NewAssembler(trace.Options{Horizon: time.Second, MaxOpen: 2 * traces, MaxSpans: 100})
		n := 0
		emit := func(f *trace.Finished) { _ = trace.Build(f.ID, f.Spans) }
		clock := time.Unix(0, 0)
		for b.Loop() {
			for _, ev := range evs {
				a.Add(clock, ev, emit)
				n++
			}
			clock = clock.Add(2 * time.Second)
			a.Expire(clock, emit)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	})
}
