package natsauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natsauth"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/tracing"
	"github.com/jetmon/jetmon/streams"
)

// The trace runtime runs under its own user: it consumes every family and
// stores traces; it cannot publish events, alerts, or touch other streams.
func TestTracesRunsUnderItsUser(t *testing.T) {
	srv := startServer(t)
	connect(t, srv, natsauth.Operator) // applies the streams
	bus := connect(t, srv, natsauth.Traces)
	prod := connect(t, srv, natsauth.Producer)
	o := tracing.DefaultOptions()
	o.Bus, o.Assembly.Horizon = bus, 100*time.Millisecond
	svc, err := tracing.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	testutil.WaitFor(t, 10*time.Second, svc.Ready, "trace service ready")
	ev := perf("checkout")
	if err := prod.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		tr, err := svc.Get(t.Context(), ev.TraceID)
		return err == nil && len(tr.Nodes) == 1
	}, "the trace stored and fetched under the traces user")

	if err := bus.Publish(t.Context(), perf("forged")); err == nil {
		t.Error("the traces user published an event")
	}
	js := bus.JetStream()
	if _, err := js.Publish(t.Context(), "alerts.firing.x", []byte("{}")); err == nil {
		t.Error("the traces user published an alert")
	}
	if err := js.DeleteStream(t.Context(), streams.Performance); err == nil {
		t.Error("the traces user deleted a stream")
	}
	if _, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err == nil {
		t.Error("the traces user created another stream")
	}
}
