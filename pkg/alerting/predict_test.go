package alerting_test

import (
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

func predictRule(t *testing.T, method string) *alerting.Rule {
	t.Helper()
	cfg, err := alerting.ParseEmbedded("p.yaml", []byte(fmt.Sprintf(`
rules:
  - alert: CheckoutSlowSoon
    kind: predict
    match: {operation: charge}
    field: p95
    threshold: 250
    predict: {method: %s, horizon: 5m, history: 20}
    annotations: {summary: "p95 reaches 250 ms in ~{{ .ETA }} ({{ printf \"%%.0f\" .Forecast }} ms at the horizon, error {{ printf \"%%.1f\" .Error }})"}
route: {receiver: r, group_wait: 0s}
receivers: [{name: r}]
`, method)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Rules[0]
}

// trend is a generated history: p95 = 100 ms + 1 ms per 10 s window,
// plus noise of ±amp alternating, from t0; window i ends at t0 + (i+1)·10 s.
// Without noise the threshold 250 is first exceeded by window 151, which
// ends at t0 + 1520 s.
func trend(n int, amp float64) []*events.AggregateEvent {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []*events.AggregateEvent
	for i := range n {
		end := t0.Add(time.Duration(i+1) * 10 * time.Second)
		w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", end.Add(-10*time.Second), end)
		w.Count = 100
		w.P95 = 100 + float64(i) + amp*float64(1-2*(i%2))
		out = append(out, w)
	}
	return out
}

// On a noiseless trend the linear forecast crosses 250 ms exactly a
// horizon (5 min, 30 windows) before the value does: the backtest reports
// a lead of 5 minutes. Holt's smoothing lands within one window of it.
// With ±3 ms of alternating noise both still lead by about the horizon;
// Holt's trend, chasing the noise, runs up to two minutes early.
func TestBacktestLeadsThresholdByHorizon(t *testing.T) {
	for _, c := range []struct {
		method   string
		amp      float64
		min, max time.Duration
	}{
		{"linear", 0, 5 * time.Minute, 5 * time.Minute},
		{"holt", 0, 5*time.Minute - 10*time.Second, 5 * time.Minute},
		{"linear", 3, 4 * time.Minute, 5*time.Minute + 30*time.Second},
		{"holt", 3, 4 * time.Minute, 7 * time.Minute},
	} {
		t.Run(fmt.Sprintf("%s_noise_%v", c.method, c.amp), func(t *testing.T) {
			res := alerting.Backtest(predictRule(t, c.method), trend(200, c.amp))
			if len(res) != 1 {
				t.Fatalf("%d series", len(res))
			}
			r := res[0]
			wantThreshold := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(152 * 10 * time.Second)
			if c.amp == 0 && !r.ThresholdFired.Equal(wantThreshold) {
				t.Fatalf("threshold rule fired at %v, want %v", r.ThresholdFired, wantThreshold)
			}
			if r.Lead < c.min || r.Lead > c.max {
				t.Fatalf("lead %v, want within [%v, %v] (fired %v, threshold %v)", r.Lead, c.min, c.max, r.Fired, r.ThresholdFired)
			}
			if c.amp == 0 && (r.Forecast.Error > 1e-6 || math.Abs(r.Forecast.Slope-0.1) > 1e-9) && c.method == "linear" {
				t.Fatalf("forecast %+v: a line is fitted exactly", r.Forecast)
			}
			if r.Forecast.ETA <= 0 || r.Forecast.ETA > 5*time.Minute {
				t.Fatalf("ETA %v", r.Forecast.ETA)
			}
		})
	}
}

// In the running service, the predict alert fires with the forecast and
// its error in the alert and its annotations.
func TestPredictTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, `
rules:
  - alert: CheckoutSlowSoon
    kind: predict
    match: {operation: charge}
    field: p95
    threshold: 250
    predict: {method: linear, horizon: 5m}
    annotations: {summary: "p95 reaches 250 ms in ~{{ .ETA }}"}
route: {receiver: r, group_wait: 0s}
receivers: [{name: r}]
`, nil)
		for i := range 122 {
			time.Sleep(10 * time.Second)
			w := window("checkout", "charge", 100+float64(i))
			h.observe(t, w)
			if i == 119 && h.state(t, "checkout") != alerting.StateInactive {
				t.Fatalf("fired at window %d", i)
			}
		}
		// Window 121 (p95 221 ms) forecasts 251 ms at 5 min.
		as, _ := h.svc.Alerts(t.Context())
		if len(as) != 1 || as[0].State != alerting.StateFiring || as[0].Forecast == nil {
			t.Fatalf("alerts %+v", as)
		}
		f := as[0].Forecast
		if math.Abs(f.Value-251) > 1e-6 || f.ETA != 4*time.Minute+50*time.Second || f.Error > 1e-6 {
			t.Fatalf("forecast %+v", f)
		}
		if got := as[0].Annotations["summary"]; got != "p95 reaches 250 ms in ~4m50s" {
			t.Fatalf("summary %q", got)
		}
	})
}
