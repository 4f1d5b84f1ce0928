package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func memBus(t *testing.T) *events.MemoryBus {
	t.Helper()
	bus := events.NewMemoryBus(events.MemoryOptions{})
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

func eventDriven(t *testing.T, bus events.Publisher, o coordinator.Options) *coordinator.EventDrivenCoordinator {
	t.Helper()
	if o.Source == "" {
		o.Source = "svc"
	}
	c, err := coordinator.NewEventDriven(bus, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func flush(t *testing.T, c *coordinator.EventDrivenCoordinator) {
	t.Helper()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNoopCostsNothing(t *testing.T) {
	var c coordinator.Coordinator = coordinator.Noop{}
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		c.OperationComplete(ctx, "op", time.Millisecond)
		c.PhaseStart(ctx, "p", "f")
		c.Time(ctx, "op")()
		c.RecordMetric(ctx, "m", 1, "")
	})
	if n != 0 || c.Enabled() {
		t.Errorf("Noop allocates %.1f per call and Enabled()=%v", n, c.Enabled())
	}
}

func TestEventDrivenPublishesTheTaxonomy(t *testing.T) {
	bus := memBus(t)
	c := eventDriven(t, bus, coordinator.Options{Service: "checkout", Version: "1.2.3", Host: "h1"})
	root := events.NewRootTrace()
	ctx := coordinator.WithContextID(events.ContextWithTrace(context.Background(), root), "req-1")
	c.PhaseStart(ctx, "parse", "order.items")
	c.PhaseEnd(ctx, "parse", "order.items", 1500*time.Microsecond, events.StatusSuccess)
	c.OperationComplete(ctx, "db.query", 12*time.Millisecond)
	c.OperationFailed(ctx, "payment", 3*time.Millisecond, errors.New("declined"))
	c.RecordMetric(ctx, "queue_depth", 17, "jobs")
	c.ResourceAllocated(ctx, "conn", 2)
	c.ResourceReleased(ctx, "conn", 1)
	c.Time(ctx, "timed")()
	flush(t, c)

	got := bus.Published()
	want := []events.Type{
		events.PhaseStart, events.PhaseEnd, events.OperationComplete, events.OperationFailed,
		events.MetricRecorded, events.ResourceAllocated, events.ResourceReleased, events.OperationComplete,
	}
	if len(got) != len(want) {
		t.Fatalf("published %d events, want %d", len(got), len(want))
	}
	for i, ev := range got {
		p := ev.(*events.PerformanceEvent)
		if p.Type != want[i] || p.Source != "svc" || p.ContextID != "req-1" || p.TraceID != root.TraceID ||
			p.ParentSpanID != root.SpanID || p.Attributes["service"] != "checkout" || p.Attributes["host"] != "h1" {
			t.Errorf("event %d: %+v", i, p)
		}
	}
	end := got[1].(*events.PerformanceEvent)
	failed := got[3].(*events.PerformanceEvent)
	metric := got[4].(*events.PerformanceEvent)
	if end.Phase != "parse" || end.DurationMS != 1.5 || end.FieldPath != "order.items" ||
		failed.Operation != "payment" || failed.Error != "declined" || failed.Status != events.StatusFailure ||
		metric.Metric != "queue_depth" || metric.Value != 17 || metric.Unit != "jobs" {
		t.Errorf("fields: %+v %+v %+v", end, failed, metric)
	}
	if st := c.Stats(); st.Published != 8 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// blockingBus blocks every Publish until released.
type blockingBus struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (b *blockingBus) Publish(ctx context.Context, _ events.Event) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	return nil
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &blockingBus{release: make(chan struct{})}
		c := eventDriven(t, bus, coordinator.Options{QueueSize: 10})
		ctx := context.Background()
		start := time.Now()
		for range 100 {
			c.OperationComplete(ctx, "op", time.Millisecond)
		}
		c.RecordMetric(ctx, "m", 1, "")
		if time.Since(start) != 0 {
			t.Errorf("callers waited %s on a full queue", time.Since(start))
		}
		// How many records the publisher goroutine took into its batch before
		// blocking varies; every other record must be counted as dropped.
		st := c.Stats()
		if st.Dropped == 0 || st.Enqueued+st.Dropped != 101 ||
			st.DroppedByType[events.OperationComplete]+st.DroppedByType[events.MetricRecorded] != st.Dropped {
			t.Errorf("drops %+v", st)
		}
		close(bus.release)
		flush(t, c)
		if got := c.Stats(); got.Published+got.Dropped != 101 {
			t.Errorf("published %d + dropped %d != 101", got.Published, got.Dropped)
		}
	})
}

func TestFullQueueBlocksAtMostBlockFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &blockingBus{release: make(chan struct{})}
		c := eventDriven(t, bus, coordinator.Options{QueueSize: 1, BlockFor: 20 * time.Millisecond})
		ctx := context.Background()
		for range 3 {
			c.OperationComplete(ctx, "op", 0)
		}
		synctest.Wait() // the publisher is now stuck in Publish
		// The queue holds one record; the first caller that finds it full
		// waits exactly the bound, then drops its record.
		var waited time.Duration
		for range 5 {
			start := time.Now()
			c.OperationComplete(ctx, "op", 0)
			if waited = time.Since(start); waited != 0 {
				break
			}
		}
		if waited != 20*time.Millisecond {
			t.Errorf("a caller on a full queue waited %s, want exactly the 20ms bound", waited)
		}
		close(bus.release)
	})
}

func TestSamplingKeepsWholeTraces(t *testing.T) {
	bus := memBus(t)
	c := eventDriven(t, bus, coordinator.Options{SampleRate: 0.3, QueueSize: 1 << 16})
	const traces, perTrace = 2000, 4
	for range traces {
		ctx := events.ContextWithTrace(context.Background(), events.NewRootTrace())
		for range perTrace {
			c.OperationComplete(ctx, "op", time.Millisecond)
		}
	}
	flush(t, c)
	byTrace := map[events.TraceID]int{}
	for _, ev := range bus.Published() {
		byTrace[ev.Metadata().TraceID]++
	}
	for id, n := range byTrace {
		if n != perTrace {
			t.Fatalf("trace %s kept %d of %d events: sampling split a trace", id, n, perTrace)
		}
	}
	if share := float64(len(byTrace)) / traces; math.Abs(share-0.3) > 0.05 {
		t.Errorf("kept %.2f of the traces, want about 0.3", share)
	}
}

func TestRateLimitDedupFilterEnrich(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := memBus(t)
		ctx := context.Background()

		limited := eventDriven(t, bus, coordinator.Options{RateLimit: 10, Burst: 10})
		for i := range 100 {
			limited.OperationComplete(ctx, "op", time.Duration(i))
		}
		flush(t, limited)
		if st := limited.Stats(); st.Published != 10 || st.RateLimited != 90 {
			t.Errorf("rate limit 10/s, burst 10: %+v", st)
		}

		dedup := eventDriven(t, bus, coordinator.Options{DedupWindow: time.Second})
		for range 5 {
			dedup.OperationComplete(ctx, "same", time.Millisecond)
		}
		dedup.OperationComplete(ctx, "other", time.Millisecond)
		flush(t, dedup)
		if st := dedup.Stats(); st.Published != 2 || st.Deduplicated != 4 {
			t.Errorf("dedup: %+v", st)
		}

		enriched := eventDriven(t, bus, coordinator.Options{
			ShouldMonitor: func(ev events.Event) bool { return ev.Metadata().Type != events.MetricRecorded },
			Enrich:        func(ev events.Event) { ev.Metadata().Attributes = map[string]string{"region": "eu-1"} },
		})
		enriched.RecordMetric(ctx, "m", 1, "")
		enriched.OperationComplete(ctx, "kept", 0)
		flush(t, enriched)
		last := bus.Published()[len(bus.Published())-1]
		if st := enriched.Stats(); st.Filtered != 1 || st.Published != 1 || last.Metadata().Attributes["region"] != "eu-1" {
			t.Errorf("filter/enrich: %+v, last %+v", st, last.Metadata())
		}
	})
}

type panicBus struct{}

func (panicBus) Publish(context.Context, events.Event) error { panic("bus exploded") }

func TestPanicsAreContained(t *testing.T) {
	c := eventDriven(t, panicBus{}, coordinator.Options{})
	c.OperationComplete(context.Background(), "op", 0)
	flush(t, c)
	if st := c.Stats(); st.Panics != 1 {
		t.Errorf("a panicking bus: %+v", st)
	}
	bus := memBus(t)
	e := eventDriven(t, bus, coordinator.Options{Enrich: func(events.Event) { panic("enricher exploded") }})
	e.OperationComplete(context.Background(), "op", 0)
	flush(t, e)
	if st := e.Stats(); st.Panics != 1 {
		t.Errorf("a panicking enricher: %+v", st)
	}
}

func TestDirectQuantilesWithinOnePercent(t *testing.T) {
	c := coordinator.NewDirect()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	var ds []float64
	for i := range 20_000 {
		ms := math.Exp(r.NormFloat64()) * 20
		ds = append(ds, ms)
		d := time.Duration(ms * float64(time.Millisecond))
		if i%10 == 0 {
			c.OperationFailed(ctx, "db", d, errors.New("x"))
		} else {
			c.OperationComplete(ctx, "db", d)
		}
	}
	sort.Float64s(ds)
	o, ok := c.Snapshot().Operation("db")
	if !ok || o.Count != 20_000 || o.Errors != 2000 || math.Abs(o.ErrorRate-0.1) > 1e-9 {
		t.Fatalf("snapshot %+v", o)
	}
	exact := func(q float64) float64 { return ds[int(q*float64(len(ds)-1))] }
	for _, q := range []struct {
		name string
		got  float64
		q    float64
	}{{"p50", o.P50MS, 0.5}, {"p95", o.P95MS, 0.95}, {"p99", o.P99MS, 0.99}} {
		if rel := math.Abs(q.got-exact(q.q)) / exact(q.q); rel > 0.011 {
			t.Errorf("%s = %.3f, exact %.3f: %.2f%% off", q.name, q.got, exact(q.q), rel*100)
		}
	}
	if math.Abs(o.MaxMS-ds[len(ds)-1]) > 1e-3 {
		t.Errorf("max %.3f, want %.3f", o.MaxMS, ds[len(ds)-1])
	}
	c.RecordMetric(ctx, "depth", 3, "jobs")
	c.RecordMetric(ctx, "depth", 9, "jobs")
	c.ResourceAllocated(ctx, "conn", 5)
	c.ResourceReleased(ctx, "conn", 2)
	c.PhaseEnd(ctx, "parse", "f", time.Millisecond, events.StatusFailure)
	s := c.Snapshot()
	if s.Metrics[0].Max != 9 || s.Metrics[0].Last != 9 || s.Resources[0].InUse != 3 {
		t.Errorf("metrics/resources %+v %+v", s.Metrics, s.Resources)
	}
	if p, ok := s.Operation("phase:parse"); !ok || p.Errors != 1 {
		t.Errorf("phase aggregate %+v", p)
	}
}

// TestTeeFeedsBoth checks that each call reaches both coordinators whole:
// the bus receives one event per call with its type, operation, duration,
// status and source, and the direct coordinator aggregates the same calls.
func TestTeeFeedsBoth(t *testing.T) {
	bus := memBus(t)
	ed := eventDriven(t, bus, coordinator.Options{})
	d := coordinator.NewDirect()
	c := coordinator.Tee(d, ed)
	c.OperationComplete(context.Background(), "op", time.Millisecond)
	c.Time(context.Background(), "timed")()
	flush(t, ed)

	type got struct {
		Type      events.Type
		Source    string
		Operation string
		Status    string
	}
	var evs []got
	durations := map[string]float64{}
	for _, ev := range bus.Published() {
		pe, ok := ev.(*events.PerformanceEvent)
		if !ok {
			t.Fatalf("published %T %s, want performance events only", ev, ev.Metadata().Type)
		}
		evs = append(evs, got{pe.Type, pe.Source, pe.Operation, pe.Status})
		durations[pe.Operation] = pe.DurationMS
	}
	want := []got{
		{events.OperationComplete, "svc", "op", events.StatusSuccess},
		{events.OperationComplete, "svc", "timed", events.StatusSuccess},
	}
	if !slices.Equal(evs, want) {
		t.Errorf("the event-driven side published %+v, want %+v", evs, want)
	}
	if durations["op"] != 1 || durations["timed"] < 0 {
		t.Errorf("published durations %v, want op 1 ms and timed not negative", durations)
	}

	snap := d.Snapshot()
	if n := len(snap.Operations); n != 2 {
		t.Errorf("the direct side holds %d operations, want 2 (op, timed): %+v", n, snap.Operations)
	}
	if o, ok := snap.Operation("op"); !ok || o.Count != 1 || o.Errors != 0 || o.AvgMS != 1 || o.MaxMS != 1 {
		t.Errorf("direct op = %+v (found %v), want one success of 1 ms", o, ok)
	}
	if o, ok := snap.Operation("timed"); !ok || o.Count != 1 || o.Errors != 0 {
		t.Errorf("direct timed = %+v (found %v), want one success", o, ok)
	}
}

func TestFactory(t *testing.T) {
	bus := memBus(t)
	for _, m := range []coordinator.MonitoringMode{coordinator.Direct, coordinator.EventDriven, coordinator.Disabled} {
		c, stop, err := coordinator.New(m, bus, coordinator.Options{})
		if err != nil {
			t.Fatalf("New(%s): %v", m, err)
		}
		if c.Enabled() != (m != coordinator.Disabled) {
			t.Errorf("%s: Enabled() = %v", m, c.Enabled())
		}
		_ = stop(context.Background())
	}
	if _, _, err := coordinator.New("turbo", bus, coordinator.Options{}); err == nil {
		t.Error("an unknown mode was accepted")
	}
	if _, _, err := coordinator.New(coordinator.EventDriven, nil, coordinator.Options{}); err == nil {
		t.Error("EventDriven without a bus was accepted")
	}
	if _, err := coordinator.ParseMode("event-driven"); err != nil {
		t.Error(err)
	}
	if _, err := coordinator.NewEventDriven(bus, coordinator.Options{SampleRates: map[string]float64{"a.>.b": 1}}); err == nil {
		t.Error("a bad sample-rate pattern was accepted")
	}
}

func TestTimeErr(t *testing.T) {
	d := coordinator.NewDirect()
	work := func(fail bool) (err error) {
		defer coordinator.TimeErr(context.Background(), d, "work", &err)()
		if fail {
			return errors.New("boom")
		}
		return nil
	}
	_ = work(true)
	_ = work(false)
	if o, _ := d.Snapshot().Operation("work"); o.Count != 2 || o.Errors != 1 {
		t.Errorf("TimeErr recorded %+v", o)
	}
}

func TestVerifyIntegration(t *testing.T) {
	bus := memBus(t)
	sw, err := coordinator.NewSwitchable(coordinator.Direct, bus, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vms := coordinator.NewValidationMonitoringService(bus, sw)
	if r := coordinator.VerifyIntegration(bus, sw, vms); r.OK() || len(r.Problems) != 1 {
		t.Errorf("before Start: %+v", r)
	}
	if err := vms.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = vms.Stop() }()
	r := coordinator.VerifyIntegration(bus, sw, vms)
	if !r.OK() || !r.PublisherConnected || !r.CoordinatorEnabled || r.Mode != coordinator.Direct || len(r.Subscriptions) != 1 {
		t.Errorf("wired: %+v", r)
	}
	sw.SetEnabled(false)
	if r := coordinator.VerifyIntegration(bus, sw, vms); r.OK() {
		t.Errorf("a disabled coordinator passed: %+v", r)
	}
}

// TestEventFlowTracer records a trace of three events among unrelated ones
// and checks what ByTrace, ByContext and Format return: exactly the traced
// events, oldest first, and one line per event naming its type, source,
// span and parent.
func TestEventFlowTracer(t *testing.T) {
	bus := memBus(t)
	tr, err := coordinator.TraceFlow(context.Background(), bus, ">", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Stop() }()
	root := events.NewRootTrace()
	var traced []events.Event
	for i := range 3 {
		ev := eventstest.NewEvent(events.ValidationStarted, fmt.Sprint(i))
		ev.Metadata().SetTrace(root.Child())
		ev.Metadata().ContextID = "run-7"
		ev.Metadata().Timestamp = ev.Metadata().Timestamp.Add(time.Duration(3-i) * time.Second) // published newest first
		traced = append(traced, ev)
	}
	other := eventstest.NewEvent(events.SystemError, "other")              // another trace, no context
	last := eventstest.NewEvent(events.ValidationStarted, "other-context") // another trace and context
	for _, ev := range append(slices.Clone(traced), other, last) {
		if err := bus.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// The memory bus delivers in publish order: once the last event is
	// recorded, every earlier one was offered to the tracer.
	testutil.WaitFor(t, 10*time.Second, func() bool { return len(tr.ByTrace(last.Metadata().TraceID)) == 1 }, "the tracer to record the last event")

	slices.Reverse(traced) // oldest first
	wantTags := []string{"2", "1", "0"}
	if got := tagsOf(tr.ByTrace(root.TraceID)); !slices.Equal(got, wantTags) {
		t.Errorf("ByTrace = %v, want %v (oldest first, nothing else)", got, wantTags)
	}
	if got := tagsOf(tr.ByContext("run-7")); !slices.Equal(got, wantTags) {
		t.Errorf("ByContext = %v, want %v", got, wantTags)
	}
	lines := strings.Split(strings.TrimSuffix(coordinator.Format(tr.ByTrace(root.TraceID)), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("Format wrote %d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		m := traced[i].Metadata()
		for _, want := range []string{
			m.Timestamp.Format("15:04:05.000000"), string(m.Type), m.Source,
			"span=" + m.SpanID.String(), "parent=" + m.ParentSpanID.String(),
		} {
			if !strings.Contains(line, want) {
				t.Errorf("Format line %d %q lacks %q", i, line, want)
			}
		}
	}
}

func tagsOf(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = eventstest.Tag(ev)
	}
	return out
}
