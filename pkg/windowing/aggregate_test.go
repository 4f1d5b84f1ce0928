package windowing_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func op(source, name string, at time.Time, ms float64, failed bool) *events.PerformanceEvent {
	typ := events.OperationComplete
	if failed {
		typ = events.OperationFailed
	}
	ev := events.NewPerformanceEvent(typ, source)
	ev.Operation, ev.DurationMS, ev.Timestamp = name, ms, at
	return ev
}

func TestWindowsByEventTime(t *testing.T) {
	a := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: 5 * time.Second})
	a.Add(op("svc", "q", t0.Add(1*time.Second), 10, false))
	a.Add(op("svc", "q", t0.Add(9*time.Second), 30, true))
	a.Add(op("svc", "q", t0.Add(12*time.Second), 5, false)) // next window
	if got := a.Closed(); len(got) != 0 {
		t.Fatalf("closed before end+lateness: %v", got)
	}
	a.Add(op("svc", "q", t0.Add(8*time.Second), 20, false)) // out of order, within lateness
	a.Add(op("svc", "q", t0.Add(15*time.Second), 7, false)) // watermark reaches 10s+5s: the first window closes
	got := a.Closed()
	if len(got) != 1 {
		t.Fatalf("closed %d windows at watermark 15s, want 1", len(got))
	}
	w := got[0]
	if w.Count != 3 || w.ErrorCount != 1 || w.Min != 10 || w.Max != 30 || w.Avg != 20 || w.AggregatedType != events.OperationComplete ||
		!w.WindowStart.Equal(t0) || !w.WindowEnd.Equal(t0.Add(10*time.Second)) || w.Operation != "q" || w.Source != "svc" {
		t.Errorf("window %+v", w)
	}
	if err := w.Validate(); err != nil {
		t.Errorf("emitted aggregate is invalid: %v", err)
	}
	if out := a.Add(op("svc", "q", t0.Add(3*time.Second), 1, false)); out != windowing.Late {
		t.Errorf("an event for a closed window: outcome %v, want Late", out)
	}
	if st := a.Stats(); st.Late != 1 || st.Added != 5 || st.OpenWindows != 1 {
		t.Errorf("stats %+v", st)
	}
	rest := a.Flush()
	if len(rest) != 1 || rest[0].Count != 2 {
		t.Errorf("flush %v", rest)
	}
}

func TestIdleAdvanceClosesWindows(t *testing.T) {
	a := windowing.New(windowing.Options{})
	a.Add(op("svc", "q", t0, 1, false))
	if got := a.Advance(t0.Add(14 * time.Second)); len(got) != 0 {
		t.Fatalf("closed early: %v", got)
	}
	if got := a.Advance(t0.Add(15 * time.Second)); len(got) != 1 {
		t.Fatalf("idle advance to end+lateness closed %d windows", len(got))
	}
}

func TestQuantilesWithinOnePercentOfExact(t *testing.T) {
	a := windowing.New(windowing.Options{Window: time.Minute})
	r := rand.New(rand.NewPCG(3, 4))
	var ds []float64
	for i := range 50_000 {
		ms := math.Exp(1.2*r.NormFloat64()) * 15 // log-normal with a slow tail
		ds = append(ds, ms)
		a.Add(op("svc", "q", t0.Add(time.Duration(i)*time.Millisecond), ms, false))
	}
	w := a.Flush()[0]
	sort.Float64s(ds)
	rank := func(q float64) float64 { return ds[int(math.Ceil(q*float64(len(ds))))-1] }
	for _, c := range []struct {
		name   string
		got, q float64
	}{{"p50", w.P50, 0.5}, {"p90", w.P90, 0.9}, {"p95", w.P95, 0.95}, {"p99", w.P99, 0.99}} {
		if rel := math.Abs(c.got-rank(c.q)) / rank(c.q); rel > 0.01 {
			t.Errorf("%s = %.4f, exact %.4f: %.2f%% off, want within 1%%", c.name, c.got, rank(c.q), rel*100)
		}
	}
}

func TestSeriesIdentityAndOverflow(t *testing.T) {
	a := windowing.New(windowing.Options{MaxSeriesPerSource: 3})
	for i := range 10 {
		a.Add(op("noisy", fmt.Sprint("op", i), t0, 1, false))
	}
	a.Add(op("quiet", "only", t0, 1, false))
	ph := events.NewPerformanceEvent(events.PhaseEnd, "svc")
	ph.Phase, ph.DurationMS, ph.Timestamp = "parse", 2, t0
	m := events.NewPerformanceEvent(events.MetricRecorded, "svc")
	m.Metric, m.Value, m.Timestamp = "queue_depth", -3, t0
	start := events.NewPerformanceEvent(events.PhaseStart, "svc")
	start.Phase, start.Timestamp = "parse", t0
	a.Add(ph)
	a.Add(m)
	if a.Add(start) != windowing.NotAggregated {
		t.Error("phase.start was aggregated")
	}
	names := map[string]uint64{}
	for _, w := range a.Flush() {
		names[w.Source+"/"+string(w.AggregatedType)+"/"+w.Name()] = w.Count
	}
	if names["noisy/performance.operation.complete/"+windowing.OverflowName] != 7 || len(names) != 7 {
		t.Errorf("series %v: want 3 noisy series, an overflow series with 7, quiet, the phase and the metric", names)
	}
	if names["svc/performance.metric.recorded/queue_depth"] != 1 || names["svc/performance.phase.end/parse"] != 1 {
		t.Errorf("phase and metric series: %v", names)
	}
	if st := a.Stats(); st.Overflowed != 7 {
		t.Errorf("overflowed %d, want 7", st.Overflowed)
	}
}

// TestMergeEqualsWhole: aggregating in three partitions and merging gives
// the single aggregation (counts exact, quantiles within the sketch bound).
func TestMergeEqualsWhole(t *testing.T) {
	whole := windowing.New(windowing.Options{})
	parts := []*windowing.Aggregator{windowing.New(windowing.Options{}), windowing.New(windowing.Options{}), windowing.New(windowing.Options{})}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 30_000 {
		ev := op("svc", "q", t0.Add(time.Duration(i%9000)*time.Millisecond), math.Exp(r.NormFloat64())*20, i%17 == 0)
		whole.Add(ev)
		parts[i%3].Add(ev)
	}
	w := whole.Flush()[0]
	var ps []*events.AggregateEvent
	for _, p := range parts {
		ps = append(ps, p.Flush()...)
	}
	m, err := windowing.Merge(ps)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count != w.Count || m.ErrorCount != w.ErrorCount || m.Min != w.Min || m.Max != w.Max || m.ID != w.ID {
		t.Errorf("merged %+v, whole %+v", m, w)
	}
	if math.Abs(m.Sum-w.Sum) > 1e-6*w.Sum {
		t.Errorf("sum %v vs %v", m.Sum, w.Sum)
	}
	for _, q := range [][2]float64{{m.P50, w.P50}, {m.P95, w.P95}, {m.P99, w.P99}} {
		if math.Abs(q[0]-q[1])/q[1] > 0.02 {
			t.Errorf("merged quantile %v vs whole %v", q[0], q[1])
		}
	}
}

func TestDeterministicIDs(t *testing.T) {
	run := func() []string {
		a := windowing.New(windowing.Options{})
		for i := range 100 {
			a.Add(op(fmt.Sprint("s", i%3), "q", t0.Add(time.Duration(i)*time.Second), 1, false))
		}
		var ids []string
		for _, w := range a.Flush() {
			ids = append(ids, w.ID)
		}
		return ids
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 30 {
		t.Errorf("two runs over the same input emitted different ids (%d, %d)", len(a), len(b))
	}
}
