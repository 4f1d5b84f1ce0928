package eventstest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

// A bus package runs the whole suite from one test:
//
//	func TestConformance(t *testing.T) {
//		eventstest.Run(t, eventstest.Harness{
//			NewBackend: func(t *testing.T) events.Bus { return startServerAndConnect(t) },
//			Features:   eventstest.Features{Replay: true, Durable: true},
//		})
//	}
//
// Its helpers also serve ordinary tests: NewEvent makes a valid event of any
// type, tagged so that it can be recognised, and Collector records deliveries.
func ExampleNewEvent() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	col := eventstest.NewCollector()
	if _, err := bus.Subscribe(context.Background(), "health.>", col); err != nil {
		panic(err)
	}
	_ = bus.Publish(context.Background(), eventstest.NewEvent(events.ComponentDegraded, "cache-1"))
	got, ok := col.Await(1, 10*time.Second)
	if !ok {
		panic("no event within 10s")
	}
	ev := got[0].(*events.HealthEvent)
	fmt.Println(ev.Type, ev.Status, eventstest.Tag(ev))
	// Output: health.component.degraded degraded cache-1
}
