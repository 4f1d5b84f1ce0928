package breaker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
)

// Wrap any bus; publishing then never blocks the application for long and
// never loses an event silently, whatever the bus does.
func ExampleWrap() {
	bus, err := breaker.Wrap(events.NewMemoryBus(events.MemoryOptions{}), breaker.Options{
		ConsecutiveFailures: 5,
		OpenTimeout:         5 * time.Second,
		SpoolMaxEvents:      50_000,
		// SpoolDir: "/var/lib/myapp/jetmon-spool", // to survive restarts
	})
	if err != nil {
		panic(err)
	}
	defer func() { _ = bus.Close() }()

	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	ev.Operation, ev.DurationMS = "db.query", 12.5
	err = bus.Publish(context.Background(), ev)
	fmt.Println(err, bus.Breaker().State(), bus.Breaker().Stats().Published)
	// Output: <nil> closed 1
}
