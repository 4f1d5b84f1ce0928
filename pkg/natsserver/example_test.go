package natsserver_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

// An application with its own JetStream server inside the process, reached
// in-process (no listener): publish an event and read it back from the
// stream, then stop in order — bus first, then the server.
func Example() {
	dir, err := os.MkdirTemp("", "jetmon-embedded")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir}) // Port 0: in-process only
	if err != nil {
		panic(err)
	}
	defer srv.Stop()

	cfg := jsbus.DefaultConfig()
	cfg.ExtraOptions = append(cfg.ExtraOptions, srv.ConnectOption())
	cfg.SyncPublish = true // Publish returns once stored
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	defer func() { _ = bus.Close() }()

	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	ev.Operation, ev.DurationMS = "charge", 42
	if err := bus.Publish(context.Background(), ev); err != nil {
		panic(err)
	}
	_, _ = bus.Replay(context.Background(), "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, got events.Event) error {
		p := got.(*events.PerformanceEvent)
		fmt.Println(p.Type, p.Source, p.Operation, p.DurationMS)
		return nil
	}))
	// Output: performance.operation.complete checkout charge 42
}
