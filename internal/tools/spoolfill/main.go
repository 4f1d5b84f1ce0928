// Command spoolfill is a test helper for pkg/breaker: it publishes -n events
// through a breaker with a disk spool in -dir, in front of a JetStream bus
// (at -url) that is already closed, so every event lands in the spool. It
// prints each event id, then READY, and waits to be killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

func main() {
	dir := flag.String("dir", "", "spool directory")
	n := flag.Int("n", 100, "events to publish")
	url := flag.String("url", "", "NATS server URL")
	flag.Parse()
	if err := run(*dir, *n, *url); err != nil {
		fmt.Fprintln(os.Stderr, "spoolfill:", err)
		os.Exit(1)
	}
	select {} // wait to be killed
}

func run(dir string, n int, url string) error {
	if dir == "" || url == "" {
		return fmt.Errorf("-dir and -url are required")
	}
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		return err
	}
	if err := bus.Close(); err != nil { // the bus is gone: every publish fails
		return err
	}
	p, err := breaker.New(bus, breaker.Options{SpoolDir: dir, ConsecutiveFailures: 1, OpenTimeout: time.Hour, PublishBudget: time.Millisecond})
	if err != nil {
		return err
	}
	for i := range n {
		ev := events.NewPerformanceEvent(events.OperationComplete, "spoolfill")
		ev.Operation, ev.DurationMS = fmt.Sprintf("op-%d", i), float64(i)
		if err := p.Publish(context.Background(), ev); err != nil {
			return err
		}
		fmt.Println(ev.ID)
	}
	if st := p.Stats(); st.SpoolDepth < n {
		return fmt.Errorf("only %d of %d events spooled: %+v", st.SpoolDepth, n, st)
	}
	fmt.Println("READY")
	return nil
}
