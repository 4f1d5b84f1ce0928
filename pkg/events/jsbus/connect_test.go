package jsbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// TestConnectCtxBoundsOnlyTheConnect: the bus outlives the ctx given to
// Connect; it publishes and delivers after that ctx is cancelled.
func TestConnectCtxBoundsOnlyTheConnect(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	bus, err := jsbus.Connect(ctx, testConfig(srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	cancel()

	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(t.Context(), "system.>", col); err != nil {
		t.Fatal(err)
	}
	if !bus.IsConnected() {
		t.Fatal("the bus disconnected when Connect's ctx was cancelled")
	}
	if err := bus.Publish(t.Context(), eventstest.NewEvent(events.SystemError, "after-cancel")); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, 1, 5*time.Second)
}
