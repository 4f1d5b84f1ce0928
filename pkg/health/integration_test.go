package health_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/redistest"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/health"
	"github.com/jetmon/jetmon/streams"
)

func check(t *testing.T, c health.Checker) health.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Check(ctx)
}

// TestCheckersAgainstRealServers runs the built-in checkers against a real
// embedded nats-server, a real redis-server, an HTTP server, the disk and the
// runtime, and publishes the manager's events on the JetStream bus.
func TestCheckersAgainstRealServers(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())

	if r := check(t, health.NATS(bus.Conn())); r.Status != health.Healthy {
		t.Errorf("NATS: %+v", r)
	}
	if r := check(t, health.JetStream(bus.JetStream(), streams.Performance, "", 0)); r.Status != health.Healthy {
		t.Errorf("JetStream stream: %+v", r)
	}
	if r := check(t, health.JetStream(bus.JetStream(), "NOPE", "", 0)); r.Status != health.Failed {
		t.Errorf("missing stream: %+v", r)
	}
	// A durable consumer with 5 unconsumed events: lag 5, over a max lag of 3.
	sub, err := bus.Subscribe(t.Context(), "performance.>", events.HandlerFunc(func(context.Context, events.Event) error { return nil }), events.Durable("lagging"))
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Unsubscribe()
	for range 5 {
		ev := events.NewPerformanceEvent(events.OperationComplete, "svc")
		ev.Operation = "op"
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := check(t, health.JetStream(bus.JetStream(), streams.Performance, "lagging", 3)); r.Status != health.Degraded || r.Value != 5 {
		t.Errorf("consumer lag: %+v, want degraded with value 5", r)
	}

	rs := redistest.Start(t)
	if r := check(t, health.Redis(rs.Addr, "")); r.Status != health.Healthy {
		t.Errorf("Redis: %+v", r)
	}
	const secret = "hunter2-redis"
	rp := redistest.Start(t, "--requirepass", secret)
	if r := check(t, health.Redis(rp.Addr, secret)); r.Status != health.Healthy {
		t.Errorf("Redis with AUTH: %+v", r)
	}
	if r := check(t, health.Redis(rp.Addr, "wrong-"+secret)); r.Status != health.Failed || strings.Contains(r.Message, secret) {
		t.Errorf("Redis with a wrong password: %+v (the message must not echo it)", r)
	}
	if r := check(t, health.TCP(rs.Addr)); r.Status != health.Healthy {
		t.Errorf("TCP: %+v", r)
	}
	rs.Stop()
	if r := check(t, health.Redis(rs.Addr, "")); r.Status != health.Failed {
		t.Errorf("Redis down: %+v", r)
	}

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(50 * time.Millisecond)
		}
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer web.Close()
	if r := check(t, health.HTTP(nil, web.URL+"/ok", 0, time.Second)); r.Status != health.Healthy {
		t.Errorf("HTTP ok: %+v", r)
	}
	if r := check(t, health.HTTP(nil, web.URL+"/broken", 0, 0)); r.Status != health.Failed || !strings.Contains(r.Message, "500") {
		t.Errorf("HTTP 500: %+v", r)
	}
	if r := check(t, health.HTTP(nil, web.URL+"/slow", 0, 10*time.Millisecond)); r.Status != health.Degraded {
		t.Errorf("HTTP slow: %+v", r)
	}
	if r := check(t, health.DiskFree(t.TempDir(), 0.0001, 0)); r.Status != health.Healthy || !r.HasValue || r.Value <= 0 {
		t.Errorf("DiskFree: %+v", r)
	}
	if r := check(t, health.DiskFree(t.TempDir(), 101, 0)); r.Status != health.Degraded {
		t.Errorf("DiskFree under the warning level: %+v", r)
	}
	if r := check(t, health.Runtime(1, 0)); r.Status != health.Degraded {
		t.Errorf("Runtime over 1 goroutine: %+v", r)
	}

	// The monitoring self-check, with a real breaker in front of the bus.
	br, err := breaker.New(bus, breaker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = br.Close() }()
	self := health.Monitoring(health.MonitoringState{
		Connected: bus.IsConnected,
		Breaker:   func() (string, int) { st := br.Stats(); return string(st.State), st.SpoolDepth },
	})
	if r := check(t, self); r.Status != health.Healthy {
		t.Errorf("monitoring self-check: %+v", r)
	}

	// The manager's events travel on the JetStream bus.
	col := make(chan events.Event, 16)
	if _, err := bus.Subscribe(t.Context(), "health.>", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		col <- ev
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	m := health.NewManager(health.Options{Publisher: bus, Source: "agent-1"})
	_ = m.Register(health.Check{Name: "nats", Checker: health.NATS(bus.Conn()), Critical: true})
	m.RunOnce(t.Context())
	got := map[events.Type]bool{}
	for len(got) < 2 {
		select {
		case ev := <-col:
			got[ev.Metadata().Type] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("health events on the bus: %v", got)
		}
	}
	if !got[events.CheckCompleted] || !got[events.ComponentHealthy] {
		t.Errorf("events %v", got)
	}

	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for check(t, health.NATS(bus.Conn())).Status == health.Healthy && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r := check(t, health.NATS(bus.Conn())); r.Status == health.Healthy {
		t.Errorf("NATS after the server stopped: %+v", r)
	}
	if r := check(t, self); r.Status != health.Failed {
		t.Errorf("monitoring self-check with the bus down: %+v", r)
	}
}
