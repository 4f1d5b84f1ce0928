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
