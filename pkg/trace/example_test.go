package trace_test

import (
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

// Assemble the events of one request and read its critical path.
func Example() {
	a, _ := trace.NewAssembler(trace.DefaultOptions())
	id := events.NewTraceID()
	root, child := events.NewSpanID(), events.NewSpanID()
	end := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	mk := func(svc, op string, span, parent events.SpanID, at time.Time, ms float64) *events.PerformanceEvent {
		ev := events.NewPerformanceEvent(events.OperationComplete, svc)
		ev.TraceID, ev.SpanID, ev.ParentSpanID = id, span, parent
		ev.Operation, ev.Timestamp, ev.DurationMS = op, at, ms
		return ev
	}
	var finished *trace.Finished
	emit := func(f *trace.Finished) { finished = f }
	now := time.Now()
	a.Add(now, mk("gateway", "GET /cart", root, events.SpanID{}, end, 100), emit)
	a.Add(now, mk("cart", "load", child, root, end.Add(-30*time.Millisecond), 60), emit)
	a.Expire(now.Add(trace.DefaultHorizon), emit)

	t := trace.Build(finished.ID, finished.Spans)
	for _, n := range t.Nodes {
		fmt.Printf("%*s%s %s: %.0f ms, self %.0f ms\n", 2*n.Depth, "", n.Service, n.Name, n.DurationMS(), float64(n.SelfNS)/1e6)
	}
	for _, s := range t.Critical {
		fmt.Printf("critical: %s %.0f ms\n", t.Nodes[s.Node].Service, float64(s.EndNS-s.StartNS)/1e6)
	}
	// Output:
	// gateway GET /cart: 100 ms, self 40 ms
	//   cart load: 60 ms, self 60 ms
	// critical: gateway 10 ms
	// critical: cart 60 ms
	// critical: gateway 30 ms
}
