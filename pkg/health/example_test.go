package health_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/health"
)

// Register checks, run them, and publish health events on a bus.
func ExampleNewManager() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	m := health.NewManager(health.Options{Publisher: bus, Source: "checkout", Interval: 10 * time.Second})
	_ = m.Register(health.Check{Name: "database", Critical: true, Checker: health.Func(func(context.Context) error {
		return nil
	})})
	_ = m.Register(health.Check{Name: "cache", Checker: health.Func(func(context.Context) error {
		return errors.New("connection refused")
	})})
	m.RunOnce(context.Background()) // Run(ctx) would repeat on the interval

	rep := m.Report()
	ready, _ := m.Ready()
	fmt.Println(rep.Status, ready)
	for _, c := range rep.Components {
		fmt.Println(c.Name, c.Status)
	}
	// Output:
	// failed true
	// cache failed
	// database healthy
}
