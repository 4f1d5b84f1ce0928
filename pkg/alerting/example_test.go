package alerting_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// An alert manager embedded in a Go program, with a receiver written in Go.
// In production, Options.Bus is the JetStream bus and Options.Store a
// KVStore; here events are handed to Observe directly.
func ExampleNew() {
	cfg, err := alerting.ParseEmbedded("rules.yaml", []byte(`
rules:
  - alert: CheckoutSlow
    match: {source: checkout}
    field: p95
    threshold: 250
    annotations: {summary: "p95 is {{ .Value }} ms"}
route: {receiver: chat, group_wait: 0s}
receivers: [{name: chat}]
`))
	if err != nil {
		panic(err)
	}
	sent := make(chan *alerting.Notification, 1)
	svc, err := alerting.New(alerting.Options{Config: cfg, Notify: map[string]alerting.NotifyFunc{
		"chat": func(_ context.Context, n *alerting.Notification) error { sent <- n; return nil },
	}})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for !svc.Ready() {
		time.Sleep(time.Millisecond)
	}

	now := time.Now()
	w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", now.Add(-10*time.Second), now)
	w.Count, w.P95 = 120, 480
	_ = svc.Observe(ctx, w)

	n := <-sent
	fmt.Println(n.Firing[0].Labels["alertname"], n.Firing[0].State, n.Firing[0].Annotations["summary"])
	// Output: CheckoutSlow firing p95 is 480 ms
}

// Backtest runs a predict rule over history: here p95 grows by 1 ms every
// 10 s window, so the linear forecast crosses 250 ms a full horizon (5
// minutes) before the windows do.
func ExampleBacktest() {
	cfg, err := alerting.ParseEmbedded("rules.yaml", []byte(`
rules:
  - alert: CheckoutSlowSoon
    kind: predict
    field: p95
    threshold: 250
    predict: {method: linear, horizon: 5m}
receivers: [{name: r}]
`))
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var history []*events.AggregateEvent
	for i := range 200 {
		end := t0.Add(time.Duration(i+1) * 10 * time.Second)
		w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", end.Add(-10*time.Second), end)
		w.Count, w.P95 = 100, 100+float64(i)
		history = append(history, w)
	}
	for _, r := range alerting.Backtest(cfg.Rules[0], history) {
		fmt.Printf("%s fired %s, threshold %s: %v ahead (forecast %.0f ms in %v)\n",
			r.Labels["source"], r.Fired.Format("15:04:05"), r.ThresholdFired.Format("15:04:05"), r.Lead, r.Forecast.Value, r.Forecast.ETA)
	}
	// Output: checkout fired 00:20:20, threshold 00:25:20: 5m0s ahead (forecast 251 ms in 4m50s)
}
