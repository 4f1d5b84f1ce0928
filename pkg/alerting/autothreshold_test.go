package alerting_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

func TestParseAutoThreshold(t *testing.T) {
	src := []byte(`rules:
  - alert: A
    field: p95
    threshold: auto
    auto: {k: 2, floor: 10, ceiling: 500, relearn: 30m}
  - alert: B
    field: p95
    threshold: "auto"
  - alert: C
    kind: rate
    match: {type: system.error}
    window: 1m
    threshold: auto
  - alert: D
    field: p95
    threshold: 5
    auto: {k: 2}
  - alert: E
    field: p95
    threshold: auto
    auto: {floor: 9, ceiling: 1, relearn: 1s}
receivers: [{name: r}]
`)
	orig := slices.Clone(src)
	_, err := alerting.ParseEmbedded("a.yaml", src)
	if !slices.Equal(src, orig) {
		t.Fatal("Parse changed its input")
	}
	for _, w := range []string{
		`a.yaml:13: rules[2].threshold: auto is only for threshold rules`,
		`a.yaml:17: rules[3].auto: needs threshold: auto`,
		`a.yaml:21: rules[4].auto.floor: 9 is above ceiling 1`,
		`a.yaml:21: rules[4].auto.relearn: must be at least 1m`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	cfg, err := alerting.ParseEmbedded("a.yaml", []byte(strings.Split(string(src), "  - alert: C")[0]+"receivers: [{name: r}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Rules[0], cfg.Rules[1]
	if a.Threshold != nil || a.Auto.K != 2 || *a.Auto.Floor != 10 || a.Auto.Relearn.D() != 30*time.Minute ||
		b.Auto == nil || b.Auto.Method != "mad" || b.Auto.K != 3 || b.Auto.History.D() != 24*time.Hour || b.Auto.MinSamples != 20 {
		t.Fatalf("rules %+v %+v", a.Auto, b.Auto)
	}
}

// history returns windows of p95 1, 2, ..., 21 for checkout and a constant
// 50 for cart, ten seconds apart, ending at end.
func history(end time.Time, shift float64) []*events.AggregateEvent {
	var out []*events.AggregateEvent
	for i := range 21 {
		e := end.Add(time.Duration(i-21) * 10 * time.Second)
		for _, s := range []struct {
			src string
			v   float64
		}{{"checkout", float64(i+1) + shift}, {"cart", 50}} {
			w := events.NewAggregateEvent(events.OperationComplete, s.src, "op", e.Add(-10*time.Second), e)
			w.Count, w.P95 = 10, s.v
			out = append(out, w)
		}
	}
	return out
}

// The oracle: for 1..21 the median is 11 and the median absolute
// deviation 5, so mad with k 3 learns 11 + 3·1.4826·5 = 33.239; the
// quantile 0.9 (linear interpolation) is 19.
func TestLearn(t *testing.T) {
	for _, c := range []struct {
		auto string
		want map[string]float64
	}{
		{"{}", map[string]float64{"checkout": 11 + 3*1.4826*5, "cart": 50}},
		{"{ceiling: 30, floor: 60}", nil},
		{"{ceiling: 30}", map[string]float64{"checkout": 30, "cart": 30}},
		{"{floor: 40}", map[string]float64{"checkout": 40, "cart": 50}},
		{"{method: quantile, quantile: 0.9}", map[string]float64{"checkout": 19, "cart": 50}},
		{"{min_samples: 22}", map[string]float64{}},
	} {
		cfg, err := alerting.ParseEmbedded("l.yaml", []byte("rules:\n  - alert: A\n    field: p95\n    threshold: auto\n    auto: "+c.auto+"\nreceivers: [{name: r}]\n"))
		if c.want == nil {
			if err == nil {
				t.Errorf("%s: accepted", c.auto)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, l := range alerting.Learn(cfg.Rules[0], history(time.Now(), 0), time.Now()) {
			got[l.Labels["source"]] = l.Threshold
			if l.Samples != 21 {
				t.Errorf("%s: %d samples", c.auto, l.Samples)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: learned %v, want %v", c.auto, got, c.want)
		}
		for k, v := range c.want {
			if math.Abs(got[k]-v) > 1e-9 {
				t.Errorf("%s: %s learned %v, want %v", c.auto, k, got[k], v)
			}
		}
	}
}

// A running service learns at start and on its schedule: each change is a
// monitoring.config.changed event and in Thresholds; alerts compare with
// the learned value of their own series.
func TestAutoThresholdRelearns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := alerting.ParseEmbedded("a.yaml", []byte(`
rules:
  - alert: Slow
    field: p95
    threshold: auto
    auto: {relearn: 1h, history: 1h}
route: {receiver: r, group_wait: 0s}
receivers: [{name: r}]
`))
		if err != nil {
			t.Fatal(err)
		}
		var shift atomic.Int64
		var reads atomic.Int32
		bus := events.NewMemoryBus(events.MemoryOptions{})
		defer func() { _ = bus.Close() }()
		svc, err := alerting.New(alerting.Options{
			Config: cfg, Bus: bus, Instance: "t", Logger: testLogger(t),
			Notify: map[string]alerting.NotifyFunc{"r": (&recorder{}).notify},
			History: func(_ context.Context, since time.Time) ([]*events.AggregateEvent, error) {
				reads.Add(1)
				if d := time.Since(since); d != time.Hour {
					t.Errorf("history since %v ago, want 1h", d)
				}
				return history(time.Now(), float64(shift.Load())), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			if err := svc.Run(ctx); err != nil {
				t.Errorf("run: %v", err)
			}
			close(done)
		}()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		changes := func() []string {
			var out []string
			for _, ev := range bus.Published() {
				if c, ok := ev.(*events.ControlEvent); ok && c.Config["component"] == alerting.ThresholdComponent {
					out = append(out, c.Config["series"]+"="+c.Config["threshold"]+" prev="+c.Config["previous"])
				}
			}
			slices.Sort(out)
			return out
		}
		want := []string{
			`{alertname="Slow", operation="op", source="cart"}=50 prev=`,
			`{alertname="Slow", operation="op", source="checkout"}=33.239 prev=`,
		}
		if got := changes(); !slices.Equal(got, want) {
			t.Fatalf("changes %v, want %v", got, want)
		}
		ths, _ := svc.Thresholds(ctx)
		if len(ths) != 2 {
			t.Fatalf("thresholds %+v", ths)
		}
		for src, v := range map[string]float64{"checkout": 34, "cart": 49} {
			if err := svc.Observe(ctx, window(src, "op", v)); err != nil {
				t.Fatal(err)
			}
		}
		as, _ := svc.Alerts(ctx)
		if len(as) != 1 || as[0].Labels["source"] != "checkout" || as[0].Threshold != 11+3*1.4826*5 {
			t.Fatalf("alerts %+v", as)
		}
		shift.Store(10) // checkout's history moves up by 10; cart stays
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		if reads.Load() != 1 {
			t.Fatalf("%d history reads before the hour", reads.Load())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want = append(want, `{alertname="Slow", operation="op", source="checkout"}=43.239 prev=33.239`)
		slices.Sort(want)
		if got := changes(); !slices.Equal(got, want) {
			t.Fatalf("changes %v, want %v", got, want)
		}
	})
}

// A reload that adds a threshold: auto rule learns it at once, not at the
// next scheduled round.
func TestAutoThresholdLearnsOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parse := func(src string) *alerting.Config {
			cfg, err := alerting.ParseEmbedded("a.yaml", []byte(src+"route: {receiver: r}\nreceivers: [{name: r}]\n"))
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
		svc, err := alerting.New(alerting.Options{
			Config: parse("rules: [{alert: Fixed, field: p95, threshold: 100}]\n"), Instance: "t", Logger: testLogger(t),
			Notify: map[string]alerting.NotifyFunc{"r": (&recorder{}).notify},
			History: func(context.Context, time.Time) ([]*events.AggregateEvent, error) {
				return history(time.Now(), 0), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = svc.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		if ths, _ := svc.Thresholds(ctx); len(ths) != 0 {
			t.Fatalf("thresholds before the reload: %+v", ths)
		}
		if err := svc.Reload(ctx, parse("rules: [{alert: Slow, field: p95, threshold: auto}]\n")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if ths, _ := svc.Thresholds(ctx); len(ths) != 2 {
			t.Fatalf("thresholds after the reload: %+v", ths)
		}
	})
}
