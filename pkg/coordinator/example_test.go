package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
)

// Direct mode: aggregates in the process, read back at once.
func ExampleNewDirect() {
	c := coordinator.NewDirect()
	ctx := context.Background()
	for _, ms := range []int{10, 20, 30, 40} {
		c.OperationComplete(ctx, "db.query", time.Duration(ms)*time.Millisecond)
	}
	c.OperationFailed(ctx, "db.query", 50*time.Millisecond, errors.New("timeout"))
	o, _ := c.Snapshot().Operation("db.query")
	fmt.Printf("count=%d errors=%d avg=%.0fms max=%.0fms\n", o.Count, o.Errors, o.AvgMS, o.MaxMS)
	// Output: count=5 errors=1 avg=30ms max=50ms
}

// EventDriven mode: performance.* events on a bus, published off the
// caller's path.
func ExampleNewEventDriven() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	c, err := coordinator.NewEventDriven(bus, coordinator.Options{Source: "checkout", Service: "checkout", Version: "1.4.2"})
	if err != nil {
		panic(err)
	}
	ctx := coordinator.WithContextID(context.Background(), "order-42")
	func() {
		defer c.Time(ctx, "render")()
	}()
	_ = c.Close(ctx) // flushes the queue
	ev := bus.Published()[0].(*events.PerformanceEvent)
	fmt.Println(ev.Type, ev.Operation, ev.ContextID, ev.Attributes["version"])
	// Output: performance.operation.complete render order-42 1.4.2
}

// The factory picks the implementation from a mode, e.g. from configuration.
func ExampleNew() {
	mode, _ := coordinator.ParseMode("disabled")
	c, stop, err := coordinator.New(mode, nil, coordinator.Options{})
	if err != nil {
		panic(err)
	}
	defer func() { _ = stop(context.Background()) }()
	fmt.Println(c.Enabled())
	// Output: false
}

// Tee runs Direct and EventDriven side by side during a migration.
func ExampleTee() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	direct := coordinator.NewDirect()
	ed, _ := coordinator.NewEventDriven(bus, coordinator.Options{Source: "svc"})
	c := coordinator.Tee(direct, ed)
	c.OperationComplete(context.Background(), "op", time.Millisecond)
	_ = ed.Close(context.Background())
	fmt.Println(len(direct.Snapshot().Operations), len(bus.Published()))
	// Output: 1 1
}

// A Switchable coordinator follows the fleet's control events.
func ExampleControl() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	ctx := context.Background()
	c, _ := coordinator.NewSwitchable(coordinator.EventDriven, bus, coordinator.Options{Source: "svc"})
	defer func() { _ = c.Close(ctx) }()
	sub, _ := coordinator.Control(ctx, bus, c, "svc")
	defer func() { _ = sub.Unsubscribe() }()

	acked := make(chan string, 1)
	_, _ = bus.Subscribe(ctx, "monitoring.config.changed", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		acked <- ev.(*events.ControlEvent).Mode
		return nil
	}))
	sw := events.NewControlEvent(events.ModeSwitched, "ops")
	sw.Mode = events.ModeDirect
	_ = bus.Publish(ctx, sw)
	fmt.Println(<-acked, c.Mode())
	// Output: direct direct
}

// The validation monitoring service turns validation events into phases.
func ExampleNewValidationMonitoringService() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	direct := coordinator.NewDirect()
	vms := coordinator.NewValidationMonitoringService(bus, direct)
	if err := vms.Start(context.Background()); err != nil {
		panic(err)
	}
	defer func() { _ = vms.Stop() }()
	done := events.NewValidationEvent(events.ValidationCompleted, "orders", "order-1")
	done.DurationMS = 12
	_ = bus.Publish(context.Background(), done)
	for {
		if o, ok := direct.Snapshot().Operation("phase:validation"); ok {
			fmt.Println(o.Count, o.MaxMS)
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Output: 1 12
}

// A Switchable coordinator changes mode at run time; Direct aggregates
// survive the switches.
func ExampleNewSwitchable() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	c, err := coordinator.NewSwitchable(coordinator.Direct, bus, coordinator.Options{Source: "svc"})
	if err != nil {
		panic(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	c.OperationComplete(context.Background(), "op", time.Millisecond)
	_ = c.SetMode(coordinator.Disabled)
	c.OperationComplete(context.Background(), "op", time.Millisecond) // not recorded
	o, _ := c.Direct().Snapshot().Operation("op")
	fmt.Println(c.Mode(), o.Count)
	// Output: disabled 1
}

// Follow one request through the system by its trace.
func ExampleTraceFlow() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	tracer, err := coordinator.TraceFlow(context.Background(), bus, ">", 1000)
	if err != nil {
		panic(err)
	}
	defer func() { _ = tracer.Stop() }()
	root := events.NewRootTrace()
	for _, typ := range []events.Type{events.ValidationStarted, events.ValidationCompleted} {
		ev := events.NewValidationEvent(typ, "orders", "order-7")
		ev.SetTrace(root.Child())
		_ = bus.Publish(context.Background(), ev)
	}
	for len(tracer.ByTrace(root.TraceID)) < 2 {
		time.Sleep(time.Millisecond)
	}
	for _, ev := range tracer.ByTrace(root.TraceID) {
		fmt.Println(ev.Metadata().Type)
	}
	// Output:
	// validation.started
	// validation.completed
}

// Check the wiring of the monitoring at start-up.
func ExampleVerifyIntegration() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	c := coordinator.NewDirect()
	vms := coordinator.NewValidationMonitoringService(bus, c)
	report := coordinator.VerifyIntegration(bus, c, vms)
	fmt.Println(report.OK(), report.Problems)
	// Output: false [the validation monitoring service has no subscription (not started?)]
}
