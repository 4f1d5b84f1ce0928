package redisbus_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jetmon/jetmon/internal/redistest"
	"github.com/jetmon/jetmon/pkg/events"
)

// BenchmarkPublish compares Publish with a raw go-redis XADD of the same
// bytes (stream, fields, MAXLEN ~) to the same redis-server.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	bus := connect(b, testConfig(srv.Addr))
	defer func() { _ = bus.Close() }()
	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout-service")
	ev.Operation, ev.DurationMS, ev.Status = "db.query", 12.75, events.StatusSuccess
	data := ev.AppendJSON(nil)
	ctx := context.Background()
	b.Run("baseline_raw_xadd", func(b *testing.B) {
		c := bus.Client()
		args := &redis.XAddArgs{
			Stream: bus.Stream(events.FamilyPerformance), MaxLen: 1_000_000, Approx: true,
			Values: []any{"subject", events.SubjectOf(ev), "id", ev.ID, "data", data},
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := c.XAdd(ctx, args).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jetmon_publish", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := bus.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
