package console_test

import (
	"context"
	"net/http"

	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// Serve the console for a NATS deployment on loopback. In front of a real
// deployment put the daemon's guard (tokens), as `jetmon console` does.
func ExampleConsole_Mount() {
	ctx := context.Background()
	cfg := jsbus.DefaultConfig()
	cfg.URLs, cfg.SkipStreams = []string{"nats://127.0.0.1:4222"}, true
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		return
	}
	defer func() { _ = bus.Close() }()
	o := console.DefaultOptions()
	o.Bus = bus
	c, err := console.New(o)
	if err != nil {
		return
	}
	defer c.Close()
	mux := http.NewServeMux()
	c.Mount(mux)
	_ = http.ListenAndServe("127.0.0.1:9200", mux) //nolint:gosec // an example; jetmon console uses internal/httpd's limits
}
