package aggregator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/windowing"
	"github.com/jetmon/jetmon/streams"
)

// fillPerformance replaces the PERFORMANCE stream's content with n stored
// operation events, one per message, over 20 series.
func fillPerformance(b *testing.B, bus *jsbus.Bus, n int) {
	b.Helper()
	ctx := context.Background()
	s, _ := bus.JetStream().Stream(ctx, streams.Performance)
	if err := s.Purge(ctx); err != nil {
		b.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range n {
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
	fill := func(b *testing.B) { b.Helper(); fillPerformance(b, bus, b.N) }
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
		agg := windowing.New(windowing.Options{Window: 10 * time.Second})
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

// BenchmarkConsume compares the live path — the aggregator's durable
// consumer decoding and aggregating b.N stored events — with a raw jetstream
// Consume that only acknowledges the same messages.
func BenchmarkConsume(b *testing.B) {
	srv := natstest.Start(b)
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	ctx := context.Background()
	fill := func(b *testing.B) { b.Helper(); fillPerformance(b, bus, b.N) }
	b.Run("baseline_raw_consume", func(b *testing.B) {
		fill(b)
		cons, err := bus.JetStream().CreateConsumer(ctx, streams.Performance, jetstream.ConsumerConfig{
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy, MaxAckPending: 100_000,
		})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		n := 0
		b.ReportAllocs()
		b.ResetTimer()
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			if n++; n == b.N {
				close(done)
			}
		}, jetstream.PullMaxMessages(512))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		b.StopTimer()
		cc.Stop()
		_ = bus.JetStream().DeleteConsumer(ctx, streams.Performance, cons.CachedInfo().Name)
	})
	b.Run("jetmon_aggregator", func(b *testing.B) {
		fill(b)
		name := fmt.Sprintf("bench-%d-%d", b.N, time.Now().UnixNano())
		svc, err := aggregator.New(aggregator.Options{Bus: bus, Name: name, FromBeginning: true, Window: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		stopped := make(chan error, 1)
		b.ReportAllocs()
		b.ResetTimer()
		go func() { stopped <- svc.Run(rctx) }()
		deadline := time.Now().Add(2 * time.Minute)
		for svc.Stats().Events < uint64(b.N) {
			select {
			case err := <-stopped:
				b.Fatalf("aggregator stopped: %v (stats %+v)", err, svc.Stats())
			default:
			}
			if time.Now().After(deadline) {
				b.Fatalf("aggregated %d of %d events", svc.Stats().Events, b.N)
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		cancel()
		if err := <-stopped; err != nil {
			b.Fatal(err)
		}
		_ = bus.JetStream().DeleteConsumer(ctx, streams.Performance, name)
	})
}
