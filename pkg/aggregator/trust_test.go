package aggregator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/pkg/windowing"
	"github.com/jetmon/jetmon/streams"
)

// rawOp is an operation event as anyone with `nats pub` can send it: no
// validation on the way in.
func rawOp(id, source string, at time.Time, ms string) string {
	return `{"event_type":"performance.operation.complete","id":"` + id + `","source":"` + source +
		`","timestamp":"` + at.UTC().Format(time.RFC3339Nano) + `","operation":"op","duration_ms":` + ms + `}`
}

func pubRaw(t *testing.T, bus *jsbus.Bus, source, data string) {
	t.Helper()
	if _, err := bus.JetStream().Publish(t.Context(), "performance.operation.complete."+source, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, within, cond, what)
}

func (c *collected) bySource() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for _, w := range c.ws {
		out[w.Source] += w.Count
	}
	return out
}

func deadLetters(t *testing.T, bus *jsbus.Bus, subject string) []*nats.RawStreamMsg {
	t.Helper()
	st, err := bus.JetStream().Stream(t.Context(), streams.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.RawStreamMsg
	info, _ := st.Info(t.Context())
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err == nil && strings.HasPrefix(m.Subject, subject) {
			out = append(out, &nats.RawStreamMsg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		}
	}
	return out
}

// TestPoisonValuesDoNotStopAggregation: two durations of 1.7e308 (their sum
// is +Inf) are dead-lettered; every other source's windows, then and later,
// are published and all input is acknowledged.
func TestPoisonValuesDoNotStopAggregation(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	now := time.Now()
	pubRaw(t, bus, "poison", rawOp("p1", "poison", now, "1.7e308"))
	pubRaw(t, bus, "poison", rawOp("p2", "poison", now, "1.7e308"))
	pubRaw(t, bus, "good", rawOp("g1", "good", now, "5"))
	waitFor(t, 10*time.Second, "the first good window", func() bool { return col.bySource()["good"] == 1 })
	later := time.Now().Add(2 * time.Second)
	pubRaw(t, bus, "good", rawOp("g2", "good", later, "7"))
	pubRaw(t, bus, "other", rawOp("o1", "other", later, "7"))
	waitFor(t, 15*time.Second, "windows after the poison", func() bool {
		by := col.bySource()
		return by["good"] == 2 && by["other"] == 1
	})
	waitFor(t, 5*time.Second, "all input acknowledged", func() bool { return svc.Stats().Pending == 0 })
	if by := col.bySource(); by["poison"] != 0 {
		t.Errorf("the poison made a window: %v", by)
	}
	if st := svc.Stats(); st.BadInput["invalid_duration_ms"] != 2 {
		t.Errorf("bad input %v; want 2 invalid_duration_ms", st.BadInput)
	}
	if dl := deadLetters(t, bus, "deadletter.performance.operation.complete.poison"); len(dl) != 2 || !strings.Contains(dl[0].Header.Get(jsbus.HeaderDeadReason), "duration_ms") {
		t.Errorf("dead letters of the poison: %d", len(dl))
	}
	if !svc.Ready() {
		t.Error("not ready")
	}
}

// TestOneSourceClockMakesNoOtherLate: an event timestamped 55 min ahead is
// dead-lettered, and one 4 min ahead (within MaxFutureSkew) moves only its
// own source's event time: 40 events of other sources all count.
func TestOneSourceClockMakesNoOtherLate(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	now := time.Now()
	pubRaw(t, bus, "skewed", rawOp("s1", "skewed", now.Add(55*time.Minute), "1"))
	pubRaw(t, bus, "ahead", rawOp("a1", "ahead", now.Add(4*time.Minute), "1"))
	for i := range 40 {
		src := fmt.Sprint("svc-", i)
		pubRaw(t, bus, src, rawOp(fmt.Sprint("e", i), src, now.Add(time.Duration(i)*time.Millisecond), "3"))
	}
	waitFor(t, 15*time.Second, "40 events of 40 sources", func() bool {
		var n uint64
		for src, c := range col.bySource() {
			if strings.HasPrefix(src, "svc-") {
				n += c
			}
		}
		return n == 40
	})
	st := svc.Stats()
	if st.Late != 0 || st.BadInput["invalid_timestamp"] != 1 {
		t.Errorf("late %d, bad input %v; want none late and one invalid_timestamp", st.Late, st.BadInput)
	}
	time.Sleep(time.Second)
	if by := col.bySource(); by["skewed"] != 0 {
		t.Errorf("the event 55 min ahead was aggregated: %v", by)
	}
}

// TestEventsSentAgainCountOnce: the same 50 events (same ids) published
// three times, in batches and one by one, in different messages, count once.
func TestEventsSentAgainCountOnce(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	now := time.Now()
	var items []string
	for i := range 50 {
		items = append(items, rawOp(fmt.Sprint("dup-", i), "resender", now.Add(time.Duration(i)*time.Millisecond), "2"))
	}
	pubRaw(t, bus, "resender", "["+strings.Join(items[:25], ",")+"]")
	pubRaw(t, bus, "resender", "["+strings.Join(items[25:], ",")+"]")
	pubRaw(t, bus, "resender", "["+strings.Join(items, ",")+"]")
	for _, it := range items {
		pubRaw(t, bus, "resender", it)
	}
	waitFor(t, 10*time.Second, "the window", func() bool { return col.total() > 0 && svc.Stats().Pending == 0 })
	time.Sleep(500 * time.Millisecond)
	if n, st := col.total(), svc.Stats(); n != 50 || st.Duplicates != 100 {
		t.Errorf("windows count %d events (want 50), %d duplicates (want 100)", n, st.Duplicates)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func gauge(mfs map[string]*dto.MetricFamily, name string) float64 {
	if mf := mfs[name]; mf != nil && len(mf.Metric) == 1 {
		return mf.Metric[0].GetGauge().GetValue()
	}
	return -1
}

// TestSeriesAndMetricsStayBounded: 200 sources against a limit of 50 series
// go to the overflow series, which the overflow counter attributes to their
// sources; the gauges tell the truth when scraped; idle series are
// forgotten with their per-series metrics, whose labels are capped.
func TestSeriesAndMetricsStayBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	bus, svc := startService(t, aggregator.Options{
		Window: 2 * time.Second, Lateness: 200 * time.Millisecond, IdleAfter: 500 * time.Millisecond,
		MaxSeries: 50, SeriesTTL: 3 * time.Second, Registerer: reg,
	})
	now := time.Now().Truncate(2 * time.Second).Add(2 * time.Second) // the next window: it stays open a while
	long := strings.Repeat("x", 250)
	for i := range 200 {
		src := fmt.Sprint("svc-", i)
		if i == 0 {
			src = long
		}
		ev := events.NewPerformanceEvent(events.OperationComplete, src)
		ev.Operation, ev.DurationMS, ev.Timestamp = "op", 1, now
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "200 events", func() bool { return svc.Stats().Events == 200 })
	mfs := gather(t, reg)
	st := svc.Stats()
	if st.Series != 51 || st.Overflowed != 150 {
		t.Errorf("%d series, %d overflowed; want 51 (50 and the overflow series) and 150", st.Series, st.Overflowed)
	}
	if g := gauge(mfs, "jetmon_aggregator_series"); g != 51 {
		t.Errorf("series gauge %v, want 51", g)
	}
	if g := gauge(mfs, "jetmon_aggregator_open_windows"); g != 51 {
		t.Errorf("open windows gauge %v, want 51", g)
	}
	if g := gauge(mfs, "jetmon_aggregator_pending_messages"); g < 1 || int(g) != st.Pending {
		t.Errorf("pending gauge %v, stats %d", g, st.Pending)
	}
	if n := len(mfs["jetmon_aggregator_series_events_total"].GetMetric()); n != 51 {
		t.Errorf("%d per-series metrics, want 51", n)
	}
	for _, m := range mfs["jetmon_aggregator_series_events_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if len(l.GetValue()) > 128 {
				t.Errorf("label %s has %d bytes", l.GetName(), len(l.GetValue()))
			}
		}
	}
	var global float64
	for _, m := range mfs["jetmon_aggregator_overflow_events_total"].GetMetric() {
		global += m.GetCounter().GetValue()
	}
	if global != 150 || len(mfs["jetmon_aggregator_overflow_events_total"].GetMetric()) != 101 {
		t.Errorf("overflow counter: %v events in %d label sets; want 150 in 101 (100 sources and __other__)", global, len(mfs["jetmon_aggregator_overflow_events_total"].GetMetric()))
	}
	waitFor(t, 20*time.Second, "idle series forgotten", func() bool { return svc.Stats().Series == 0 })
	mfs = gather(t, reg)
	if n := len(mfs["jetmon_aggregator_series_events_total"].GetMetric()); n != 0 || gauge(mfs, "jetmon_aggregator_series") != 0 {
		t.Errorf("%d per-series metrics after the series were forgotten", n)
	}
	// With the idle series gone a new source gets its own series again.
	ev := events.NewPerformanceEvent(events.OperationComplete, "newcomer")
	ev.Operation, ev.DurationMS = "op", 1
	if err := bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	_ = bus.Flush(t.Context())
	waitFor(t, 10*time.Second, "the newcomer's series", func() bool {
		for _, m := range gather(t, reg)["jetmon_aggregator_series_events_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == "newcomer" {
					return true
				}
			}
		}
		return false
	})
}

// TestWindowRefusedForGoodIsDeadLettered: a window larger than the server
// takes is dead-lettered with its reason, its input acknowledged, and other
// windows go on.
func TestWindowRefusedForGoodIsDeadLettered(t *testing.T) {
	const maxPayload = 2048
	srv := natstest.Start(t, func(o *natsserver.Options) { o.MaxPayload = maxPayload })
	bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) { c.BatchMaxEvents = 1 })
	svc, err := aggregator.New(aggregator.Options{Bus: bus, Window: 2 * time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runService(t, svc)
	col := collectAggregates(t, bus)
	now := time.Now()
	// Durations over 13 decades: a sketch of about 1,500 bins.
	var evs []*events.PerformanceEvent
	check := windowing.New(windowing.Options{Window: 2 * time.Second})
	for i := range 1500 {
		ev := events.NewPerformanceEvent(events.OperationComplete, "wide")
		ev.Operation, ev.DurationMS, ev.Timestamp = "op", 1e-3*float64(int64(1)<<(i%43))*(1+float64(i)/1500), now
		evs = append(evs, ev)
		check.Add(ev)
	}
	if w, err := events.Marshal(check.Flush()[0]); err != nil || len(w) <= maxPayload {
		t.Fatalf("test precondition: the window has %d bytes (%v), no more than the server's %d", len(w), err, maxPayload)
	}
	for _, ev := range evs {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	small := events.NewPerformanceEvent(events.OperationComplete, "small")
	small.Operation, small.DurationMS, small.Timestamp = "op", 1, now.Add(3*time.Second)
	if err := bus.Publish(t.Context(), small); err != nil {
		t.Fatal(err)
	}
	_ = bus.Flush(t.Context())
	waitFor(t, 20*time.Second, "the small window", func() bool { return col.bySource()["small"] == 1 })
	waitFor(t, 5*time.Second, "all input acknowledged", func() bool { return svc.Stats().Pending == 0 })
	if st := svc.Stats(); st.WindowsDeadLettered != 1 {
		t.Errorf("%d windows dead-lettered, want 1", st.WindowsDeadLettered)
	}
	dl := deadLetters(t, bus, "deadletter.performance.metric.aggregated.wide")
	if len(dl) != 1 || !strings.Contains(dl[0].Header.Get(jsbus.HeaderDeadReason), "payload too large") {
		t.Fatalf("dead letters of the window: %v", dl)
	}
}

func runService(t *testing.T, svc *aggregator.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "ready", svc.Ready)
}

// TestDeletedStreamIsRecreated deletes the PERFORMANCE stream under a
// running service: it re-creates the stream and its consumer and
// aggregates what comes next.
func TestDeletedStreamIsRecreated(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	pubRaw(t, bus, "before", rawOp("b1", "before", time.Now(), "1"))
	waitFor(t, 10*time.Second, "a window before", func() bool { return col.bySource()["before"] == 1 })
	if err := bus.JetStream().DeleteStream(t.Context(), streams.Performance); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the consumer re-created", func() bool { return svc.Stats().ConsumersRecreated >= 1 })
	col2 := collectAggregates(t, bus) // the old subscription went with the stream
	pubRaw(t, bus, "after", rawOp("a1", "after", time.Now(), "1"))
	waitFor(t, 15*time.Second, "a window after", func() bool { return col2.bySource()["after"] == 1 })
	waitFor(t, 5*time.Second, "ready", svc.Ready)
	if _, err := bus.JetStream().Consumer(t.Context(), streams.Performance, "aggregator"); err != nil {
		t.Errorf("the durable consumer: %v", err)
	}
}

// TestReadyFalseWhileNothingMoves: while the server refuses the windows (its
// stream is full), the held input cannot be acknowledged: Ready turns false
// after StallAfter, and true again once the windows go out.
func TestReadyFalseWhileNothingMoves(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{
		Window: 2 * time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond, StallAfter: time.Second,
	})
	col := collectAggregates(t, bus)
	js := bus.JetStream()
	pubRaw(t, bus, "held", rawOp("h1", "held", time.Now(), "1"))
	st, err := js.Stream(t.Context(), streams.Performance)
	if err != nil {
		t.Fatal(err)
	}
	full := st.CachedInfo().Config
	full.MaxMsgs, full.Discard = int64(st.CachedInfo().State.Msgs), jetstream.DiscardNew
	if _, err := js.UpdateStream(t.Context(), full); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "not ready while the window cannot be published", func() bool { return !svc.Ready() })
	if n := col.total(); n != 0 {
		t.Fatalf("a window was published into a full stream: %d", n)
	}
	full.MaxMsgs, full.Discard = -1, jetstream.DiscardOld
	if _, err := js.UpdateStream(t.Context(), full); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the window", func() bool { return col.total() == 1 })
	waitFor(t, 5*time.Second, "ready again", svc.Ready)
}
