package jsbus_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

// Connect to a JetStream server (here an embedded one), publish, and receive
// through a durable consumer: the same application code as on the in-memory
// bus.
func ExampleConnect() {
	dir, _ := os.MkdirTemp("", "jetmon-example")
	defer func() { _ = os.RemoveAll(dir) }()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Port: -1})
	if err != nil {
		panic(err)
	}
	defer srv.Stop()

	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	bus, err := jsbus.Connect(context.Background(), cfg) // applies streams/ too
	if err != nil {
		panic(err)
	}
	defer func() { _ = bus.Close() }()

	got := make(chan events.Event, 1)
	_, err = bus.Subscribe(context.Background(), "validation.*", events.HandlerFunc(
		func(_ context.Context, ev events.Event) error {
			got <- ev
			return nil
		}), events.Durable("validation-audit"))
	if err != nil {
		panic(err)
	}
	ev := events.NewValidationEvent(events.ValidationFailed, "orders", "order-42")
	ev.Errors = []string{"zip code must have 5 digits"}
	if err := bus.Publish(context.Background(), ev); err != nil {
		panic(err)
	}
	v := (<-got).(*events.ValidationEvent)
	fmt.Println(v.Type, v.ContextID, v.Errors[0])
	// Output: validation.failed order-42 zip code must have 5 digits
}
