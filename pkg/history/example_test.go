package history_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/history"
)

// Read a day of one series in 5-minute buckets: counts are exact, the
// quantiles come from the merged sketches.
func ExampleReader_Windows() {
	ctx := context.Background()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{"nats://127.0.0.1:4222"}
	bus, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = bus.Close() }()
	r, err := history.New(bus.JetStream(), history.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	res, err := r.Windows(ctx, history.WindowQuery{
		Source: "checkout", Type: "performance.operation.complete", Operation: "db.query",
		From: now.Add(-24 * time.Hour), To: now, Step: 5 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range res.Series {
		for _, p := range s.Points {
			fmt.Println(p.Start.Format(time.Kitchen), p.Count, p.P95)
		}
	}
}
