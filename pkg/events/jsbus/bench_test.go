package jsbus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// Every benchmark here that has a baseline runs it in the same process,
// against the same embedded file-store server, on the same stream settings
// and the same encoded bytes (each stream is filled through the bus, so raw
// and jetmon consumers read identical messages). ns/op is per event. Read
// the figures only as ratios to the baseline of the same run
// (internal/tools/benchratio prints them).

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
// PublishMsgAsync to the same server. Both start from the same prebuilt
// events and both encode inside the timed loop: the baseline builds each
// message with [jsbus.NewMsg] (the very bytes and headers the bus sends),
// so the ratio is the bus's own overhead, or for the batched rows its gain.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Start(b)
	raw := benchBus(b, srv, nil) // applies the streams; its connection is the raw client
	b.Run("baseline_raw_publish_async_encode_each", func(b *testing.B) {
		purge(b, raw, streams.Performance)
		evs := benchEvents(b.N)
		js := raw.JetStream()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			msg, err := jsbus.NewMsg(evs[i])
			if err != nil {
				b.Fatal(err)
			}
			publishOrWait(b, raw, func() error {
				_, err := js.PublishMsgAsync(msg)
				return err
			})
		}
		waitAcks(b, js)
		b.StopTimer()
		assertStored(b, raw, uint64(b.N))
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
				publishOrWait(b, bus, func() error { return bus.Publish(ctx, evs[i]) })
			}
			if err := bus.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st := bus.Stats()
			if st.PublishFailed != 0 || st.Published != uint64(b.N) {
				b.Fatalf("published %d of %d, %d failed", st.Published, b.N, st.PublishFailed)
			}
			msgs := uint64(b.N)
			if st.Batches > 0 {
				if st.BatchedEvents != uint64(b.N) {
					b.Fatalf("batched %d of %d events", st.BatchedEvents, b.N)
				}
				msgs = st.Batches
			}
			assertStored(b, bus, msgs)
		})
	}
}

// assertStored fails b unless the performance stream holds exactly want
// messages: every publish stored, none dropped as a duplicate.
func assertStored(b *testing.B, bus *jsbus.Bus, want uint64) {
	b.Helper()
	s, err := bus.JetStream().Stream(context.Background(), streams.Performance)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if info.State.Msgs != want {
		b.Fatalf("the stream holds %d messages, want %d", info.State.Msgs, want)
	}
}

// fillStream replaces the performance stream's content with n events
// published through bus (batched or not, as bus is configured).
func fillStream(b *testing.B, bus *jsbus.Bus, n int) {
	b.Helper()
	purge(b, bus, streams.Performance)
	ctx := context.Background()
	for _, ev := range benchEvents(n) {
		publishOrWait(b, bus, func() error { return bus.Publish(ctx, ev) })
	}
	if err := bus.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// publishOrWait runs publish; when nats.go refuses it because too many
// async publishes await their acks (a busy machine), it waits for the acks
// and tries again — the same for the raw and the jetmon rows.
func publishOrWait(b *testing.B, bus *jsbus.Bus, publish func() error) {
	b.Helper()
	for range 10 {
		err := publish()
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				b.Fatal(err)
			}
			return
		}
		if err := bus.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.Fatal("publish stalled ten times")
}

// waitCount waits until got reaches n.
func waitCount(b *testing.B, got *atomic.Int64, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for got.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d", got.Load(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func deleteConsumer(b *testing.B, bus *jsbus.Bus, name string) {
	b.Helper()
	if err := bus.JetStream().DeleteConsumer(context.Background(), streams.Performance, name); err != nil {
		b.Fatalf("delete consumer %s: %v", name, err)
	}
}

// BenchmarkSubscribe compares bus subscriptions (decode, handler, ack each
// message) with the baseline: a raw nats.go durable pull consumer with the
// consumer settings the bus creates (filter, explicit ack, AckWait,
// MaxDeliver, MaxAckPending), nats.go's default Consume options, and a
// handler that acks each message (no decoding). The rows name what they
// time: a durable, a one-member group, a three-member group (total
// throughput of the group), an ephemeral subscription, and a durable reading
// batch messages of 100 events (ns/op is still per event, so that row's
// ratio is the gain of batching).
func BenchmarkSubscribe(b *testing.B) {
	srv := natstest.Start(b)
	bus := benchBus(b, srv, nil)
	batching := benchBus(b, srv, func(c *jsbus.Config) { c.BatchMaxEvents = 100 })
	b.Run("baseline_raw_durable_consume_ack_each", func(b *testing.B) {
		fillStream(b, bus, b.N)
		ctx := context.Background()
		cfg := jsbus.DefaultConfig() // benchBus's, so the bus's consumer settings
		cons, err := bus.JetStream().CreateConsumer(ctx, streams.Performance, jetstream.ConsumerConfig{
			Durable: "bench-raw", FilterSubject: events.FilterSubject("performance.>"),
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending,
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
		}) // nats.go's defaults: what a raw client gets
		if err != nil {
			b.Fatal(err)
		}
		waitCount(b, &got, b.N)
		b.StopTimer()
		cc.Stop()
		if got.Load() != int64(b.N) {
			b.Fatalf("received %d messages for %d (redeliveries)", got.Load(), b.N)
		}
		deleteConsumer(b, bus, "bench-raw")
	})
	subscribe := func(b *testing.B, from *jsbus.Bus, members int, name string, opt events.SubscribeOption) {
		fillStream(b, from, b.N)
		var got atomic.Int64
		h := events.HandlerFunc(func(context.Context, events.Event) error {
			got.Add(1)
			return nil
		})
		b.ReportAllocs()
		b.ResetTimer()
		subs := make([]events.Subscription, members)
		for i := range subs {
			sub, err := bus.Subscribe(context.Background(), "performance.>", h, opt, events.DeliverAll())
			if err != nil {
				b.Fatal(err)
			}
			subs[i] = sub
		}
		waitCount(b, &got, b.N)
		b.StopTimer()
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
		if got.Load() != int64(b.N) || bus.Stats().DecodeErrors != 0 {
			b.Fatalf("handled %d events for %d (redeliveries), %d undecodable", got.Load(), b.N, bus.Stats().DecodeErrors)
		}
		if name != "" {
			deleteConsumer(b, bus, name)
		}
	}
	b.Run("jetmon_durable", func(b *testing.B) {
		subscribe(b, bus, 1, "bench-durable", events.Durable("bench-durable"))
	})
	b.Run("jetmon_group_1_member", func(b *testing.B) {
		subscribe(b, bus, 1, "bench-group1", events.Group("bench-group1"))
	})
	b.Run("jetmon_group_3_members", func(b *testing.B) {
		subscribe(b, bus, 3, "bench-group3", events.Group("bench-group3"))
	})
	b.Run("jetmon_ephemeral", func(b *testing.B) {
		subscribe(b, bus, 1, "", events.DeliverAll())
	})
	b.Run("jetmon_durable_batches_of_100", func(b *testing.B) {
		subscribe(b, batching, 1, "bench-durable-batched", events.Durable("bench-durable-batched"))
	})
}

// BenchmarkReplay compares [jsbus.Bus.Replay] (ordered consumer, decode,
// handler) with the baseline: a raw nats.go ordered consumer over the same
// stored messages, no acks (ordered consumers have none), no decoding.
func BenchmarkReplay(b *testing.B) {
	srv := natstest.Start(b)
	bus := benchBus(b, srv, nil)
	b.Run("baseline_raw_ordered_consume", func(b *testing.B) {
		fillStream(b, bus, b.N)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		cons, err := bus.JetStream().OrderedConsumer(ctx, streams.Performance, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.FilterSubject("performance.>")}, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			b.Fatal(err)
		}
		var got atomic.Int64
		cc, err := cons.Consume(func(jetstream.Msg) { got.Add(1) })
		if err != nil {
			b.Fatal(err)
		}
		waitCount(b, &got, b.N)
		b.StopTimer()
		cc.Stop()
	})
	b.Run("jetmon_replay", func(b *testing.B) {
		fillStream(b, bus, b.N)
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
