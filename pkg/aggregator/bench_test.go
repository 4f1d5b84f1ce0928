package aggregator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/aggregate"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// BenchmarkReplay compares recomputing windows from stored history (ordered
// consumer, decode, aggregate) with a raw ordered consumer that only counts
// the same stored messages. ns/op is per stored event (one per message).
func BenchmarkReplay(b *testing.B) {
	srv := natstest.Start(b)
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	ctx := context.Background()
	fill := func(b *testing.B) {
		b.Helper()
		s, _ := bus.JetStream().Stream(ctx, streams.Performance)
		if err := s.Purge(ctx); err != nil {
			b.Fatal(err)
		}
		base := time.Now().Add(-time.Hour)
		for i := range b.N {
			ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprint("svc-", i%10))
			ev.Operation, ev.DurationMS, ev.Timestamp = fmt.Sprint("op-", i%20), float64(i%997)/10, base.Add(time.Duration(i)*time.Millisecond)
			if err := bus.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := bus.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline_raw_ordered_consumer", func(b *testing.B) {
		fill(b)
		b.ReportAllocs()
		b.ResetTimer()
		cons, err := bus.JetStream().OrderedConsumer(ctx, streams.Performance, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1024))
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := it.Next(); err != nil {
				b.Fatal(err)
			}
		}
		it.Stop()
	})
	b.Run("jetmon_replay_aggregate", func(b *testing.B) {
		fill(b)
		b.ReportAllocs()
		b.ResetTimer()
		agg := aggregate.New(aggregate.Options{Window: 10 * time.Second})
		windows := 0
		st, err := bus.Replay(ctx, "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			agg.Add(ev)
			windows += len(agg.Closed())
			return nil
		}))
		windows += len(agg.Flush())
		if err != nil || st.Events != uint64(b.N) || windows == 0 {
			b.Fatalf("replayed %d of %d events into %d windows: %v", st.Events, b.N, windows, err)
		}
	})
}
