package alerting_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// recorder is a receiver target that keeps what it was sent, with the
// (bubble) time it was sent at.
type recorder struct {
	mu sync.Mutex
	ns []*alerting.Notification
	at []time.Time
}

func (r *recorder) notify(_ context.Context, n *alerting.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, n)
	r.at = append(r.at, time.Now())
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ns)
}

func (r *recorder) last(t *testing.T) *alerting.Notification {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ns) == 0 {
		t.Fatal("no notification")
	}
	return r.ns[len(r.ns)-1]
}

// sink records alert transitions.
type sink struct {
	mu sync.Mutex
	ts []alerting.Transition
}

func (s *sink) PublishAlert(_ context.Context, t alerting.Transition) error {
	s.mu.Lock()
	s.ts = append(s.ts, t)
	s.mu.Unlock()
	return nil
}

func (s *sink) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, t := range s.ts {
		out = append(out, fmt.Sprintf("%s:%s>%s", t.Alert.Labels["source"], t.From, t.To))
	}
	return out
}

type harness struct {
	svc  *alerting.Service
	rec  *recorder
	sink *sink
	bus  *events.MemoryBus
}

// start runs a service inside the synctest bubble with the receiver "r"
// recording notifications.
func start(t *testing.T, rules string, store alerting.Store) *harness {
	t.Helper()
	cfg, err := alerting.ParseEmbedded("test.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{rec: &recorder{}, sink: &sink{}, bus: events.NewMemoryBus(events.MemoryOptions{})}
	h.svc, err = alerting.New(alerting.Options{
		Config: cfg, Store: store, Alerts: h.sink, Bus: h.bus, Instance: "test", Logger: testLogger(t),
		Notify: map[string]alerting.NotifyFunc{"r": h.rec.notify},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := h.svc.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = h.bus.Close()
	})
	synctest.Wait()
	if !h.svc.Ready() {
		t.Fatal("service not ready")
	}
	return h
}

func testLogger(t *testing.T) *zerolog.Logger {
	l := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	return &l
}

func (h *harness) observe(t *testing.T, ev events.Event) {
	t.Helper()
	if err := h.svc.Observe(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
}

func (h *harness) state(t *testing.T, source string) alerting.State {
	t.Helper()
	as, err := h.svc.Alerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Labels["source"] == source {
			return a.State
		}
	}
	return alerting.StateInactive
}

func window(source, op string, p95 float64) *events.AggregateEvent {
	now := time.Now()
	a := events.NewAggregateEvent(events.OperationComplete, source, op, now.Add(-10*time.Second), now)
	a.Count, a.P95, a.Avg = 100, p95, p95/2
	return a
}

func health(source, component, status string) *events.HealthEvent {
	t := map[string]events.Type{"healthy": events.ComponentHealthy, "degraded": events.ComponentDegraded, "failed": events.ComponentFailed}[status]
	return events.NewHealthEvent(t, source, component)
}

const slowRule = `
rules:
  - alert: Slow
    match: {type: performance.operation.complete, operation: charge}
    field: p95
    threshold: 250
    recover: 200
    for: 30s
    keep_firing_for: 1m
    labels: {severity: warning}
    annotations: {summary: "p95 {{ .Value }} ms"}
route:
  receiver: r
  group_by: [alertname]
  group_wait: 0s
  group_interval: 10s
  repeat_interval: 1h
receivers:
  - name: r
`

func TestForKeepFiringForAndHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, slowRule, nil)
		h.observe(t, window("checkout", "charge", 300))
		if s := h.state(t, "checkout"); s != alerting.StatePending {
			t.Fatalf("after first breach: %s", s)
		}
		time.Sleep(29 * time.Second)
		h.observe(t, window("checkout", "charge", 280))
		if s := h.state(t, "checkout"); s != alerting.StatePending || h.rec.count() != 0 {
			t.Fatalf("before for elapsed: %s, %d notifications", s, h.rec.count())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateFiring {
			t.Fatalf("after for: %s", s)
		}
		if n := h.rec.last(t); len(n.Firing) != 1 || n.Firing[0].Annotations["summary"] != "p95 280 ms" {
			t.Fatalf("firing notification: %+v", n.Firing[0])
		}
		// 220 is under the threshold but above the recovery threshold.
		h.observe(t, window("checkout", "charge", 220))
		as, _ := h.svc.Alerts(context.Background())
		if !as[0].Exceeding || as[0].State != alerting.StateFiring {
			t.Fatalf("hysteresis: %+v", as[0].Alert)
		}
		h.observe(t, window("checkout", "charge", 150))
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateFiring {
			t.Fatalf("within keep_firing_for: %s", s)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateResolved {
			t.Fatalf("after keep_firing_for: %s", s)
		}
		if n := h.rec.last(t); h.rec.count() != 2 || len(n.Resolved) != 1 || len(n.Firing) != 0 {
			t.Fatalf("resolved notification: %d notifications, last %+v", h.rec.count(), n)
		}
		if got, want := h.sink.states(), []string{"checkout:inactive>pending", "checkout:pending>firing", "checkout:firing>resolved"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		var types []events.Type
		for _, ev := range h.bus.Published() {
			types = append(types, ev.Metadata().Type)
		}
		if want := []events.Type{events.ThresholdExceeded, events.ThresholdRecovered}; !slices.Equal(types, want) {
			t.Fatalf("lifecycle events %v, want %v", types, want)
		}
	})
}

func TestPendingThatClearsNeverFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, slowRule, nil)
		h.observe(t, window("checkout", "charge", 300))
		time.Sleep(10 * time.Second)
		h.observe(t, window("checkout", "charge", 100))
		time.Sleep(time.Minute)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateInactive || h.rec.count() != 0 {
			t.Fatalf("state %s, %d notifications", s, h.rec.count())
		}
		if got, want := h.sink.states(), []string{"checkout:inactive>pending", "checkout:pending>inactive"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
	})
}

func TestGroupingWaitIntervalRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: Slow
    field: p95
    threshold: 250
    stale_after: 10h
route:
  receiver: r
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
  - name: r
`, nil)
		t0 := time.Now()
		for i, src := range []string{"a", "b", "c"} {
			if i > 0 {
				time.Sleep(10 * time.Second)
			}
			h.observe(t, window(src, "op", 300))
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if h.rec.count() != 0 {
			t.Fatal("notified before group_wait")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h.rec.count() != 1 || len(h.rec.last(t).Firing) != 3 || h.rec.at[0].Sub(t0) != 30*time.Second {
			t.Fatalf("first flush: %d notifications, last %+v", h.rec.count(), h.rec.last(t))
		}
		time.Sleep(10 * time.Second)
		h.observe(t, window("d", "op", 300)) // t0+40s
		time.Sleep(5*time.Minute - 11*time.Second)
		synctest.Wait()
		if h.rec.count() != 1 {
			t.Fatal("notified before group_interval")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h.rec.count() != 2 || len(h.rec.last(t).Firing) != 4 || h.rec.at[1].Sub(t0) != 5*time.Minute+30*time.Second {
			t.Fatalf("second flush: %d notifications at %v", h.rec.count(), h.rec.at)
		}
		// Nothing changes: the next notification is the repeat, an hour later.
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		if h.rec.count() != 2 {
			t.Fatalf("notified again before repeat_interval: %v", h.rec.at)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h.rec.count() != 3 || len(h.rec.last(t).Firing) != 4 {
			t.Fatalf("repeat: %d notifications", h.rec.count())
		}
	})
}

func TestInhibition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: DatabaseDown
    kind: health
    match: {component: db}
    labels: {severity: critical}
  - alert: Slow
    field: p95
    threshold: 250
    labels: {severity: warning}
route:
  receiver: r
  group_by: [alertname, source]
  group_wait: 0s
  group_interval: 1m
inhibit_rules:
  - source_matchers: {severity: critical}
    target_matchers: {severity: warning}
    equal: [source]
receivers:
  - name: r
`, nil)
		h.observe(t, health("checkout", "db", "failed"))
		h.observe(t, window("checkout", "charge", 300))
		h.observe(t, window("cart", "add", 300)) // another source: not inhibited
		names := func() []string {
			h.rec.mu.Lock()
			defer h.rec.mu.Unlock()
			var out []string
			for _, n := range h.rec.ns {
				for _, a := range n.Firing {
					out = append(out, a.Rule+"/"+a.Labels["source"])
				}
				for _, a := range n.Resolved {
					out = append(out, "resolved:"+a.Rule+"/"+a.Labels["source"])
				}
			}
			slices.Sort(out)
			return out
		}
		if got, want := names(), []string{"DatabaseDown/checkout", "Slow/cart"}; !slices.Equal(got, want) {
			t.Fatalf("notified %v, want %v", got, want)
		}
		as, _ := h.svc.Alerts(context.Background())
		for _, a := range as {
			if a.Rule == "Slow" && a.Labels["source"] == "checkout" && len(a.InhibitedBy) != 1 {
				t.Fatalf("inhibited_by not reported: %+v", a)
			}
		}
		h.observe(t, health("checkout", "db", "healthy"))
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := names(), []string{"DatabaseDown/checkout", "Slow/cart", "Slow/checkout", "resolved:DatabaseDown/checkout"}; !slices.Equal(got, want) {
			t.Fatalf("after the inhibitor resolved: notified %v, want %v", got, want)
		}
	})
}

func TestSilenceMutesUntilItExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: Slow
    field: p95
    threshold: 250
    stale_after: 10h
route:
  receiver: r
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: r
`, nil)
		req := alerting.SilenceRequest{Matchers: map[string]string{"alertname": "Slow", "source": "=~check.*"}, Duration: "1h", Comment: "deploy"}
		sil, err := req.Silence(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.PutSilence(context.Background(), sil); err != nil {
			t.Fatal(err)
		}
		h.observe(t, window("checkout", "charge", 300))
		h.observe(t, window("cart", "add", 300))
		// The group flushed (with nothing to say) when the silenced alert
		// joined it, so the next flush is group_interval later.
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := h.rec.last(t); h.rec.count() != 1 || len(n.Firing) != 1 || n.Firing[0].Labels["source"] != "cart" {
			t.Fatalf("silence not applied: %d notifications, %+v", h.rec.count(), n.Firing)
		}
		as, _ := h.svc.Alerts(context.Background())
		silenced := 0
		for _, a := range as {
			silenced += len(a.SilencedBy)
		}
		if silenced != 1 {
			t.Fatalf("silenced_by: %d", silenced)
		}
		time.Sleep(time.Hour - time.Minute - time.Second)
		synctest.Wait()
		if h.rec.count() != 1 {
			t.Fatal("notified while silenced")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := h.rec.last(t); h.rec.count() != 2 || len(n.Firing) != 2 {
			t.Fatalf("after expiry: %d notifications, last %+v", h.rec.count(), n)
		}
		// Expiring by hand (API, CLI) works the same way.
		sil2, err := (&alerting.SilenceRequest{Matchers: map[string]string{"source": "cart"}, Duration: "2h"}).Silence(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.PutSilence(context.Background(), sil2); err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.ExpireSilence(context.Background(), sil2.ID); err != nil {
			t.Fatal(err)
		}
		if ss, _ := h.svc.Silences(context.Background()); len(ss) != 2 || ss[0].Active(time.Now()) || ss[1].Active(time.Now()) {
			t.Fatalf("silences after expiry: %+v", ss)
		}
		// Expired silences are deleted a day later.
		time.Sleep(alerting.ExpiredSilenceRetention + 10*time.Second)
		synctest.Wait()
		if ss, _ := h.svc.Silences(context.Background()); len(ss) != 0 {
			t.Fatalf("expired silences kept: %d", len(ss))
		}
	})
}

func TestRestartResumesWithoutRenotifying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := alerting.NewMemoryStore()
		const rules = `
rules:
  - alert: Slow
    field: p95
    threshold: 250
    stale_after: 10h
route:
  receiver: r
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: r
`
		ctx, cancel := context.WithCancel(context.Background())
		first := startIn(t, ctx, rules, store)
		first.observe(t, window("checkout", "charge", 300))
		if first.rec.count() != 1 {
			t.Fatalf("first instance: %d notifications", first.rec.count())
		}
		cancel()
		synctest.Wait()

		second := start(t, rules, store)
		if s := second.state(t, "checkout"); s != alerting.StateFiring {
			t.Fatalf("restored state %s", s)
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if second.rec.count() != 0 {
			t.Fatal("restarted instance re-notified a firing alert")
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if second.rec.count() != 1 {
			t.Fatalf("repeat after restart: %d notifications", second.rec.count())
		}
	})
}

// startIn is start with the service's lifetime bound to ctx.
func startIn(t *testing.T, ctx context.Context, rules string, store alerting.Store) *harness {
	t.Helper()
	cfg, err := alerting.ParseEmbedded("test.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{rec: &recorder{}, sink: &sink{}}
	h.svc, err = alerting.New(alerting.Options{Config: cfg, Store: store, Alerts: h.sink, Instance: "first", Notify: map[string]alerting.NotifyFunc{"r": h.rec.notify}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.svc.Run(ctx) }()
	synctest.Wait()
	return h
}

func TestReloadKeepsStateAndResolvesRemovedRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, slowRule, nil)
		h.observe(t, window("checkout", "charge", 300))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if h.state(t, "checkout") != alerting.StateFiring || h.rec.count() != 1 {
			t.Fatal("not firing")
		}
		changed, err := alerting.ParseEmbedded("test.yaml", []byte(slowRule+"  - name: other\n    log: {}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.svc.Reload(context.Background(), changed); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if h.state(t, "checkout") != alerting.StateFiring || h.rec.count() != 1 {
			t.Fatalf("reload changed the alert: %s, %d notifications", h.state(t, "checkout"), h.rec.count())
		}
		without, err := alerting.ParseEmbedded("test.yaml", []byte(`
rules:
  - alert: Other
    field: p99
    threshold: 1
route: {receiver: r, group_wait: 0s, group_interval: 10s}
receivers: [{name: r}]
`))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.svc.Reload(context.Background(), without); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := h.rec.last(t); h.rec.count() != 2 || len(n.Resolved) != 1 {
			t.Fatalf("removing the rule did not resolve its alert: %d notifications", h.rec.count())
		}
	})
}

func TestRateRuleSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: Errors
    kind: rate
    match: {type: system.error}
    window: 1m
    threshold: 5
route: {receiver: r, group_wait: 0s, group_interval: 10s}
receivers: [{name: r}]
`, nil)
		for range 6 {
			h.observe(t, events.NewSystemEvent(events.SystemError, "checkout", "boom"))
			time.Sleep(time.Second)
		}
		if h.state(t, "checkout") != alerting.StateFiring {
			t.Fatal("6 errors in a minute did not fire")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateResolved {
			t.Fatalf("after the window slid past the errors: %s", s)
		}
	})
}

// A series whose windows stop (no traffic) clears after stale_after.
func TestStaleSeriesResolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: Slow
    field: p95
    threshold: 250
    stale_after: 2m
route: {receiver: r, group_wait: 0s, group_interval: 10s}
receivers: [{name: r}]
`, nil)
		h.observe(t, window("checkout", "charge", 300))
		if h.state(t, "checkout") != alerting.StateFiring {
			t.Fatal("not firing")
		}
		time.Sleep(2*time.Minute - time.Second)
		synctest.Wait()
		if h.state(t, "checkout") != alerting.StateFiring {
			t.Fatal("resolved before stale_after")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateResolved {
			t.Fatalf("after stale_after: %s", s)
		}
	})
}

// TestAmendmentsAreNoSamples: an amendment window (the few events that came
// after their window) breaching the threshold starts nothing, while the same
// window as a first window does.
func TestAmendmentsAreNoSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, slowRule, nil)
		am := window("checkout", "charge", 900)
		am.Amendment = true
		h.observe(t, am)
		if s := h.state(t, "checkout"); s != alerting.StateInactive {
			t.Fatalf("after an amendment breaching the threshold: %s", s)
		}
		h.observe(t, window("checkout", "charge", 900))
		if s := h.state(t, "checkout"); s != alerting.StatePending {
			t.Fatalf("after a first window breaching the threshold: %s", s)
		}
	})
}
