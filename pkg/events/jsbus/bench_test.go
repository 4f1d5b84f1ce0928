package jsbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natsserver"
	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// benchEvents returns n distinct operation events (distinct ids: the server
// would drop repeats as duplicates, which is cheaper and unfair).
func benchEvents(n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		ev := events.NewPerformanceEvent(events.OperationComplete, "checkout-service")
		ev.Operation, ev.DurationMS, ev.Status, ev.FieldPath = "db.query", 12.75, events.StatusSuccess, "order.items"
		out[i] = ev
	}
	return out
}

func benchBus(b *testing.B, srv *natsserver.Server, mutate func(*jsbus.Config)) *jsbus.Bus {
	b.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	if mutate != nil {
		mutate(&cfg)
	}
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bus.Close() })
	return bus
}

func purge(b *testing.B, bus *jsbus.Bus, stream string) {
	b.Helper()
	s, err := bus.JetStream().Stream(context.Background(), stream)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Purge(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func waitAcks(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("acks still pending after a minute")
	}
}

// BenchmarkPublish compares publishing through the bus with raw nats.go
// PublishMsgAsync of the very same messages (payload and headers, built
// beforehand) to the same embedded file-store server. ns/op is per event, so
// the batched figure is directly comparable: its speed ratio against the
// baseline is the batching gain in events per second.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Start(b)
	raw := benchBus(b, srv, nil) // applies the streams; its connection is the raw client
	b.Run("baseline_raw_publish_async", func(b *testing.B) {
		purge(b, raw, streams.Performance)
		evs := benchEvents(b.N)
		msgs := make([]*nats.Msg, b.N)
		for i, ev := range evs {
			msgs[i], _ = jsbus.NewMsg(ev)
		}
		js := raw.JetStream()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := js.PublishMsgAsync(msgs[i]); err != nil {
				b.Fatal(err)
			}
		}
		waitAcks(b, js)
	})
	for _, c := range []struct {
		name   string
		mutate func(*jsbus.Config)
	}{
		{"jetmon_async", nil},
		{"jetmon_batched_100", func(c *jsbus.Config) { c.BatchMaxEvents = 100 }},
		{"jetmon_batched_500", func(c *jsbus.Config) { c.BatchMaxEvents = 500 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			bus := benchBus(b, srv, c.mutate)
			purge(b, bus, streams.Performance)
			evs := benchEvents(b.N)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := bus.Publish(ctx, evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := bus.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkConsume compares consuming a stream of b.N stored events through
// a bus subscription (decode, handler, ack) with a raw jetstream Consume of
// the same stream with the same ack policy (ack only, no decoding).
func BenchmarkConsume(b *testing.B) {
	srv := natstest.Start(b)
	bus := benchBus(b, srv, nil)
	fill := func(b *testing.B) {
		b.Helper()
		purge(b, bus, streams.Performance)
		ctx := context.Background()
		for _, ev := range benchEvents(b.N) {
			if err := bus.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := bus.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	wait := func(b *testing.B, got *atomic.Int64) {
		b.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for got.Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("consumed %d of %d", got.Load(), b.N)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.Run("baseline_raw_consume", func(b *testing.B) {
		fill(b)
		ctx := context.Background()
		cons, err := bus.JetStream().CreateConsumer(ctx, streams.Performance, jetstream.ConsumerConfig{
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: "performance.*.*.*", MaxAckPending: 1024,
		})
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			got.Add(1)
		}, jetstream.PullMaxMessages(256))
		if err != nil {
			b.Fatal(err)
		}
		wait(b, &got)
		b.StopTimer()
		cc.Stop()
		_ = bus.JetStream().DeleteConsumer(ctx, streams.Performance, cons.CachedInfo().Name)
	})
	b.Run("jetmon_subscribe", func(b *testing.B) {
		fill(b)
		var got atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		sub, err := bus.Subscribe(context.Background(), "performance.>", events.HandlerFunc(func(context.Context, events.Event) error {
			got.Add(1)
			return nil
		}), events.DeliverAll())
		if err != nil {
			b.Fatal(err)
		}
		wait(b, &got)
		b.StopTimer()
		_ = sub.Unsubscribe()
	})
	b.Run("jetmon_replay", func(b *testing.B) {
		fill(b)
		b.ReportAllocs()
		b.ResetTimer()
		st, err := bus.Replay(context.Background(), "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(context.Context, events.Event) error {
			return nil
		}))
		if err != nil || st.Events != uint64(b.N) {
			b.Fatalf("replayed %d of %d: %v", st.Events, b.N, err)
		}
	})
}
