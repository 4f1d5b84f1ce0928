package alerting_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

func anomalyEngine(t *testing.T, extra string) *alerting.Engine {
	t.Helper()
	cfg, err := alerting.ParseEmbedded("a.yaml", []byte(`
rules:
  - alert: LatencyAnomaly
    kind: anomaly
    field: p95
    anomaly: {k: 4, min_samples: 20`+extra+`}
route: {receiver: r}
receivers: [{name: r}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return alerting.NewEngine(cfg.Rules)
}

func feed(e *alerting.Engine, source string, at time.Time, v float64) []alerting.Transition {
	a := events.NewAggregateEvent(events.OperationComplete, source, "charge", at.Add(-10*time.Second), at)
	a.Count, a.P95 = 10, v
	return e.Observe(a, at)
}

func TestAnomalyFiresOnlyAfterWarmUp(t *testing.T) {
	for _, method := range []string{"mad", "ewma"} {
		t.Run(method, func(t *testing.T) {
			e := anomalyEngine(t, ", method: "+method)
			rng := rand.New(rand.NewPCG(1, 2))
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
			// A new series spikes during warm-up: nobody is paged.
			for i := range 5 {
				if ts := feed(e, "fresh", at(i), 100+rng.Float64()*10); len(ts) != 0 {
					t.Fatalf("warm-up sample %d fired", i)
				}
			}
			if ts := feed(e, "fresh", at(5), 10_000); len(ts) != 0 {
				t.Fatal("a spike during warm-up fired")
			}
			// A steady series with noise: no alert for 200 windows.
			for i := range 200 {
				if ts := feed(e, "steady", at(i), 100+rng.NormFloat64()*5); len(ts) != 0 {
					t.Fatalf("normal noise fired at window %d: %+v", i, ts[0].Alert)
				}
			}
			ts := feed(e, "steady", at(200), 200)
			if len(ts) != 1 || ts[0].To != alerting.StateFiring {
				t.Fatalf("a doubling did not fire: %+v", ts)
			}
			if th := ts[0].Alert.Threshold; th < 105 || th > 150 {
				t.Fatalf("learned threshold %v, want a little above 100", th)
			}
			bs := e.Baselines()
			ready := 0
			for _, b := range bs {
				if b.Ready {
					ready++
				}
			}
			if len(bs) != 2 || ready != 1 {
				t.Fatalf("baselines: %+v", bs)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	var vs []float64
	for i := range 100 {
		vs = append(vs, 100+float64(i%10))
	}
	b, ok := alerting.Suggest(vs, 3, "up")
	if !ok || b.Center < 100 || b.Center > 110 || b.Upper <= 109 || b.Upper > 130 {
		t.Fatalf("suggestion %+v", b)
	}
	if _, ok := alerting.Suggest(vs[:1], 3, "up"); ok {
		t.Fatal("suggested from one value")
	}
}

// TestIdleSeriesAreForgotten: the state of series that stop sending goes
// after IdleSeriesRetention (a rate rule's window, if longer), unless the
// series has an alert; a baseline outlives the alerts it raised.
func TestIdleSeriesAreForgotten(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("idle.yaml", []byte(`
rules:
  - alert: LatencyAnomaly
    kind: anomaly
    field: p95
    anomaly: {k: 4, min_samples: 20}
  - alert: ErrorsPerDay
    kind: rate
    match: {type: system.error}
    window: 2h
    threshold: 1000
route: {receiver: r}
receivers: [{name: r}]
`))
	if err != nil {
		t.Fatal(err)
	}
	e := alerting.NewEngine(cfg.Rules)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 60 { // pod-1 goes away after 10 minutes; pod-2 stays
		feed(e, "pod-1", at(i), 100+rng.NormFloat64()*5)
		feed(e, "pod-2", at(i), 100+rng.NormFloat64()*5)
	}
	e.Observe(events.NewSystemEvent(events.SystemError, "pod-1", "boom"), at(60))
	if n := e.Series(); n != 3 {
		t.Fatalf("%d series, want 3 (two baselines, one error count)", n)
	}
	// pod-2 fires and resolves; it keeps sending.
	ts := feed(e, "pod-2", at(60), 300)
	if len(ts) != 1 || ts[0].To != alerting.StateFiring {
		t.Fatalf("the spike on pod-2: %+v", ts)
	}
	forgotten := false
	for i := 61; at(i).Before(t0.Add(90 * time.Minute)); i++ {
		e.Tick(at(i))
		if !forgotten && len(e.Alerts()) == 0 { // the resolved alert has just been forgotten
			forgotten = true
			ready := false
			for _, b := range e.Baselines() {
				ready = ready || (b.Labels["source"] == "pod-2" && b.Ready)
			}
			if !ready {
				t.Fatalf("pod-2's baseline went with its alert: %+v", e.Baselines())
			}
		}
		feed(e, "pod-2", at(i), 100+rng.NormFloat64()*5)
	}
	if !forgotten {
		t.Fatal("the resolved alert was never forgotten")
	}
	// 80 min after pod-1's last sample: its baseline is gone, its error
	// count (2h window) is not; pod-2's baseline survived its alert.
	bs := e.Baselines()
	if len(bs) != 1 || e.Series() != 2 {
		t.Fatalf("after 80 idle minutes: %d series, baselines %+v", e.Series(), bs)
	}
	for _, b := range bs {
		if b.Labels["source"] != "pod-2" || !b.Ready {
			t.Errorf("kept baseline %+v, want pod-2's, ready", b)
		}
	}
	e.Tick(t0.Add(10*time.Minute + 2*time.Hour + sweepPeriod))
	if n := e.Series(); n != 1 {
		t.Errorf("after the rate window: %d series, want pod-2's baseline alone", n)
	}
}

// sweepPeriod is at least the engine's interval between idle-series sweeps.
const sweepPeriod = time.Minute
