package events_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Publish an operation event on an in-memory bus and receive it through a
// pattern subscription. The same code runs unchanged on the JetStream and
// Redis buses.
func ExampleMemoryBus() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()

	got := make(chan events.Event, 1)
	_, err := bus.Subscribe(context.Background(), "performance.operation.*", events.HandlerFunc(
		func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}))
	if err != nil {
		panic(err)
	}

	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	ev.Operation, ev.DurationMS, ev.Status = "db.query", 12.5, events.StatusSuccess
	if err := bus.Publish(context.Background(), ev); err != nil {
		panic(err)
	}

	e := (<-got).(*events.PerformanceEvent)
	fmt.Println(e.Type, e.Operation, e.DurationMS, e.Status)
	fmt.Println("on subject", events.SubjectOf(e))
	// Output:
	// performance.operation.complete db.query 12.5 success
	// on subject performance.operation.complete.checkout
}

// Decode an event sent by any client, and see validation name the field at
// fault.
func ExampleDecode() {
	ev, err := events.Decode([]byte(`{"event_type":"performance.phase.end","id":"e1","source":"orders",
		"timestamp":"2026-11-27T10:00:00Z","phase":"parse","duration_ms":4.25}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Metadata().Type, ev.(*events.PerformanceEvent).DurationMS)

	_, err = events.Decode([]byte(`{"event_type":"performance.phase.end","id":"e2","source":"orders",
		"timestamp":"2026-11-27T10:00:00Z","phase":"parse","duration_ms":-1}`))
	var ve *events.ValidationError
	fmt.Println(errors.As(err, &ve), ve.Field)
	// Output:
	// performance.phase.end 4.25
	// true duration_ms
}

// Patterns follow NATS wildcard rules on the event type.
func ExampleMatch() {
	fmt.Println(events.Match("validation.*", events.ValidationFailed))
	fmt.Println(events.Match("performance.*", events.PhaseStart))
	fmt.Println(events.Match("performance.>", events.PhaseStart))
	// Output:
	// true
	// false
	// true
}

// Middleware wraps handlers; the first in the chain is the outermost.
func ExampleChain() {
	logging := func(name string) events.Middleware {
		return func(next events.Handler) events.Handler {
			return events.HandlerFunc(func(ctx context.Context, ev events.Event) error {
				fmt.Println("enter", name)
				return next.Handle(ctx, ev)
			})
		}
	}
	h := events.Chain(events.HandlerFunc(func(context.Context, events.Event) error {
		fmt.Println("handle")
		return nil
	}), logging("outer"), logging("inner"))
	_ = h.Handle(context.Background(), events.NewSystemEvent(events.SystemError, "svc", "boom"))
	// Output:
	// enter outer
	// enter inner
	// handle
}

// Join an incoming trace: the new event gets a child span of the caller's.
func ExampleTraceContext_Child() {
	parent, err := events.ParseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err != nil {
		panic(err)
	}
	ev := events.NewPerformanceEvent(events.PhaseStart, "svc")
	ev.Phase = "load"
	ev.SetTrace(parent.Child())
	fmt.Println(ev.TraceID, ev.ParentSpanID)
	// Output: 0af7651916cd43dd8448eb211c80319c b7ad6b7169203331
}

// Replay history: a new subscription can start at a point in time.
func ExampleStartAtTime() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	ctx := context.Background()
	old := events.NewSystemEvent(events.SystemError, "svc", "old")
	_ = bus.Publish(ctx, old)
	time.Sleep(10 * time.Millisecond)
	mark := time.Now()
	_ = bus.Publish(ctx, events.NewSystemEvent(events.SystemError, "svc", "new"))

	got := make(chan string, 2)
	_, _ = bus.Subscribe(ctx, "system.>", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		got <- ev.(*events.SystemEvent).Error
		return nil
	}), events.StartAtTime(mark))
	fmt.Println(<-got)
	// Output: new
}
