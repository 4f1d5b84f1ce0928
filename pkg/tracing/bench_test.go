package tracing_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/tracing"
)

// BenchmarkConsume compares consuming the same stored stream of 3-span
// traces with the trace runtime (consume, assemble, store each trace in
// TRACES) against a raw durable consume of the same events through the same
// bus (the baseline). Each iteration uses a new durable consumer from the
// start of the stream; the TRACES stream is emptied before each pass.
func BenchmarkConsume(b *testing.B) {
	bus := natstest.Connect(b, natstest.Start(b).ClientURL())
	const traces = 10_000
	at := time.Now().Add(-time.Minute)
	for range traces {
		tc := events.NewRootTrace()
		for d := range 3 {
			ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprintf("svc-%d", d))
			ev.SetTrace(tc)
			ev.Operation, ev.DurationMS, ev.Timestamp = "op", float64(30-10*d), at
			if err := bus.Publish(b.Context(), ev); err != nil {
				b.Fatal(err)
			}
			tc = tc.Child()
		}
	}
	if err := bus.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	const spans = 3 * traces
	iter := 0
	b.Run("baseline=raw-consume", func(b *testing.B) {
		for b.Loop() {
			iter++
			var n atomic.Int64
			done := make(chan struct{})
			sub, err := bus.Subscribe(b.Context(), ">", events.HandlerFunc(func(context.Context, events.Event) error {
				if n.Add(1) == spans {
					close(done)
				}
				return nil
			}), events.Durable(fmt.Sprintf("raw-%d", iter)), events.DeliverAll())
			if err != nil {
				b.Fatal(err)
			}
			<-done
			_ = sub.Unsubscribe()
		}
		b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("consume+assemble+store", func(b *testing.B) {
		for b.Loop() {
			iter++
			// Each pass stores the traces anew (not as late merges).
			if st, err := bus.JetStream().Stream(b.Context(), tracing.Stream); err == nil {
				if err := st.Purge(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			o := tracing.DefaultOptions()
			o.Bus, o.Name, o.Assembly.Horizon, o.FromBeginning = bus, fmt.Sprintf("traces-%d", iter), 20*time.Millisecond, true
			s, err := tracing.New(o)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			for s.Stats().Finished < traces {
				time.Sleep(time.Millisecond) // polling the counter, not an assertion
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
}
