package trace_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

// A known topology — gateway calls auth and orders, orders calls db — run
// as 10 traces, one of them failing in db: the dependency map equals the
// topology, with exact counts, and the bottlenecks rank db first.
func TestAnalyzerKnownTopology(t *testing.T) {
	a, err := trace.NewAnalyzer(trace.AnalyzerOptions{Window: time.Minute, Windows: 5, MaxKeys: 100, Exemplars: 2})
	if err != nil {
		t.Fatal(err)
	}
	var slowest events.TraceID
	for i := range 10 {
		id := events.NewTraceID()
		extra := int64(i) // trace i's db call lasts 50+i ms
		spans := []trace.Span{
			sp(1, 0, "gateway", 0, 100+extra),
			sp(2, 1, "auth", 2, 12),
			sp(3, 1, "orders", 20, 90+extra),
			sp(4, 3, "db", 30, 80+extra),
		}
		if i == 9 {
			spans[3].Error = true
			slowest = id
		}
		a.Observe(trace.Build(id, spans))
	}
	from, to := time.Unix(0, t0).Add(-time.Hour), time.Unix(0, t0).Add(time.Hour)
	deps := a.Dependencies(from, to)
	got := map[string]string{}
	for _, d := range deps {
		got[d.Caller+"->"+d.Callee] = fmt.Sprintf("calls=%d errors=%d rate=%.4f", d.Calls, d.Errors, d.ErrorRate)
	}
	want := map[string]string{
		"gateway->auth":   "calls=10 errors=0 rate=0.0000",
		"gateway->orders": "calls=10 errors=0 rate=0.0000",
		"orders->db":      "calls=10 errors=1 rate=0.1000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dependency map %v, want %v", got, want)
	}
	for _, d := range deps {
		if d.Callee == "db" {
			// db durations are 50..59 ms; p95 (1% sketch) is the 10th of them, 59.
			if d.P95MS < 59*0.99 || d.P95MS > 59*1.01 || d.SlowestTrace[0] != slowest.String() || d.CallsPerSec != 10.0/60 {
				t.Fatalf("db edge %+v", d)
			}
		}
	}
	b := a.Bottlenecks(from, to, 2)
	// Critical path per trace: gateway 0-20 and 90+x..100+x (30 ms), orders
	// 20-30 and 80+x..90+x (20), db 30..80+x (50+x); auth is never on it.
	if len(b) != 2 || b[0].Service != "db" || b[1].Service != "gateway" || b[0].CriticalMS != 545 || b[0].Traces != 10 {
		t.Fatalf("bottlenecks %+v", b)
	}
	if total := 545.0 + 300 + 200; b[0].Share != 545/total {
		t.Fatalf("db share %v, want %v", b[0].Share, 545/total)
	}
}
