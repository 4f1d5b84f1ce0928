package windowing_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
)

// clock returns an Options.Now fixed at t0 plus an hour, so that the test
// events (around t0) are in its past.
func clock() func() time.Time { return func() time.Time { return t0.Add(time.Hour) } }

func metric(source, name string, at time.Time, v float64) *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.MetricRecorded, source)
	ev.Metric, ev.Value, ev.Timestamp = name, v, at
	return ev
}

// TestValuesOutOfRangeNeverEnterAWindow: finite inputs never make a window
// that is not finite; values that are not finite or out of range are
// rejected with the field that is wrong.
func TestValuesOutOfRangeNeverEnterAWindow(t *testing.T) {
	cases := []struct {
		name  string
		ev    events.Event
		field string
	}{
		{"huge duration", op("svc", "q", t0, 1.7e308, false), "duration_ms"},
		{"duration over 1e10 ms", op("svc", "q", t0, 1.0000001e10, false), "duration_ms"},
		{"negative duration", op("svc", "q", t0, -1, false), "duration_ms"},
		{"NaN duration", op("svc", "q", t0, math.NaN(), false), "duration_ms"},
		{"infinite duration", op("svc", "q", t0, math.Inf(1), false), "duration_ms"},
		{"metric over 1e15", metric("svc", "m", t0, -1.1e15), "value"},
		{"timestamp before 1970", op("svc", "q", time.Unix(-1, 0), 1, false), "timestamp"},
		{"timestamp far ahead", op("svc", "q", t0.Add(time.Hour+6*time.Minute), 1, false), "timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := windowing.New(windowing.Options{Now: clock()})
			for range 2 {
				r := a.Aggregate(c.ev)
				var ve *events.ValidationError
				if r.Outcome != windowing.Rejected || !errors.As(r.Err, &ve) || ve.Field != c.field || !errors.Is(r.Err, events.ErrInvalid) {
					t.Fatalf("outcome %v, err %v; want Rejected with a validation error on %s", r.Outcome, r.Err, c.field)
				}
			}
			if err := a.Check(c.ev, t0.Add(time.Hour)); err == nil {
				t.Error("Check accepts it")
			}
			if st := a.Stats(); st.Rejected != 2 || st.Added != 0 || st.OpenWindows != 0 || st.Series != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	a := windowing.New(windowing.Options{Now: clock()})
	for range 3 {
		a.Add(op("svc", "q", t0, windowing.MaxDurationMS, false))
		a.Add(metric("svc", "m", t0, -windowing.MaxAbsValue))
	}
	for _, w := range a.Flush() {
		if err := w.Validate(); err != nil || w.Count != 3 {
			t.Errorf("window at the bounds: %v (%+v)", err, w)
		}
	}
}

// TestSumIsCompensated: a million additions of 0.1 sum to 100,000 exactly
// enough; naive summation is off by about 1e-6.
func TestSumIsCompensated(t *testing.T) {
	a := windowing.New(windowing.Options{Window: time.Hour, Now: clock(), DedupWindow: -1})
	for i := range 1_000_000 {
		a.Add(op("svc", "q", t0.Add(time.Duration(i)*time.Microsecond), 0.1, false))
	}
	w := a.Flush()[0]
	if math.Abs(w.Sum-100_000) > 1e-9 || math.Abs(w.Avg-0.1) > 1e-15 {
		t.Errorf("sum %.12f avg %.17f; want 100000 and 0.1", w.Sum, w.Avg)
	}
}

// TestEventTimeIsPerSource: a source whose clock runs ahead closes its own
// windows only; another source's events are neither late nor cut short.
func TestEventTimeIsPerSource(t *testing.T) {
	now := t0.Add(time.Hour)
	a := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: 5 * time.Second, Now: func() time.Time { return now }})
	a.Add(op("slow", "q", t0, 1, false))
	a.Add(op("fast", "q", t0, 1, false))
	if r := a.Aggregate(op("fast", "q", now.Add(4*time.Minute), 1, false)); r.Outcome != windowing.Added {
		t.Fatalf("an event within MaxFutureSkew: %v", r.Outcome)
	}
	closed := a.Closed()
	if len(closed) != 1 || closed[0].Source != "fast" {
		t.Fatalf("the fast source closed %v; want only its own first window", closed)
	}
	for i := range 40 {
		if out := a.Add(op("slow", "q", t0.Add(time.Duration(i)*100*time.Millisecond), 1, false)); out != windowing.Added {
			t.Fatalf("slow event %d: %v, want Added", i, out)
		}
	}
	if out := a.Add(op("fast", "q", t0.Add(time.Second), 1, false)); out != windowing.Late {
		t.Errorf("the fast source's own old window: %v, want Late", out)
	}
	if got := a.Watermark("slow"); !got.Equal(t0.Add(3900 * time.Millisecond)) {
		t.Errorf("slow watermark %v", got)
	}
	a.Add(op("slow", "q", t0.Add(15*time.Second), 1, false))
	closed = a.Closed()
	if len(closed) != 1 || closed[0].Source != "slow" || closed[0].Count != 41 {
		t.Fatalf("slow's first window: %v", closed)
	}
	if !a.IsClosed("slow", t0) || a.IsClosed("slow", t0.Add(10*time.Second)) || a.IsClosed("fast", now.Add(4*time.Minute).Truncate(10*time.Second)) {
		t.Error("IsClosed")
	}
}

// TestFarFutureEventMovesNoWatermark: an event beyond MaxFutureSkew is
// rejected and its source's watermark stays.
func TestFarFutureEventMovesNoWatermark(t *testing.T) {
	now := t0.Add(time.Hour)
	a := windowing.New(windowing.Options{MaxFutureSkew: time.Minute, Now: func() time.Time { return now }})
	a.Add(op("svc", "q", t0, 1, false))
	if out := a.Add(op("svc", "q", now.Add(55*time.Minute), 1, false)); out != windowing.Rejected {
		t.Fatalf("55 min ahead: %v", out)
	}
	if !a.Watermark("svc").Equal(t0) || len(a.Closed()) != 0 {
		t.Errorf("watermark %v after a rejected future event", a.Watermark("svc"))
	}
	if out := a.Add(op("svc", "q", t0.Add(time.Second), 1, false)); out != windowing.Added {
		t.Errorf("the next good event: %v", out)
	}
}

// TestIdleSourceClosesByTheClock: AdvanceIdle closes the windows of a quiet
// source while a busy one with older event time keeps its own.
func TestIdleSourceClosesByTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := windowing.New(windowing.Options{Window: time.Second, Lateness: time.Second})
		start := time.Now()
		a.Add(op("quiet", "q", start, 1, false))
		for i := range 20 {
			time.Sleep(100 * time.Millisecond)
			a.Add(op("busy", "q", start.Add(-time.Hour+time.Duration(i)*time.Millisecond), 1, false))
			if got := a.AdvanceIdle(time.Now(), 1500*time.Millisecond); len(got) > 0 {
				if got[0].Source != "quiet" || time.Since(start) < 2*time.Second {
					t.Fatalf("closed %v after %s", got, time.Since(start))
				}
				return
			}
		}
		t.Fatal("the quiet source's window never closed")
	})
}

// TestSameEventSentAgainCountsOnce: the same (source, id) within the
// horizon is a duplicate, batched or not; after the horizon or for another
// source it counts; memory is bounded by MaxDedupIDs.
func TestSameEventSentAgainCountsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := windowing.New(windowing.Options{Window: time.Hour, DedupWindow: 2 * time.Minute, MaxDedupIDs: 100})
		base := time.Now().Add(-time.Minute)
		evs := make([]*events.PerformanceEvent, 10)
		for i := range evs {
			evs[i] = op("svc", "q", base.Add(time.Duration(i)*time.Millisecond), float64(i), false)
		}
		for range 3 {
			for _, ev := range evs {
				a.Add(ev)
			}
			time.Sleep(30 * time.Second)
		}
		other := *evs[0]
		other.Source = "other" // the same id from another source is its own event
		if out := a.Add(&other); out != windowing.Added {
			t.Errorf("same id, other source: %v", out)
		}
		time.Sleep(2 * time.Minute)
		if out := a.Add(evs[0]); out != windowing.Added {
			t.Errorf("after the horizon: %v", out)
		}
		st := a.Stats()
		if st.Added != 12 || st.Duplicates != 20 {
			t.Errorf("stats %+v; want 12 added, 20 duplicates", st)
		}
		for range 250 {
			a.Add(op("svc", "q", base, 1, false))
		}
		if st := a.Stats(); st.DedupIDs != 100 || st.DedupEvicted == 0 {
			t.Errorf("dedup ids %d evicted %d; want 100 and some", st.DedupIDs, st.DedupEvicted)
		}
		var total uint64
		for _, w := range a.Flush() {
			total += w.Count
		}
		if total != 262 {
			t.Errorf("windows count %d", total)
		}
	})
}

// TestSeriesAreBoundedAndIdleOnesForgotten: MaxSeries sends further series
// to the global overflow series; series idle for SeriesTTL are forgotten
// (with OnEvict), so a new series gets its own place again.
func TestSeriesAreBoundedAndIdleOnesForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var evicted []windowing.Series
		a := windowing.New(windowing.Options{
			Window: time.Second, Lateness: time.Second, MaxSeries: 50, MaxSeriesPerSource: 1000, SeriesTTL: time.Minute,
			OnEvict: func(s windowing.Series) { evicted = append(evicted, s) },
		})
		now := time.Now()
		for i := range 50 {
			a.Add(op("idle", fmt.Sprint("op", i), now, 1, false))
		}
		r := a.Aggregate(op("live", "new", now, 1, false))
		if r.Outcome != windowing.Added || r.Overflow != windowing.GlobalOverflow || r.Series != (windowing.Series{Type: events.OperationComplete, Source: windowing.OverflowName, Name: windowing.OverflowName}) {
			t.Fatalf("the 51st series: %+v", r)
		}
		if st := a.Stats(); st.Series != 51 || st.Overflowed != 1 {
			t.Errorf("stats %+v", st)
		}
		time.Sleep(3 * time.Second)
		if n := len(a.AdvanceIdle(time.Now(), time.Second)); n != 51 {
			t.Fatalf("idle advance closed %d windows, want 51", n)
		}
		time.Sleep(time.Minute)
		a.AdvanceIdle(time.Now(), time.Second) // sweeps
		if st := a.Stats(); st.Series != 0 || st.Sources != 0 || st.SeriesEvicted != 51 || len(evicted) != 51 {
			t.Fatalf("after the TTL: %+v, %d evicted", st, len(evicted))
		}
		r = a.Aggregate(op("live", "new", time.Now(), 1, false))
		if r.Overflow != windowing.NoOverflow || r.Series.Source != "live" || r.Series.Name != "new" {
			t.Errorf("a new live series after idle ones were forgotten: %+v", r)
		}
	})
}

// TestPerSourceOverflowKeepsTheSource: past MaxSeriesPerSource the series is
// the source's overflow series.
func TestPerSourceOverflowKeepsTheSource(t *testing.T) {
	a := windowing.New(windowing.Options{MaxSeriesPerSource: 2, Now: clock()})
	a.Add(op("noisy", "a", t0, 1, false))
	a.Add(op("noisy", "b", t0, 1, false))
	r := a.Aggregate(op("noisy", "c", t0, 1, false))
	if r.Overflow != windowing.SourceOverflow || r.Series.Source != "noisy" || r.Series.Name != windowing.OverflowName {
		t.Errorf("%+v", r)
	}
}

// TestSharedLimitIsReturnedAtClose: aggregators sharing a SeriesLimit stay
// within it together, and Close gives the series back.
func TestSharedLimitIsReturnedAtClose(t *testing.T) {
	lim := windowing.NewSeriesLimit(10)
	a := windowing.New(windowing.Options{Limit: lim, Now: clock()})
	b := windowing.New(windowing.Options{Limit: lim, Now: clock()})
	for i := range 8 {
		a.Add(op("a", fmt.Sprint(i), t0, 1, false))
	}
	over := 0
	for i := range 8 {
		if b.Aggregate(op("b", fmt.Sprint(i), t0, 1, false)).Overflow == windowing.GlobalOverflow {
			over++
		}
	}
	if over != 6 || lim.Used() != 10 {
		t.Fatalf("%d overflowed, %d used; want 6 and 10", over, lim.Used())
	}
	a.Close()
	a.Close()
	if lim.Used() != 2 {
		t.Errorf("after Close %d used, want 2", lim.Used())
	}
}

func TestMergeRefusesNonFiniteParts(t *testing.T) {
	a := windowing.New(windowing.Options{Now: clock()})
	a.Add(op("svc", "q", t0, 1e10, false))
	w := a.Flush()[0]
	bad := *w
	bad.Sum = math.MaxFloat64
	if _, err := windowing.Merge([]*events.AggregateEvent{&bad, &bad}); !errors.Is(err, windowing.ErrNotFinite) {
		t.Errorf("merging sums that overflow: %v", err)
	}
	bad.Sum = math.Inf(1)
	if _, err := windowing.Merge([]*events.AggregateEvent{w, &bad}); !errors.Is(err, windowing.ErrNotFinite) {
		t.Errorf("merging an infinite part: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		o    windowing.Options
		want string
	}{
		{"negative MaxSeries", windowing.Options{MaxSeries: -1}, "MaxSeries"},
		{"negative skew", windowing.Options{MaxFutureSkew: -time.Second}, "MaxFutureSkew"},
		{"TTL shorter than a window", windowing.Options{Window: time.Minute, SeriesTTL: time.Second}, "SeriesTTL"},
		{"negative dedup ids", windowing.Options{MaxDedupIDs: -1}, "MaxDedupIDs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, c.want)
			}
		})
	}
	if err := windowing.DefaultOptions().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
