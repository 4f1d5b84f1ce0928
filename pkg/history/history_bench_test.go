package history_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/history"
	"github.com/jetmon/jetmon/pkg/windowing"
)

// A day of 10 s windows of benchSeries series (3 events each), stored both
// as raw events (what `aggregator replay` reads) and as windows under their
// series' subjects (what the history API reads).
const (
	benchSeries = 10
	benchWindow = 10 * time.Second
	benchDay    = 24 * time.Hour
	benchPerWin = 3
)

// benchSetup fills a server for the benchmark; the parent benchmark calls
// it once, and its sub-benchmarks share the server.
func benchSetup(b *testing.B) (*jsbus.Bus, time.Time) {
	srv := natstest.Start(b)
	bus := natstest.Connect(b, srv.ClientURL(), func(c *jsbus.Config) { c.BatchMaxEvents = 100 })
	base := time.Now().Add(-benchDay - time.Hour).Truncate(time.Hour)
	rng := rand.New(rand.NewPCG(7, 7))
	n := int(benchDay / benchWindow)
	var raw []events.Event
	var ws []*events.AggregateEvent
	flush := func() {
		if err := firstErr(bus.PublishStored(b.Context(), raw)); err != nil {
			b.Fatal(err)
		}
		raw = raw[:0]
	}
	for i := range n {
		st := base.Add(time.Duration(i) * benchWindow)
		for s := range benchSeries {
			var vals []float64
			for k := range benchPerWin {
				v := 5 + rng.ExpFloat64()*40
				vals = append(vals, v)
				ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprintf("svc-%d", s))
				ev.Operation, ev.DurationMS, ev.Status = "op", v, events.StatusSuccess
				ev.Timestamp = st.Add(time.Duration(k) * benchWindow / benchPerWin)
				raw = append(raw, ev)
			}
			ws = append(ws, window(b, fmt.Sprintf("svc-%d", s), "op", st, benchWindow, vals, 0))
		}
		if len(raw) >= 3000 {
			flush()
		}
	}
	flush()
	store(b, bus.JetStream(), ws)
	// The aggregator's other copy, on PERFORMANCE, for the scan baseline.
	var futs []jetstream.PubAckFuture
	for _, w := range ws {
		m, err := jsbus.NewMsg(w)
		if err != nil {
			b.Fatal(err)
		}
		f, err := bus.JetStream().PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		if futs = append(futs, f); len(futs) == 2000 {
			waitAll(b, futs)
			futs = futs[:0]
		}
	}
	waitAll(b, futs)
	return bus, base
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkSeriesDay reads one series over 24 h: from the history API
// (WINDOWS, one subject, with and without re-bucketing) and, as baselines
// in the same run, the way it was possible before — `aggregator replay` of
// the stored events (the same library calls) keeping the series' windows —
// and reading every stored window of the day from PERFORMANCE, keeping the
// series' (what a per-series subject saves; the more series, the more).
func BenchmarkSeriesDay(b *testing.B) {
	bus, base := benchSetup(b)
	r, err := history.New(bus.JetStream(), history.Options{MaxRange: 48 * time.Hour, MaxPoints: 10000, MaxScan: 1 << 22, MaxSeries: 1000, Grace: 48 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	q := history.WindowQuery{Source: "svc-3", Type: string(events.OperationComplete), Operation: "op", From: base, To: base.Add(benchDay)}
	want := uint64(benchDay / benchWindow * benchPerWin)
	check := func(b *testing.B, res *history.WindowResult) {
		var n uint64
		for _, p := range res.Series[0].Points {
			n += p.Count
		}
		if n != want {
			b.Fatalf("counted %d events, want %d", n, want)
		}
	}
	for _, step := range []time.Duration{0, 5 * time.Minute} {
		b.Run(fmt.Sprintf("history-step=%s", step), func(b *testing.B) {
			b.ReportAllocs()
			q := q
			q.Step = step
			for b.Loop() {
				res, err := r.Windows(b.Context(), q)
				if err != nil {
					b.Fatal(err)
				}
				check(b, res)
			}
		})
	}
	b.Run("baseline-replay", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			agg := windowing.New(windowing.Options{Window: benchWindow, Lateness: time.Nanosecond})
			var n uint64
			keep := func(ws []*events.AggregateEvent) {
				for _, w := range ws {
					if w.Source == q.Source && w.Operation == q.Operation {
						n += w.Count
					}
				}
			}
			if _, err := bus.Replay(b.Context(), "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
				agg.Add(ev)
				keep(agg.Closed())
				return nil
			})); err != nil {
				b.Fatal(err)
			}
			keep(agg.Flush())
			if n != want {
				b.Fatalf("replay counted %d events, want %d", n, want)
			}
		}
	})
	b.Run("baseline-scan-all-windows", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n uint64
			if _, err := bus.Replay(b.Context(), string(events.MetricAggregated), jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
				if w, ok := ev.(*events.AggregateEvent); ok && w.Source == q.Source && w.Operation == q.Operation {
					n += w.Count
				}
				return nil
			})); err != nil {
				b.Fatal(err)
			}
			if n != want {
				b.Fatalf("scan counted %d events, want %d", n, want)
			}
		}
	})
}
