package monitor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/health"
	"github.com/jetmon/jetmon/pkg/monitor"
)

// Every goroutine a monitor starts has stopped when the package's tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t *testing.T, url string, batch int) *jsbus.Bus {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.BatchMaxEvents = batch
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bus
}

// count replays the stored events matching pattern, by type.
func count(t *testing.T, url, pattern string) map[events.Type]int {
	t.Helper()
	bus := connect(t, url, 1)
	defer func() { _ = bus.Close() }()
	n := map[events.Type]int{}
	if _, err := bus.Replay(t.Context(), pattern, jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		n[ev.Metadata().Type]++
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCloseLosesNothing times calls through a batching, asynchronous bus and
// closes at once: every call is stored, exactly once, when Close returns —
// the queued records, the open batch and the unacknowledged publishes all
// settle in order. The health check's events travel the same way.
func TestCloseLosesNothing(t *testing.T) {
	const calls = 5000
	for _, batch := range []int{1, 100} {
		srv := natstest.Start(t)
		bus := connect(t, srv.ClientURL(), batch)
		source := "checkout"
		mon, err := monitor.Start(t.Context(), bus, monitor.Options{
			Source: source, Health: health.Options{Interval: time.Hour, StatusEvery: time.Hour, Jitter: -1},
		})
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan struct{})
		if err := mon.Health.Register(health.Check{Name: "db", Checker: health.CheckerFunc(func(context.Context) health.Result {
			defer close(ran)
			return health.Result{Status: health.Healthy}
		})}); err != nil {
			t.Fatal(err)
		}
		<-ran // the check ran once while the monitor was up; its event is in flight
		for range calls {
			if err := handle(t.Context(), mon.Coordinator); err != nil {
				t.Fatal(err)
			}
		}
		if err := mon.Close(t.Context()); err != nil {
			t.Fatalf("batch %d: Close: %v", batch, err)
		}
		if err := mon.Close(t.Context()); err != nil {
			t.Errorf("batch %d: second Close: %v", batch, err)
		}
		got := count(t, srv.ClientURL(), "performance.operation.complete")
		if got[events.OperationComplete] != calls {
			t.Errorf("batch %d: %d timed calls stored after Close, want exactly %d", batch, got[events.OperationComplete], calls)
		}
		if st := mon.Publisher.Stats(); st.Dropped != 0 || st.SpoolDepth != 0 {
			t.Errorf("batch %d: breaker %+v, want nothing dropped or left", batch, st)
		}
		if ed := mon.Coordinator.EventDriven(); ed == nil || ed.Stats().Dropped != 0 {
			t.Errorf("batch %d: coordinator dropped records", batch)
		}
		if err := bus.Publish(t.Context(), events.NewSystemEvent(events.SystemError, source, "late")); !errors.Is(err, events.ErrClosed) {
			t.Errorf("batch %d: the bus still publishes after Close: %v", batch, err)
		}
		if h := count(t, srv.ClientURL(), "health.component.*"); h[events.ComponentHealthy] != 1 || len(h) != 1 {
			t.Errorf("batch %d: health events stored: %v, want the one component.healthy", batch, h)
		}
	}
}

func handle(ctx context.Context, c coordinator.Coordinator) (err error) {
	defer coordinator.TimeErr(ctx, c, "handle", &err)()
	return nil
}

func TestStartRejectsBadInput(t *testing.T) {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	for _, tc := range []struct {
		name string
		bus  events.Bus
		o    monitor.Options
		want string
	}{
		{"nil bus", nil, monitor.Options{Source: "a"}, "nil bus"},
		{"no source", bus, monitor.Options{}, "Source is required"},
		{"bad breaker", bus, monitor.Options{Source: "a", Breaker: breaker.Options{FailureRatio: 2}}, "monitor: Breaker: breaker options: FailureRatio 2"},
		{"bad health", bus, monitor.Options{Source: "a", Health: health.Options{Interval: -time.Second}}, "monitor: Health: health options: Interval -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := monitor.Start(t.Context(), tc.bus, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || m != nil {
				t.Errorf("Start = %v, %v; want an error naming %q", m, err, tc.want)
			}
		})
	}
}
