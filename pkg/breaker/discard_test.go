package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

func TestNilPublisherIsRefused(t *testing.T) {
	if p, err := breaker.New(nil, breaker.Options{}); !errors.Is(err, breaker.ErrNoPublisher) || p != nil {
		t.Errorf("New(nil) = %v, %v; want ErrNoPublisher", p, err)
	}
	if b, err := breaker.Wrap(nil, breaker.Options{}); !errors.Is(err, breaker.ErrNoPublisher) || b != nil {
		t.Errorf("Wrap(nil) = %v, %v; want ErrNoPublisher", b, err)
	}
}

// discarded reads jetmon_discarded_events_total{reason} from reg.
func discarded(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	return metricValue(t, reg, "jetmon_discarded_events_total", map[string]string{"reason": reason})
}

// metricValue scrapes reg and returns the value of the series of name with
// the given labels (0 when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func TestPermanentAsyncFailureIsDiscarded(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		err          error
	}{
		{"too large", "too_large", fmt.Errorf("jsbus: %w", events.ErrPayloadTooLarge)},
		{"invalid", "invalid", fmt.Errorf("jsbus: %w", events.ErrInvalid)},
		{"unsupported", "unsupported", fmt.Errorf("redisbus: %w", events.ErrUnsupported)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bus := &flakyBus{}
				reg := prometheus.NewRegistry()
				p := newPublisher(t, bus, breaker.Options{Registerer: reg})
				defer func() { _ = p.Close() }()
				p.Failed(eventstest.NewEvent(events.OperationComplete, tc.name), tc.err)
				time.Sleep(time.Minute)
				synctest.Wait()
				if st := p.Stats(); st.Spooled != 0 || st.SpoolDepth != 0 || st.Permanent != 1 {
					t.Errorf("after Failed(%v): %+v; want discarded, not spooled", tc.err, st)
				}
				if got := discarded(t, reg, tc.reason); got != 1 {
					t.Errorf("discarded{reason=%s} = %v, want 1", tc.reason, got)
				}
				if n := bus.callCount(); n != 0 {
					t.Errorf("the bus was called %d times for an event that can never be published", n)
				}
			})
		})
	}
}

// echoBus accepts every publish at once and then reports it failed
// asynchronously, as a JetStream stream with a small max_msg_size does.
type echoBus struct {
	mu    sync.Mutex
	p     *breaker.Publisher
	calls int
}

func (e *echoBus) Publish(_ context.Context, ev events.Event) error {
	e.mu.Lock()
	e.calls++
	p := e.p
	e.mu.Unlock()
	go p.Failed(ev, errors.New("nats: message size exceeds maximum allowed"))
	return nil
}

func (e *echoBus) callCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

func TestAsyncFailureLoopEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &echoBus{}
		reg := prometheus.NewRegistry()
		p := newPublisher(t, bus, breaker.Options{Registerer: reg, MaxAsyncFailures: 3})
		bus.mu.Lock()
		bus.p = p
		bus.mu.Unlock()
		defer func() { _ = p.Close() }()
		if err := p.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, "loop")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		st := p.Stats()
		// One publish and three re-sends; the fourth failure discards it.
		if n := bus.callCount(); n != 4 || st.SpoolDepth != 0 || st.Permanent != 1 {
			t.Errorf("after a minute: %d sends, %+v; want 4 sends, an empty spool, 1 discarded", n, st)
		}
		if got := discarded(t, reg, "retries_exhausted"); got != 1 {
			t.Errorf("discarded{reason=retries_exhausted} = %v, want 1", got)
		}
	})
}

func TestOversizedEventIsNeverSpooled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true} // a transient failure: the breaker would spool
		reg := prometheus.NewRegistry()
		p := newPublisher(t, bus, breaker.Options{Registerer: reg, MaxEventBytes: 4 << 10, ConsecutiveFailures: 100})
		defer func() { _ = p.Close() }()
		big := sizedEvent(t, "big", 8<<10) // valid, but over MaxEventBytes
		if err := big.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(t.Context(), big); !errors.Is(err, events.ErrPayloadTooLarge) {
			t.Errorf("Publish(8 KiB event) = %v, want ErrPayloadTooLarge", err)
		}
		p.Failed(big, errors.New("ack timeout"))
		if st := p.Stats(); st.Spooled != 0 || st.SpoolDepth != 0 || st.Permanent != 2 {
			t.Errorf("stats %+v; want nothing spooled, 2 discarded", st)
		}
		if got := discarded(t, reg, "too_large"); got != 2 {
			t.Errorf("discarded{reason=too_large} = %v, want 2", got)
		}
		// A small event still goes through the spool once the bus is back.
		publish(t, p, "small")
		bus.set(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := bus.appEvents(); len(got) != 1 || got[0] != "small" {
			t.Errorf("delivered %v, want [small]", got)
		}
	})
}

// TestDrainDiscardsPermanentFailures: a spooled event the bus refuses for
// good when it is re-sent is discarded and counted, and the spool moves on.
func TestDrainDiscardsPermanentFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true}
		reg := prometheus.NewRegistry()
		p := newPublisher(t, bus, breaker.Options{Registerer: reg, ConsecutiveFailures: 1, OpenTimeout: time.Second})
		defer func() { _ = p.Close() }()
		publish(t, p, "a", "b")
		bus.mu.Lock()
		bus.err = fmt.Errorf("refused: %w", events.ErrPayloadTooLarge)
		bus.mu.Unlock()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		st := p.Stats()
		if st.SpoolDepth != 0 || st.Permanent < 2 {
			t.Errorf("stats %+v; want an empty spool and the spooled events discarded", st)
		}
		if got := discarded(t, reg, "too_large"); got < 2 {
			t.Errorf("discarded{reason=too_large} = %v, want at least 2", got)
		}
	})
}

// TestGaugesWithoutStats: the spool and state gauges are right at scrape
// time, without anyone calling Stats.
func TestGaugesWithoutStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bus := &flakyBus{down: true}
		reg := prometheus.NewRegistry()
		p := newPublisher(t, bus, breaker.Options{Registerer: reg, ConsecutiveFailures: 1, OpenTimeout: time.Hour})
		defer func() { _ = p.Close() }()
		publish(t, p, "a", "b", "c")
		synctest.Wait()
		gauge := func(name string) float64 { return metricValue(t, reg, name, nil) }
		// Three events and the breaker's own closed -> open event.
		if got := gauge("jetmon_spool_events"); got != 4 {
			t.Errorf("jetmon_spool_events = %v, want 4", got)
		}
		if got := gauge("jetmon_spool_bytes"); got <= 0 {
			t.Errorf("jetmon_spool_bytes = %v, want > 0", got)
		}
		if got := gauge("jetmon_breaker_state"); got != 2 {
			t.Errorf("jetmon_breaker_state = %v, want 2 (open)", got)
		}
		if n, err := testutil.GatherAndCount(reg, "jetmon_discarded_events_total"); err != nil || n != 0 {
			t.Errorf("discarded series = %d, %v; want none yet", n, err)
		}
	})
}
