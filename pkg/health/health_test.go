package health_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/health"
)

// recorder is a Publisher that keeps the events.
type recorder struct {
	mu  sync.Mutex
	evs []*events.HealthEvent
}

func (r *recorder) Publish(_ context.Context, ev events.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, ev.(*events.HealthEvent))
	r.mu.Unlock()
	return nil
}

func (r *recorder) of(t events.Type) []*events.HealthEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*events.HealthEvent
	for _, ev := range r.evs {
		if ev.Type == t {
			out = append(out, ev)
		}
	}
	return out
}

// script returns a checker that yields the given statuses/values in turn.
func script(results ...health.Result) (health.Checker, *atomic.Int32) {
	var n atomic.Int32
	return health.CheckerFunc(func(context.Context) health.Result {
		i := int(n.Add(1)) - 1
		return results[min(i, len(results)-1)]
	}), &n
}

func run(t *testing.T, m *health.Manager, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	time.Sleep(d)
	cancel()
	<-done
}

func TestIntervalsAndTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		m := health.NewManager(health.Options{Publisher: rec, Interval: 10 * time.Second, Jitter: -1, StatusEvery: time.Minute})
		h, d := health.Result{Status: health.Healthy}, health.Result{Status: health.Degraded, Message: "slow"}
		c, runs := script(h, h, d, d, h)
		if err := m.Register(health.Check{Name: "db", Checker: c}); err != nil {
			t.Fatal(err)
		}
		run(t, m, 55*time.Second) // runs at 0, 10, 20, 30, 40, 50
		if runs.Load() != 6 {
			t.Errorf("%d runs in 55s at a 10s interval, want 6", runs.Load())
		}
		if n := len(rec.of(events.CheckCompleted)); n != 6 {
			t.Errorf("%d check.completed events, want one per run (6)", n)
		}
		var seq []string
		for _, ev := range rec.evs {
			if strings.HasPrefix(string(ev.Type), "health.component.") {
				seq = append(seq, ev.Status)
			}
		}
		if strings.Join(seq, ",") != "healthy,degraded,healthy" {
			t.Errorf("component events %v, want transitions only: healthy,degraded,healthy", seq)
		}
	})
}

func TestHangingAndPanickingChecksAreContained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		m := health.NewManager(health.Options{Publisher: rec, Interval: 10 * time.Second, Timeout: 2 * time.Second, Jitter: -1, Concurrency: 1})
		release := make(chan struct{})
		_ = m.Register(health.Check{Name: "hangs", Checker: health.CheckerFunc(func(context.Context) health.Result {
			<-release // ignores its context
			return health.Result{Status: health.Healthy}
		})})
		_ = m.Register(health.Check{Name: "panics", Checker: health.CheckerFunc(func(context.Context) health.Result {
			panic("checker bug")
		})})
		var okRuns atomic.Int32
		_ = m.Register(health.Check{Name: "ok", Checker: health.CheckerFunc(func(context.Context) health.Result {
			okRuns.Add(1)
			return health.Result{Status: health.Healthy}
		})})
		run(t, m, 25*time.Second) // runs at 0, 10, 20
		close(release)
		byName := map[string][]string{}
		for _, ev := range rec.of(events.CheckCompleted) {
			byName[ev.Component] = append(byName[ev.Component], ev.Message)
		}
		if got := byName["hangs"]; len(got) != 3 || !strings.Contains(got[0], "timed out after 2s") || !strings.Contains(got[1], "still hanging") {
			t.Errorf("hanging check reported %v", got)
		}
		if got := byName["panics"]; len(got) != 3 || !strings.Contains(got[0], "checker bug") {
			t.Errorf("panicking check reported %v", got)
		}
		if okRuns.Load() != 3 {
			t.Errorf("the healthy check ran %d times beside the broken ones, want 3 (concurrency 1 must not be blocked by a hang)", okRuns.Load())
		}
	})
}

func TestThresholdHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		m := health.NewManager(health.Options{Publisher: rec, Interval: time.Second, Jitter: -1, StatusEvery: time.Hour})
		var vals []health.Result
		for _, v := range []float64{50, 95, 85, 96, 89, 75, 85, 91} {
			vals = append(vals, health.Result{Status: health.Healthy, Value: v, HasValue: true})
		}
		c, _ := script(vals...)
		_ = m.Register(health.Check{Name: "lag", Checker: c, Threshold: &health.Threshold{Limit: 90, Recover: 80}})
		run(t, m, 7500*time.Millisecond) // 8 runs
		var seq []string
		for _, ev := range rec.evs {
			switch ev.Type {
			case events.ThresholdExceeded, events.ThresholdRecovered:
				seq = append(seq, strings.TrimPrefix(string(ev.Type), "health.threshold.")+"@"+strings.TrimRight(strings.TrimRight(formatF(ev.Value), "0"), "."))
			}
		}
		if got := strings.Join(seq, ","); got != "exceeded@95,recovered@75,exceeded@91" {
			t.Errorf("threshold events %s, want exceeded@95,recovered@75,exceeded@91 (85 and 89 inside the band do not flap)", got)
		}
	})
}

func formatF(v float64) string { b, _ := json.Marshal(v); return string(b) }

func TestSystemStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		m := health.NewManager(health.Options{Publisher: rec, Interval: time.Second, Jitter: -1, StatusEvery: 5 * time.Second})
		_ = m.Register(health.Check{Name: "a", Checker: health.Func(func(context.Context) error { return nil })})
		d, _ := script(health.Result{Status: health.Degraded})
		_ = m.Register(health.Check{Name: "b", Checker: d, Weight: 0.1})
		run(t, m, 11*time.Second)
		st := rec.of(events.SystemStatus)
		if len(st) != 2 || st[0].Status != string(health.Degraded) {
			t.Fatalf("system status events %d (want 2, every 5s), status %v", len(st), st)
		}
		if rep := m.Report(); rep.Status != health.Degraded || rep.Score < 0.95 {
			t.Errorf("worst-of report %+v", rep)
		}
		w := health.NewManager(health.Options{Weighted: true, Jitter: -1})
		_ = w.Register(health.Check{Name: "a", Checker: health.Func(func(context.Context) error { return nil })})
		_ = w.Register(health.Check{Name: "b", Checker: d, Weight: 0.1})
		w.RunOnce(context.Background())
		if rep := w.Report(); rep.Status != health.Healthy {
			t.Errorf("weighted: a light degraded check keeps the system healthy: %+v", rep)
		}
	})
}

func TestProbes(t *testing.T) {
	m := health.NewManager(health.Options{Jitter: -1})
	fail := atomic.Bool{}
	_ = m.Register(health.Check{Name: "db", Critical: true, Checker: health.Func(func(context.Context) error {
		if fail.Load() {
			return context.DeadlineExceeded
		}
		return nil
	})})
	_ = m.Register(health.Check{Name: "cache", Checker: health.Func(func(context.Context) error { return context.Canceled })})
	mux := http.NewServeMux()
	m.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || body["ready"] != false {
		t.Errorf("/readyz before any run = %d %v, want 503", code, body)
	}
	m.RunOnce(context.Background())
	code, body := get("/readyz")
	if code != 200 || body["ready"] != true || len(body["checks"].([]any)) != 2 {
		t.Errorf("/readyz with a non-critical failure = %d %v, want 200 with both checks", code, body)
	}
	fail.Store(true)
	m.RunOnce(context.Background())
	if code, body := get("/readyz"); code != 503 || body["failing"].([]any)[0] != "db" {
		t.Errorf("/readyz with the critical check failed = %d %v", code, body)
	}
}

func TestRegisterValidates(t *testing.T) {
	m := health.NewManager(health.Options{})
	for _, c := range []health.Check{{}, {Name: "x"}, {Name: "y", Checker: health.Func(nil), Weight: -1}} {
		if err := m.Register(c); err == nil {
			t.Errorf("Register(%+v) accepted", c)
		}
	}
	ok := health.Check{Name: "z", Checker: health.Func(func(context.Context) error { return nil })}
	if err := m.Register(ok); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(ok); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
}

// A check registered while Run runs is run from then on; a critical one
// makes the manager ready once it passes.
func TestRegisterWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := health.NewManager(health.Options{Interval: 10 * time.Second, Jitter: -1, StatusEvery: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait() // Run has started
		c, runs := script(health.Result{Status: health.Healthy})
		if err := m.Register(health.Check{Name: "late", Critical: true, Checker: c}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Second) // runs at 0, 10, 20
		if n := runs.Load(); n != 3 {
			t.Errorf("a check registered during Run ran %d times in 25s at a 10s interval, want 3", n)
		}
		if ok, failing := m.Ready(); !ok {
			t.Errorf("not ready with the late critical check healthy; failing %v", failing)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// After Run has returned, Register only records the check; the next
		// Run runs it.
		if err := m.Register(health.Check{Name: "after", Checker: c}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := runs.Load(); n != 3 {
			t.Errorf("a check registered after Run returned ran (%d runs)", n-3)
		}
	})
}

// TestOptionsValidate: a negative value is refused by name instead of being
// replaced by the default; the zero Options (the defaults) and a negative
// Jitter (none) pass.
func TestOptionsValidate(t *testing.T) {
	if err := (health.Options{Jitter: -1}).Validate(); err != nil {
		t.Fatalf("zero options with no jitter: %v", err)
	}
	for _, tc := range []struct {
		o    health.Options
		want string
	}{
		{health.Options{Interval: -time.Second}, "Interval -1s"},
		{health.Options{Timeout: -time.Millisecond}, "Timeout -1ms"},
		{health.Options{StatusEvery: -time.Minute}, "StatusEvery -1m0s"},
		{health.Options{Concurrency: -3}, "Concurrency -3"},
	} {
		if err := tc.o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate = %v, want an error naming %q", tc.o, err, tc.want)
		}
	}
}
