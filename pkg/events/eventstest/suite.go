// Package eventstest is the conformance suite every [events.Bus] must pass.
//
// A bus package runs it from a test with a [Harness] that opens the bus under
// test and a [Features] value that says which optional guarantees the bus
// claims; the suite checks every claimed guarantee and checks that options for
// unclaimed ones are rejected with [events.ErrUnsupported] rather than ignored.
package eventstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Features are the optional guarantees a bus claims.
type Features struct {
	// Replay: DeliverAll, StartAtTime and StartAtSequence position a new
	// subscription in the retained history.
	Replay bool
	// Durable: a durable consumer resumes after Unsubscribe where it stopped.
	Durable bool
	// DurableAcrossRestart: a durable consumer also resumes through a new
	// connection to the same backend (Harness.Reconnect).
	DurableAcrossRestart bool
	// Groups: subscriptions in one group share the events.
	Groups bool
	// OrderedPerSubject: one subscriber sees the events of one subject in
	// publish order.
	OrderedPerSubject bool
	// Redelivery: an event whose handler fails is delivered again.
	Redelivery bool
	// SharedSequences: several events can share one bus sequence (a batching
	// bus numbers messages, not events), so StartAtSequence may replay the
	// events that share the start sequence too.
	SharedSequences bool
	// AsyncPublish: Publish may return before the event is stored (it was
	// handed to the connection, or to a batch); Harness.Flush waits until
	// every event published so far is stored. The suite flushes where it
	// depends on what is stored: before a time mark or a deliver-new
	// subscription. Without the claim, Publish itself must store, and the
	// suite checks that by not flushing.
	AsyncPublish bool
	// BatchedPublish: events published one after another may travel as one
	// message, which a group hands whole to one member. GroupSharesLoad ends
	// a batch (Harness.Flush) after every second event so that the group has
	// messages to share. It requires AsyncPublish (a batch waits to be sent).
	BatchedPublish bool
}

// Harness opens the bus under test.
type Harness struct {
	// NewBackend starts a fresh, isolated backend (a server, a store, ...) and
	// returns a connected bus to it. The suite closes the bus; the harness
	// registers any backend clean-up with t.Cleanup.
	NewBackend func(t *testing.T) events.Bus
	// Reconnect returns a new bus connected to the backend that bus was opened
	// on, after bus was closed. Required when DurableAcrossRestart is claimed.
	Reconnect func(t *testing.T, bus events.Bus) events.Bus
	// MaxPayload is the bus's payload limit (0: events.DefaultMaxPayload).
	MaxPayload int
	// Timeout bounds each wait for deliveries (0: 10 s).
	Timeout time.Duration
	// Flush waits until every event published on bus so far is stored.
	// Required when AsyncPublish is claimed.
	Flush func(ctx context.Context, bus events.Bus) error
	// Settle is how long the suite waits to be sure that something does NOT
	// arrive where no later delivery can prove it: an event that matches no
	// subscription, a stopped subscription, and every check on a bus that
	// does not claim OrderedPerSubject (0: 200 ms). Where the bus orders a
	// subject's events, the suite instead publishes a later event on the same
	// subject and waits for it.
	Settle   time.Duration
	Features Features
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 10 * time.Second
	}
	if h.Settle == 0 {
		h.Settle = 200 * time.Millisecond
	}
	if h.MaxPayload == 0 {
		h.MaxPayload = events.DefaultMaxPayload
	}
	switch {
	case h.Features.BatchedPublish && !h.Features.AsyncPublish:
		t.Fatal("eventstest: BatchedPublish claimed without AsyncPublish")
	case h.Features.AsyncPublish && h.Flush == nil:
		t.Fatal("eventstest: AsyncPublish claimed without Harness.Flush")
	case h.Features.DurableAcrossRestart && h.Reconnect == nil:
		t.Fatal("eventstest: DurableAcrossRestart claimed without Harness.Reconnect")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
		need bool
	}{
		{"PatternMatching", testPatternMatching, true},
		{"InvalidPattern", testInvalidPattern, true},
		{"FanOut", testFanOut, true},
		{"Unsubscribe", testUnsubscribe, true},
		{"ConcurrentPublishers", testConcurrentPublishers, true},
		{"HandlerErrorContained", testHandlerErrorContained, true},
		{"HandlerPanicContained", testHandlerPanicContained, true},
		{"PublishAfterClose", testPublishAfterClose, true},
		{"ContextCancellation", testContextCancellation, true},
		{"OversizedPayload", testOversizedPayload, true},
		{"InvalidEventRejected", testInvalidEventRejected, true},
		{"DeliveredCopyIsFaithful", testFaithfulCopy, true},
		{"UnsupportedOptionsRejected", testUnsupportedOptions, true},
		{"OrderPerSubject", testOrderPerSubject, h.Features.OrderedPerSubject},
		{"Redelivery", testRedelivery, h.Features.Redelivery},
		{"DurableResume", testDurableResume, h.Features.Durable},
		{"DurableAcrossRestart", testDurableAcrossRestart, h.Features.DurableAcrossRestart},
		{"ReplayFromTime", testReplayFromTime, h.Features.Replay},
		{"ReplayFromSequence", testReplayFromSequence, h.Features.Replay},
		{"GroupSharesLoad", testGroupSharesLoad, h.Features.Groups},
	}
	for _, tc := range tests {
		if !tc.need {
			continue // the feature is not claimed; UnsupportedOptionsRejected covers it
		}
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// open starts a backend and closes its bus at the end of the test.
func open(t *testing.T, h Harness) events.Bus {
	t.Helper()
	bus := h.NewBackend(t)
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

var seq atomic.Uint64

// NewEvent returns a valid event of type typ whose Operation/Component/...
// carries tag, so tests can tell events apart.
func NewEvent(typ events.Type, tag string) events.Event {
	ev, err := events.New(typ, "eventstest")
	if err != nil {
		panic(err)
	}
	ev.Metadata().Attributes = map[string]string{"tag": tag, "n": fmt.Sprint(seq.Add(1))}
	switch e := ev.(type) {
	case *events.PerformanceEvent:
		e.Operation, e.Phase, e.Metric, e.Resource, e.DurationMS, e.Value = "op", "phase", "metric", "resource", 1.5, 2
	case *events.HealthEvent:
		e.Component, e.Status, e.Metric = "db", events.StatusHealthy, "latency"
		switch typ {
		case events.ComponentDegraded:
			e.Status = events.StatusDegraded
		case events.ComponentFailed:
			e.Status = events.StatusFailed
		}
	case *events.ControlEvent:
		e.Mode, e.SampleRate = events.ModeEventDriven, 0.5
	case *events.ValidationEvent:
		e.ContextID = "ctx-" + tag
	case *events.SystemEvent:
		e.Error = "boom"
	case *events.AggregateEvent:
		e.Operation, e.AggregatedType, e.Count, e.Avg = "op", events.OperationComplete, 3, 1.5
		e.WindowStart = e.Timestamp.Add(-10 * time.Second)
		e.WindowEnd = e.Timestamp
	}
	return ev
}

// Tag returns the tag NewEvent gave ev.
func Tag(ev events.Event) string { return ev.Metadata().Attributes["tag"] }

// Collector is a handler that records what it receives.
type Collector struct {
	mu     sync.Mutex
	events []events.Event
	seqs   []uint64
	notify chan struct{}
}

// NewCollector returns an empty collector.
func NewCollector() *Collector { return &Collector{notify: make(chan struct{}, 1)} }

// Handle records ev.
func (c *Collector) Handle(ctx context.Context, ev events.Event) error {
	d, _ := events.DeliveryFromContext(ctx)
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.seqs = append(c.seqs, d.Sequence)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

// Events returns what was received so far.
func (c *Collector) Events() []events.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Len returns how many events were received.
func (c *Collector) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// WaitFor waits until at least n events arrived, failing t after timeout.
func (c *Collector) WaitFor(t *testing.T, n int, timeout time.Duration) []events.Event {
	t.Helper()
	got, ok := c.Await(n, timeout)
	if !ok {
		t.Fatalf("received %d events within %s, want %d: %v", len(got), timeout, n, tags(got))
	}
	return got
}

// Await waits until at least n events arrived or timeout passed, and returns
// what arrived and whether it was n or more. It suits examples and
// goroutines, where WaitFor's t.Fatal cannot be called.
func (c *Collector) Await(n int, timeout time.Duration) ([]events.Event, bool) {
	return c.AwaitFunc(func(evs []events.Event) bool { return len(evs) >= n }, timeout)
}

// AwaitFunc waits until done holds for the events received so far or
// timeout passed, and returns them and whether done held.
func (c *Collector) AwaitFunc(done func([]events.Event) bool, timeout time.Duration) ([]events.Event, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if evs := c.Events(); done(evs) {
			return evs, true
		}
		select {
		case <-c.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline.C:
			evs := c.Events()
			return evs, done(evs)
		}
	}
}

// waitTag waits until an event tagged tag arrived and returns everything
// received up to then.
func (c *Collector) waitTag(t *testing.T, tag string, timeout time.Duration) []events.Event {
	t.Helper()
	got, ok := c.AwaitFunc(func(evs []events.Event) bool { return slices.Contains(tags(evs), tag) }, timeout)
	if !ok {
		t.Fatalf("%q not received within %s; received %v", tag, timeout, tags(got))
	}
	return got
}

func subscribe(t *testing.T, bus events.Bus, pattern string, h events.Handler, opts ...events.SubscribeOption) events.Subscription {
	t.Helper()
	sub, err := bus.Subscribe(context.Background(), pattern, h, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", pattern, err)
	}
	return sub
}

// flush waits until the bus has stored what was published, where Publish
// may return earlier (AsyncPublish).
func flush(t *testing.T, h Harness, bus events.Bus) {
	t.Helper()
	if !h.Features.AsyncPublish {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := h.Flush(ctx, bus); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// lastOnSubject waits until col received the event tagged last, published
// after the events a negative check is about, on their subject. On a bus
// that orders a subject's events that proves the earlier ones had their
// chance to arrive; elsewhere the suite also waits h.Settle.
func lastOnSubject(t *testing.T, h Harness, col *Collector, last string) []events.Event {
	t.Helper()
	col.waitTag(t, last, h.Timeout)
	if !h.Features.OrderedPerSubject {
		time.Sleep(h.Settle)
	}
	return col.Events()
}

func publish(t *testing.T, bus events.Bus, evs ...events.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := bus.Publish(context.Background(), ev); err != nil {
			t.Fatalf("Publish(%s): %v", ev.Metadata().Type, err)
		}
	}
}

func tags(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = Tag(ev)
	}
	return out
}

func sortedTags(evs []events.Event) []string {
	out := tags(evs)
	slices.Sort(out)
	return out
}

func testPatternMatching(t *testing.T, h Harness) {
	bus := open(t, h)
	types := []events.Type{
		events.ValidationStarted, events.ValidationCompleted, events.ValidationFailed,
		events.PhaseStart, events.OperationComplete, events.MetricAggregated,
		events.ComponentHealthy, events.ThresholdExceeded, events.SystemError,
		events.MonitoringEnabled, events.ModeSwitched,
	}
	patterns := []struct {
		pattern string
		want    []events.Type
	}{
		{"validation.*", []events.Type{events.ValidationStarted, events.ValidationCompleted, events.ValidationFailed}},
		{"validation.>", []events.Type{events.ValidationStarted, events.ValidationCompleted, events.ValidationFailed}},
		{"performance.>", []events.Type{events.PhaseStart, events.OperationComplete, events.MetricAggregated}},
		{"performance.*", nil}, // performance types have three tokens
		{"performance.*.start", []events.Type{events.PhaseStart}},
		{"performance.phase.*", []events.Type{events.PhaseStart}},
		{"*.*.complete", []events.Type{events.OperationComplete}},
		{"health.component.healthy", []events.Type{events.ComponentHealthy}},
		{"health.*.exceeded", []events.Type{events.ThresholdExceeded}},
		{"system.error", []events.Type{events.SystemError}},
		{"system", nil},
		{"system.error.>", nil}, // '>' needs at least one more token
		{"monitoring.*", []events.Type{events.MonitoringEnabled}},
		{"monitoring.>", []events.Type{events.MonitoringEnabled, events.ModeSwitched}},
		{"*.enabled", []events.Type{events.MonitoringEnabled}},
		{">", types},
	}
	cols := make([]*Collector, len(patterns))
	for i, p := range patterns {
		cols[i] = NewCollector()
		subscribe(t, bus, p.pattern, cols[i])
	}
	all := NewCollector()
	subscribe(t, bus, ">", all)
	for _, typ := range types {
		publish(t, bus, NewEvent(typ, string(typ)))
	}
	all.WaitFor(t, len(types), h.Timeout)
	for i, p := range patterns {
		t.Run(strings.NewReplacer(">", "GT", "*", "STAR").Replace(p.pattern), func(t *testing.T) {
			if len(p.want) > 0 {
				cols[i].WaitFor(t, len(p.want), h.Timeout)
			}
		})
	}
	time.Sleep(h.Settle) // a non-matching delivery has no later event to wait for
	for i, p := range patterns {
		got := sortedTags(cols[i].Events())
		want := make([]string, len(p.want))
		for j, typ := range p.want {
			want[j] = string(typ)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("pattern %q received %v, want %v", p.pattern, got, want)
		}
	}
}

func testInvalidPattern(t *testing.T, h Harness) {
	bus := open(t, h)
	for _, p := range []string{"", "a..b", "a.>.b", "a.b*", ".a", "a.", "a b"} {
		_, err := bus.Subscribe(context.Background(), p, NewCollector())
		if !errors.Is(err, events.ErrInvalidPattern) {
			t.Errorf("Subscribe(%q) error = %v, want ErrInvalidPattern", p, err)
		}
	}
}

func testFanOut(t *testing.T, h Harness) {
	bus := open(t, h)
	const subs, n = 5, 20
	cols := make([]*Collector, subs)
	ids := map[string]bool{}
	for i := range cols {
		cols[i] = NewCollector()
		sub := subscribe(t, bus, "performance.>", cols[i])
		if ids[sub.ID()] {
			t.Fatalf("subscription id %q reused", sub.ID())
		}
		ids[sub.ID()] = true
		if sub.Pattern() != "performance.>" {
			t.Fatalf("Pattern() = %q", sub.Pattern())
		}
	}
	for i := range n {
		publish(t, bus, NewEvent(events.OperationComplete, fmt.Sprint(i)))
	}
	for i, c := range cols {
		got := c.WaitFor(t, n, h.Timeout)
		if len(got) != n {
			t.Errorf("subscriber %d got %d events, want %d", i, len(got), n)
		}
	}
}

func testUnsubscribe(t *testing.T, h Harness) {
	bus := open(t, h)
	gone, stay := NewCollector(), NewCollector()
	sub := subscribe(t, bus, "system.error", gone)
	subscribe(t, bus, "system.error", stay)
	publish(t, bus, NewEvent(events.SystemError, "before"))
	gone.WaitFor(t, 1, h.Timeout)
	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	publish(t, bus, NewEvent(events.SystemError, "after"))
	stay.waitTag(t, "after", h.Timeout)
	time.Sleep(h.Settle) // nothing can reach a stopped subscription to prove it quiet
	if got := tags(gone.Events()); !slices.Equal(got, []string{"before"}) {
		t.Errorf("unsubscribed handler received %v, want only [before]", got)
	}
}

func testConcurrentPublishers(t *testing.T, h Harness) {
	bus := open(t, h)
	const writers, each = 8, 50
	col := NewCollector()
	subscribe(t, bus, ">", col)
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := bus.Publish(context.Background(), NewEvent(events.OperationComplete, fmt.Sprintf("%d-%d", w, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Publish: %v", err)
	}
	col.WaitFor(t, writers*each, h.Timeout)
	publish(t, bus, NewEvent(events.OperationComplete, "last"))
	got := lastOnSubject(t, h, col, "last")
	got = slices.DeleteFunc(got, func(ev events.Event) bool { return Tag(ev) == "last" })
	seen := map[string]int{}
	for _, ev := range got {
		seen[ev.Metadata().ID]++
	}
	if len(seen) != writers*each || len(got) != writers*each {
		t.Errorf("received %d deliveries of %d distinct events, want %d of %d", len(got), len(seen), writers*each, writers*each)
	}
}

// failing fails (or panics on) the events whose tag is in bad, the first
// `times` deliveries of each, and records the rest.
type failing struct {
	*Collector
	bad      map[string]bool
	times    int
	panic    bool
	mu       sync.Mutex
	attempts map[string]int
}

func (f *failing) Handle(ctx context.Context, ev events.Event) error {
	f.mu.Lock()
	f.attempts[Tag(ev)]++
	n := f.attempts[Tag(ev)]
	f.mu.Unlock()
	if f.bad[Tag(ev)] && (f.times < 0 || n <= f.times) {
		if f.panic {
			panic("eventstest: deliberate panic")
		}
		return errors.New("eventstest: deliberate failure")
	}
	return f.Collector.Handle(ctx, ev)
}

func (f *failing) attemptsOf(tag string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[tag]
}

func testHandlerContained(t *testing.T, h Harness, doPanic bool) {
	bus := open(t, h)
	f := &failing{Collector: NewCollector(), bad: map[string]bool{"bad": true}, times: 1, panic: doPanic, attempts: map[string]int{}}
	subscribe(t, bus, "system.>", f, events.MaxDeliver(3))
	publish(t, bus, NewEvent(events.SystemError, "bad"), NewEvent(events.SystemError, "good"))
	want := []string{"good"}
	if h.Features.Redelivery {
		want = []string{"bad", "good"}
	}
	got := f.WaitFor(t, len(want), h.Timeout)
	if !slices.Equal(sortedTags(got), want) {
		t.Errorf("after a failing handler call the subscriber received %v, want %v", sortedTags(got), want)
	}
	if f.attemptsOf("bad") < 1 {
		t.Errorf("the failing event was never delivered")
	}
	// The bus is still alive: another subscriber and publish work.
	after := NewCollector()
	subscribe(t, bus, "system.error", after)
	publish(t, bus, NewEvent(events.SystemError, "later"))
	after.WaitFor(t, 1, h.Timeout)
	if !bus.IsConnected() {
		t.Errorf("IsConnected() = false after a failing handler")
	}
}

func testHandlerErrorContained(t *testing.T, h Harness) { testHandlerContained(t, h, false) }
func testHandlerPanicContained(t *testing.T, h Harness) { testHandlerContained(t, h, true) }

func testPublishAfterClose(t *testing.T, h Harness) {
	bus := h.NewBackend(t)
	if !bus.IsConnected() {
		t.Fatalf("IsConnected() = false on a new bus")
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if bus.IsConnected() {
		t.Errorf("IsConnected() = true after Close")
	}
	if err := bus.Publish(context.Background(), NewEvent(events.SystemError, "x")); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := bus.Subscribe(context.Background(), ">", NewCollector()); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

func testContextCancellation(t *testing.T, h Harness) {
	bus := open(t, h)
	col := NewCollector()
	subscribe(t, bus, "system.error", col)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := bus.Publish(ctx, NewEvent(events.SystemError, "cancelled")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := bus.Subscribe(ctx, ">", NewCollector()); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a cancelled context: %v, want context.Canceled", err)
	}
	publish(t, bus, NewEvent(events.SystemError, "live"))
	if got := tags(lastOnSubject(t, h, col, "live")); !slices.Equal(got, []string{"live"}) {
		t.Errorf("received %v, want only [live]", got)
	}
}

func testOversizedPayload(t *testing.T, h Harness) {
	bus := open(t, h)
	col := NewCollector()
	subscribe(t, bus, "system.error", col)
	big := NewEvent(events.SystemError, "big").(*events.SystemEvent)
	big.Message = strings.Repeat("x", h.MaxPayload+1)
	if err := bus.Publish(context.Background(), big); !errors.Is(err, events.ErrPayloadTooLarge) {
		t.Errorf("Publish of a %d-byte event: %v, want ErrPayloadTooLarge", h.MaxPayload+1, err)
	}
	publish(t, bus, NewEvent(events.SystemError, "small"))
	if got := tags(lastOnSubject(t, h, col, "small")); !slices.Equal(got, []string{"small"}) {
		t.Errorf("received %v, want only [small]", got)
	}
}

func testInvalidEventRejected(t *testing.T, h Harness) {
	bus := open(t, h)
	ev := NewEvent(events.OperationComplete, "neg").(*events.PerformanceEvent)
	ev.DurationMS = -1
	err := bus.Publish(context.Background(), ev)
	var ve *events.ValidationError
	if !errors.As(err, &ve) || ve.Field != "duration_ms" {
		t.Errorf("Publish of a negative duration: %v, want a ValidationError on duration_ms", err)
	}
}

func testFaithfulCopy(t *testing.T, h Harness) {
	bus := open(t, h)
	col := NewCollector()
	subscribe(t, bus, "performance.>", col)
	ev := NewEvent(events.OperationFailed, "copy").(*events.PerformanceEvent)
	ev.Error, ev.FieldPath, ev.ParentSpanID, ev.ContextID = "timeout \"quoted\" ünïcode", "a.b[0]", events.NewSpanID(), "ctx"
	want := string(ev.AppendJSON(nil))
	publish(t, bus, ev)
	ev.Operation = "mutated after publish"
	got := col.WaitFor(t, 1, h.Timeout)[0]
	if s := string(got.AppendJSON(nil)); s != want {
		t.Errorf("delivered event differs from the published one:\n got %s\nwant %s", s, want)
	}
}

func testUnsupportedOptions(t *testing.T, h Harness) {
	bus := open(t, h)
	cases := []struct {
		name    string
		claimed bool
		opt     events.SubscribeOption
	}{
		{"Durable", h.Features.Durable, events.Durable("d1")},
		{"Group", h.Features.Groups, events.Group("g1")},
		{"DeliverAll", h.Features.Replay, events.DeliverAll()},
		{"StartAtTime", h.Features.Replay, events.StartAtTime(time.Now())},
		{"StartAtSequence", h.Features.Replay, events.StartAtSequence(1)},
	}
	for _, c := range cases {
		sub, err := bus.Subscribe(context.Background(), "system.>", NewCollector(), c.opt)
		switch {
		case c.claimed && err != nil:
			t.Errorf("%s is claimed but Subscribe failed: %v", c.name, err)
		case !c.claimed && !errors.Is(err, events.ErrUnsupported):
			t.Errorf("%s is not claimed: Subscribe error = %v, want ErrUnsupported", c.name, err)
		}
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	if _, err := bus.Subscribe(context.Background(), "system.>", NewCollector(), events.MaxDeliver(0)); !errors.Is(err, events.ErrInvalidOption) {
		t.Errorf("MaxDeliver(0): %v, want ErrInvalidOption", err)
	}
}

func testOrderPerSubject(t *testing.T, h Harness) {
	bus := open(t, h)
	const n = 300
	col := NewCollector()
	subscribe(t, bus, "performance.operation.complete", col)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("%04d", i)
		publish(t, bus, NewEvent(events.OperationComplete, want[i]))
	}
	if got := tags(col.WaitFor(t, n, h.Timeout)); !slices.Equal(got, want) {
		t.Errorf("events arrived out of order: %v", got)
	}
}

func testRedelivery(t *testing.T, h Harness) {
	bus := open(t, h)
	f := &failing{Collector: NewCollector(), bad: map[string]bool{"flaky": true, "poison": true}, times: 2, attempts: map[string]int{}}
	f.times = 2
	subscribe(t, bus, "system.error", f, events.MaxDeliver(3))
	poison := &failing{Collector: NewCollector(), bad: map[string]bool{"poison": true}, times: -1, attempts: map[string]int{}}
	subscribe(t, bus, "system.error", poison, events.MaxDeliver(2))
	publish(t, bus, NewEvent(events.SystemError, "flaky"), NewEvent(events.SystemError, "poison"))
	// f takes both events on their third delivery: by then the same event
	// on the poison subscription, published at the same moment, has had the
	// time of a third delivery too (plus Settle for the two timers' skew).
	got := f.WaitFor(t, 2, h.Timeout)
	if !slices.Equal(sortedTags(got), []string{"flaky", "poison"}) {
		t.Fatalf("after redelivery the handler holds %v", sortedTags(got))
	}
	if n := f.attemptsOf("flaky"); n != 3 {
		t.Errorf("flaky event delivered %d times, want 3 (2 failures, then success)", n)
	}
	poison.WaitFor(t, 1, h.Timeout) // "flaky" passes this handler at once
	if !poll(h.Timeout, func() bool { return poison.attemptsOf("poison") >= 2 }) {
		t.Fatalf("poison event delivered %d times with MaxDeliver(2), want 2", poison.attemptsOf("poison"))
	}
	time.Sleep(h.Settle)
	if n := poison.attemptsOf("poison"); n != 2 {
		t.Errorf("poison event delivered %d times with MaxDeliver(2), want 2", n)
	}
}

func testDurable(t *testing.T, h Harness, restart bool) {
	bus := h.NewBackend(t)
	defer func() { _ = bus.Close() }()
	first := NewCollector()
	sub := subscribe(t, bus, "validation.*", first, events.Durable("resume"))
	publish(t, bus, NewEvent(events.ValidationStarted, "a"), NewEvent(events.ValidationCompleted, "b"))
	first.WaitFor(t, 2, h.Timeout)
	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(t, bus, NewEvent(events.ValidationStarted, "c"), NewEvent(events.ValidationFailed, "d"))
	if restart {
		if err := bus.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		bus = h.Reconnect(t, bus)
	}
	second := NewCollector()
	subscribe(t, bus, "validation.*", second, events.Durable("resume"))
	// a and c share a subject, so do b and "last": once c, d and "last"
	// arrived, a replayed a or b would have arrived too.
	second.waitTag(t, "c", h.Timeout)
	second.waitTag(t, "d", h.Timeout)
	publish(t, bus, NewEvent(events.ValidationCompleted, "last"))
	got := lastOnSubject(t, h, second, "last")
	got = slices.DeleteFunc(got, func(ev events.Event) bool { return Tag(ev) == "last" })
	if !slices.Equal(sortedTags(got), []string{"c", "d"}) {
		t.Errorf("durable resumed with %v, want [c d]", sortedTags(got))
	}
	if _, err := bus.Subscribe(context.Background(), "health.>", NewCollector(), events.Durable("resume")); !errors.Is(err, events.ErrConsumerConflict) {
		t.Errorf("reusing a durable name with another pattern: %v, want ErrConsumerConflict", err)
	}
}

func testDurableResume(t *testing.T, h Harness)        { testDurable(t, h, false) }
func testDurableAcrossRestart(t *testing.T, h Harness) { testDurable(t, h, true) }

func testReplayFromTime(t *testing.T, h Harness) {
	bus := open(t, h)
	// The old events are stored before the mark and the new ones before the
	// deliver-new subscription; the sleeps only keep the mark off the
	// millisecond the old events were stored in (a stream id's resolution).
	publish(t, bus, NewEvent(events.PhaseStart, "old1"), NewEvent(events.PhaseStart, "old2"))
	flush(t, h, bus)
	time.Sleep(10 * time.Millisecond)
	mark := time.Now()
	time.Sleep(10 * time.Millisecond)
	publish(t, bus, NewEvent(events.PhaseStart, "new1"), NewEvent(events.PhaseStart, "new2"))
	flush(t, h, bus)

	fromTime := NewCollector()
	subscribe(t, bus, "performance.>", fromTime, events.StartAtTime(mark))
	all := NewCollector()
	subscribe(t, bus, "performance.>", all, events.DeliverAll())
	fresh := NewCollector()
	subscribe(t, bus, "performance.>", fresh)
	publish(t, bus, NewEvent(events.PhaseStart, "live"))

	if got := tags(lastOnSubject(t, h, fromTime, "live")); !slices.Equal(got, []string{"new1", "new2", "live"}) {
		t.Errorf("StartAtTime replayed %v, want [new1 new2 live]", got)
	}
	if got := tags(lastOnSubject(t, h, all, "live")); !slices.Equal(got, []string{"old1", "old2", "new1", "new2", "live"}) {
		t.Errorf("DeliverAll replayed %v", got)
	}
	if got := tags(lastOnSubject(t, h, fresh, "live")); !slices.Equal(got, []string{"live"}) {
		t.Errorf("a default subscription received %v, want only [live]", got)
	}
}

func testReplayFromSequence(t *testing.T, h Harness) {
	bus := open(t, h)
	probe := NewCollector()
	subscribe(t, bus, "performance.>", probe)
	publish(t, bus, NewEvent(events.PhaseStart, "s1"), NewEvent(events.PhaseStart, "s2"), NewEvent(events.PhaseStart, "s3"))
	probe.WaitFor(t, 3, h.Timeout)
	probe.mu.Lock()
	second := probe.seqs[1]
	probe.mu.Unlock()
	if second == 0 {
		t.Fatalf("Delivery.Sequence is 0; a bus that claims Replay must report sequences")
	}
	col := NewCollector()
	subscribe(t, bus, "performance.>", col, events.StartAtSequence(second))
	got := tags(lastOnSubject(t, h, col, "s3"))
	want := []string{"s2", "s3"}
	if h.Features.SharedSequences && len(got) == 3 {
		want = []string{"s1", "s2", "s3"} // s1 shares s2's sequence
	}
	if !slices.Equal(got, want) {
		t.Errorf("StartAtSequence(%d) replayed %v, want %v", second, got, want)
	}
}

// testGroupSharesLoad checks that a group delivers each event to exactly one
// member and that both members get work: the member that receives the first
// event holds it until the other one has received an event, so a bus that
// hands everything to one member fails (after Timeout) instead of passing
// by luck, and one that shares does not depend on timing.
func testGroupSharesLoad(t *testing.T, h Harness) {
	bus := open(t, h)
	const n = 200
	a, b := NewCollector(), NewCollector()
	var first atomic.Pointer[Collector]
	member := func(self, other *Collector) events.Handler {
		return events.HandlerFunc(func(ctx context.Context, ev events.Event) error {
			if first.CompareAndSwap(nil, self) {
				if _, ok := other.Await(1, h.Timeout); !ok {
					t.Errorf("load not shared: one member held the first event for %s and the other received nothing", h.Timeout)
				}
			}
			return self.Handle(ctx, ev)
		})
	}
	subscribe(t, bus, "performance.>", member(a, b), events.Group("workers"))
	subscribe(t, bus, "performance.>", member(b, a), events.Group("workers"))
	for i := range n {
		publish(t, bus, NewEvent(events.OperationComplete, fmt.Sprint(i)))
		if h.Features.BatchedPublish && i%2 == 1 {
			flush(t, h, bus) // batches of two: messages for the group to share
		}
	}
	distinct := func() map[string]int {
		seen := map[string]int{}
		for _, ev := range append(a.Events(), b.Events()...) {
			seen[Tag(ev)]++
		}
		return seen
	}
	poll(2*h.Timeout, func() bool { return len(distinct()) == n })
	seen := distinct()
	if len(seen) != n {
		t.Errorf("group received %d distinct events, want %d", len(seen), n)
	}
	for tag, k := range seen {
		if k != 1 {
			t.Errorf("event %s delivered %d times within the group", tag, k)
		}
	}
	if a.Len() == 0 || b.Len() == 0 {
		t.Errorf("load not shared: members got %d and %d events", a.Len(), b.Len())
	}
}

// poll checks cond every 10 ms until it holds or timeout passes, and
// returns whether it held.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
