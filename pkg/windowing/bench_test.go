package windowing_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
)

// BenchmarkAdd is the aggregation stage alone (series lookup and sketch
// insert, no I/O) over 1,000 series; events/s = 1e9 / ns/op. "dedup" gives
// every event a fresh id within the dedup horizon (60,000 ids remembered);
// "no_dedup" turns the dedup set off.
func BenchmarkAdd(b *testing.B) {
	evs := make([]*events.PerformanceEvent, 4096)
	for i := range evs {
		evs[i] = op(fmt.Sprint("svc-", i%10), fmt.Sprint("op-", i%100), t0.Add(time.Duration(i)*time.Microsecond), float64(i%500)+0.5, i%50 == 0)
	}
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = events.NewID()
	}
	for _, dedup := range []bool{false, true} {
		name := "no_dedup"
		if dedup {
			name = "dedup"
		}
		b.Run(name, func(b *testing.B) {
			tick := t0.Add(time.Hour)
			o := windowing.Options{Window: time.Hour, DedupWindow: -1, Now: func() time.Time { tick = tick.Add(time.Millisecond); return tick }}
			if dedup {
				o.DedupWindow = time.Minute
			}
			a := windowing.New(o)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i&4095]
				ev.ID = ids[i&(1<<16-1)]
				a.Add(ev)
				i++
			}
			b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "events/s")
		})
	}
}

// BenchmarkBytesPerSeries reports the heap each live series costs (one open
// window with a few values) at 1k, 10k and 100k series.
func BenchmarkBytesPerSeries(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			evs := make([]events.Event, n)
			for i := range evs {
				evs[i] = op(fmt.Sprint("svc-", i%100), fmt.Sprint("op-", i), t0, float64(i%97)+1, false)
			}
			var per float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				a := windowing.New(windowing.Options{MaxSeriesPerSource: n, MaxSeries: n, DedupWindow: -1, Now: func() time.Time { return t0.Add(time.Hour) }})
				for _, ev := range evs {
					a.Add(ev)
					a.Add(ev)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				per = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
				runtime.KeepAlive(a)
			}
			b.ReportMetric(per, "bytes/series")
		})
	}
}

// BenchmarkBytesPerDedupID reports the heap each remembered event id costs
// (the dedup set and its queue) at 100k ids.
func BenchmarkBytesPerDedupID(b *testing.B) {
	const n = 100_000
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = op("svc", "op", t0.Add(time.Duration(i)*time.Microsecond), 1, false)
	}
	var per float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := windowing.New(windowing.Options{Window: time.Hour, MaxDedupIDs: n, Now: func() time.Time { return t0.Add(time.Hour) }})
		for _, ev := range evs {
			a.Add(ev)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(a)
	}
	b.ReportMetric(per, "bytes/id")
}
