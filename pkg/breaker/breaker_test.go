package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

// flakyBus is a fake publisher for unit tests of the breaker's logic: it
// fails while down and records what it accepted.
type flakyBus struct {
	mu    sync.Mutex
	down  bool
	err   error
	calls int
	got   []events.Event
}

func (f *flakyBus) Publish(_ context.Context, ev events.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		if f.err != nil {
			return f.err
		}
		return errors.New("bus unavailable")
	}
	f.got = append(f.got, ev)
	return nil
}

func (f *flakyBus) set(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flakyBus) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// appEvents returns the tags of the accepted events that the test
// published, leaving out the breaker's own monitoring events.
func (f *flakyBus) appEvents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.got {
		if tag := eventstest.Tag(ev); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

func (f *flakyBus) controlEvents() []*events.ControlEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*events.ControlEvent
	for _, ev := range f.got {
		if c, ok := ev.(*events.ControlEvent); ok && c.Config["component"] == "breaker" {
			out = append(out, c)
		}
	}
	return out
}

func newPublisher(t *testing.T, bus events.Publisher, o breaker.Options) *breaker.Publisher {
	t.Helper()
	p, err := breaker.New(bus, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func publish(t *testing.T, p *breaker.Publisher, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		if err := p.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, tag)); err != nil {
			t.Fatalf("Publish(%s): %v", tag, err)
		}
	}
}

func TestOpensSpoolsProbesAndDrainsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 3, OpenTimeout: 5 * time.Second, PublishBudget: 10 * time.Millisecond})
		defer func() { _ = p.Close() }()

		publish(t, p, "a", "b", "c")       // a is retried within its budget, then spooled; b and c queue behind it
		time.Sleep(100 * time.Millisecond) // the drainer's retries are failures 2 and 3
		if p.State() != breaker.Open {
			t.Fatalf("state after 3 failures = %s, want open", p.State())
		}
		calls := bus.callCount()
		start := time.Now()
		publish(t, p, "d", "e")
		if bus.callCount() != calls || time.Since(start) != 0 {
			t.Errorf("while open, Publish called the bus (%d calls) or waited %s", bus.callCount()-calls, time.Since(start))
		}

		time.Sleep(6 * time.Second) // one probe, after the 5 s open timeout; it fails: open again
		synctest.Wait()
		if p.State() != breaker.Open || bus.callCount() != calls+1 {
			t.Fatalf("after a failed probe: state %s, %d new calls; want open and exactly one probe", p.State(), bus.callCount()-calls)
		}

		bus.set(false)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if p.State() != breaker.Closed {
			t.Fatalf("after a good probe: state %s, want closed", p.State())
		}
		if got := strings.Join(bus.appEvents(), ""); got != "abcde" {
			t.Errorf("drained %q, want abcde in order", got)
		}
		st := p.Stats()
		if st.SpoolDepth != 0 || st.Drained < 5 || st.Dropped != 0 {
			t.Errorf("stats after drain: %+v", st)
		}
		var states []string
		for _, c := range bus.controlEvents() {
			states = append(states, c.Config["breaker_state"])
		}
		if strings.Join(states, ",") != "open,half-open,open,half-open,closed" {
			t.Errorf("state-change events %v", states)
		}
		publish(t, p, "f")
		if got := strings.Join(bus.appEvents(), ""); got != "abcdef" {
			t.Errorf("after closing, events go straight through: %q", got)
		}
	})
}

func TestPermanentErrorsAreNotRetriedOrCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true, err: fmt.Errorf("refused: %w", events.ErrPayloadTooLarge)}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 1})
		defer func() { _ = p.Close() }()
		err := p.Publish(t.Context(), eventstest.NewEvent(events.SystemError, "big"))
		if !errors.Is(err, events.ErrPayloadTooLarge) || bus.callCount() != 1 {
			t.Errorf("Publish = %v after %d calls; want the permanent error after one call", err, bus.callCount())
		}
		bad := eventstest.NewEvent(events.OperationComplete, "neg").(*events.PerformanceEvent)
		bad.DurationMS = -1
		if err := p.Publish(t.Context(), bad); !errors.Is(err, events.ErrInvalid) || bus.callCount() != 1 {
			t.Errorf("invalid event: %v, bus calls %d", err, bus.callCount())
		}
		if p.State() != breaker.Closed || p.Stats().Spooled != 0 || p.Stats().Permanent != 2 {
			t.Errorf("permanent errors moved the breaker: %+v", p.Stats())
		}
	})
}

func TestRetriesWithinBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 100, PublishBudget: 50 * time.Millisecond, InitialBackoff: time.Millisecond})
		defer func() { _ = p.Close() }()
		start := time.Now()
		publish(t, p, "x")
		elapsed := time.Since(start)
		if elapsed > 50*time.Millisecond || bus.callCount() < 4 {
			t.Errorf("one Publish took %s and %d attempts; want several attempts within the 50ms budget", elapsed, bus.callCount())
		}
		if p.Stats().Spooled != 1 || p.State() != breaker.Closed {
			t.Errorf("after the budget: %+v", p.Stats())
		}
	})
}

func TestFailureRatioOpens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 1000, FailureRatio: 0.5, MinRequests: 10, PublishBudget: time.Millisecond})
		defer func() { _ = p.Close() }()
		for i := range 40 {
			bus.set(i%2 == 0)
			_ = p.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i)))
			if p.State() == breaker.Open {
				return
			}
			synctest.Wait()
		}
		t.Errorf("half of the publishes failed but the circuit stayed %s", p.State())
	})
}

func TestTinySpoolCountsEveryDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true}
		reg := prometheus.NewRegistry()
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 1, SpoolMaxEvents: 5, OpenTimeout: time.Second, PublishBudget: time.Millisecond, Registerer: reg})
		defer func() { _ = p.Close() }()
		const n = 40
		dropped := 0
		for i := range n {
			err := p.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i)))
			if errors.Is(err, breaker.ErrDropped) {
				dropped++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		bus.set(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		delivered := len(bus.appEvents())
		st := p.Stats()
		if int(st.Dropped) != n-delivered || dropped != n-delivered {
			t.Errorf("published %d, delivered %d, Stats.Dropped %d, ErrDropped returned %d times", n, delivered, st.Dropped, dropped)
		}
		if got := testutil.ToFloat64(p.Collectors()[5].(*prometheus.CounterVec).WithLabelValues(string(events.OperationComplete))); int(got) != n-delivered {
			t.Errorf("metric jetmon_dropped_events_total = %v, want %d", got, n-delivered)
		}
		var report *events.ControlEvent
		for _, c := range bus.controlEvents() {
			if c.Config["dropped_total"] != "" {
				report = c
			}
		}
		if report == nil || report.Config["dropped_total"] != fmt.Sprint(int(st.Dropped)) ||
			report.Config["dropped."+string(events.OperationComplete)] == "" {
			t.Errorf("drop report %+v, want dropped_total=%d", report, st.Dropped)
		}
	})
}

func TestFailuresAreLoggedRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var mu sync.Mutex
		log := zerolog.New(zerolog.SyncWriter(&lockedWriter{w: &logs, mu: &mu}))
		bus := &flakyBus{down: true}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 1000, PublishBudget: time.Millisecond, Logger: &log, LogInterval: 10 * time.Second})
		defer func() { _ = p.Close() }()
		for range 50 {
			publish(t, p, "x")
		}
		time.Sleep(11 * time.Second)
		publish(t, p, "y")
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		lines := strings.Count(out, `"kind":"publish"`)
		if lines != 2 || !strings.Contains(out, `"count":`) {
			t.Errorf("%d log lines for the publish failures, want 2 (one per interval, with a count):\n%s", lines, out)
		}
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestAsyncFailuresAreSpooled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bus is down, so the drainer's attempts cannot succeed in
		// between and reset the count of failures.
		bus := &flakyBus{down: true}
		p := newPublisher(t, bus, breaker.Options{ConsecutiveFailures: 2, OpenTimeout: time.Second})
		defer func() { _ = p.Close() }()
		ev := eventstest.NewEvent(events.OperationComplete, "late")
		p.Failed(ev, errors.New("ack timeout"))
		p.Failed(eventstest.NewEvent(events.OperationComplete, "later"), errors.New("ack timeout"))
		if p.State() != breaker.Open {
			t.Fatalf("two async failures: state %s, want open", p.State())
		}
		bus.set(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got := bus.appEvents()
		if strings.Join(got, ",") != "late,later" {
			t.Errorf("re-sent %v", got)
		}
		if bus.got[len(bus.got)-2].Metadata().ID != ev.Metadata().ID && bus.got[0].Metadata().ID != ev.Metadata().ID {
			found := false
			for _, e := range bus.got {
				found = found || e.Metadata().ID == ev.Metadata().ID
			}
			if !found {
				t.Errorf("the re-sent event lost its original id")
			}
		}
	})
}

// TestOptionsValidate: each bad field is refused by name (not silently
// replaced by its default), and the zero Options, which means the defaults,
// is accepted.
func TestOptionsValidate(t *testing.T) {
	p, err := breaker.New(&flakyBus{}, breaker.Options{})
	if err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	_ = p.Close()
	for _, tc := range []struct {
		o    breaker.Options
		want string
	}{
		{breaker.Options{FailureRatio: 2}, "FailureRatio 2"},
		{breaker.Options{FailureRatio: -0.1}, "FailureRatio -0.1"},
		{breaker.Options{OpenTimeout: -time.Second}, "OpenTimeout -1s"},
		{breaker.Options{PublishBudget: -time.Millisecond}, "PublishBudget -1ms"},
		{breaker.Options{Interval: -1}, "Interval -1ns"},
		{breaker.Options{SpoolMaxEvents: -1}, "SpoolMaxEvents -1"},
		{breaker.Options{SpoolMaxBytes: -5}, "SpoolMaxBytes -5"},
		{breaker.Options{MaxAsyncFailures: -2}, "MaxAsyncFailures -2"},
	} {
		if _, err := breaker.New(&flakyBus{}, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: New = %v, want an error naming %q", tc.o, err, tc.want)
		}
	}
}
