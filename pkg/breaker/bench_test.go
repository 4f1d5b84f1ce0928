package breaker_test

import (
	"context"
	"testing"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

func benchEvents(n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		ev := events.NewPerformanceEvent(events.OperationComplete, "checkout-service")
		ev.Operation, ev.DurationMS, ev.Status = "db.query", 12.75, events.StatusSuccess
		out[i] = ev
	}
	return out
}

// BenchmarkPublish measures the breaker's overhead with the circuit closed:
// the same distinct events through the bare JetStream bus ("baseline") and
// through the breaker in front of it, to the same embedded server.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Start(b)
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	br, err := breaker.New(bus, breaker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = br.Close() }()
	run := func(b *testing.B, pub events.Publisher) {
		evs := benchEvents(b.N)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := pub.Publish(ctx, evs[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := bus.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline_bare_jetstream_bus", func(b *testing.B) { run(b, bus) })
	b.Run("breaker_closed", func(b *testing.B) {
		run(b, br)
		if st := br.Stats(); st.Spooled != 0 {
			b.Fatalf("the circuit was not closed throughout: %+v", st)
		}
	})
}

// BenchmarkPublishOpen measures Publish while the circuit is open: what the
// application pays during an outage (validate, encode, spool).
func BenchmarkPublishOpen(b *testing.B) {
	down := &flakyBus{down: true}
	br, err := breaker.New(down, breaker.Options{ConsecutiveFailures: 1, OpenTimeout: 1 << 62, SpoolMaxEvents: 1 << 30, SpoolMaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = br.Close() }()
	ev := benchEvents(1)[0]
	_ = br.Publish(context.Background(), ev)
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}
