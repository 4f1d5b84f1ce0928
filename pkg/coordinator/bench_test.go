package coordinator_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/coordinator"
	"github.com/jetmon/jetmon/pkg/events"
)

var sinkDur time.Duration

// BenchmarkRecordOperation measures recording one operation duration as the
// caller sees it, against two baselines from the same run: the loop without
// instrumentation, and a zerolog call at a disabled level (what "free"
// logging costs).
func BenchmarkRecordOperation(b *testing.B) {
	ctx := context.Background()
	d := 1234 * time.Microsecond
	b.Run("baseline_uninstrumented", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkDur += d
		}
	})
	b.Run("baseline_zerolog_disabled", func(b *testing.B) {
		log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
		b.ReportAllocs()
		for b.Loop() {
			log.Debug().Str("op", "db.query").Dur("duration", d).Msg("operation complete")
		}
	})
	b.Run("disabled", func(b *testing.B) {
		var c coordinator.Coordinator = coordinator.Noop{}
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
		}
	})
	b.Run("event_driven_no_drops", func(b *testing.B) {
		ed := newBenchED(b, 0)
		var c coordinator.Coordinator = ed
		benchNoDrops(b, ed, func() { c.OperationComplete(ctx, "db.query", d) })
	})
	b.Run("event_driven_switchable_no_drops", func(b *testing.B) {
		sw, err := coordinator.NewSwitchable(coordinator.EventDriven, events.NewNoopBus(), coordinator.Options{Source: "bench", QueueSize: benchQueue})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sw.Close(context.Background()) }()
		ed := sw.EventDriven()
		if ed == nil {
			b.Fatal("switchable in EventDriven mode has no EventDriven coordinator")
		}
		var c coordinator.Coordinator = sw
		benchNoDrops(b, ed, func() { c.OperationComplete(ctx, "db.query", d) })
	})
	b.Run("event_driven_drop_path_full_queue", func(b *testing.B) {
		// The queue is full and the stage never drains it: every call is
		// counted and dropped. This is what a caller pays when the
		// publisher cannot keep up, not the normal path.
		ed, err := coordinator.NewEventDriven(blockedBus{}, coordinator.Options{Source: "bench", QueueSize: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = ed.Close(context.Background()) }()
		var c coordinator.Coordinator = ed
		for range 3 { // one record held by the stage, one in the queue
			c.OperationComplete(ctx, "db.query", d)
		}
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
		}
		b.StopTimer()
		if ed.Stats().Dropped == 0 {
			b.Fatal("the drop path dropped nothing")
		}
	})
	b.Run("direct", func(b *testing.B) {
		var c coordinator.Coordinator = coordinator.NewDirect()
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
		}
	})
}

// benchQueue is the queue of the no-drop benchmarks; benchNoDrops never
// lets more calls than half of it wait.
const benchQueue = 1 << 18

func newBenchED(b *testing.B, blockFor time.Duration) *coordinator.EventDrivenCoordinator {
	b.Helper()
	ed, err := coordinator.NewEventDriven(events.NewNoopBus(), coordinator.Options{Source: "bench", QueueSize: benchQueue, BlockFor: blockFor})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ed.Close(context.Background()) })
	return ed
}

type edStats interface {
	Stats() coordinator.EventDrivenStats
	QueueLen() int
}

// benchNoDrops times call as the caller sees it while the publisher stage
// keeps up: calls run in rounds of at most half the queue, and between
// rounds the timer stops until the stage has drained the queue. It fails the
// benchmark if anything was dropped.
func benchNoDrops(b *testing.B, ed edStats, call func()) {
	b.Helper()
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		call()
		if round++; round == benchQueue/2 {
			b.StopTimer()
			drain(b, ed)
			b.StartTimer()
			round = 0
		}
	}
	b.StopTimer()
	drain(b, ed)
	if st := ed.Stats(); st.Dropped != 0 {
		b.Fatalf("dropped %d of %d records: this benchmark times the path where nothing is dropped", st.Dropped, st.Enqueued+st.Dropped)
	}
}

// drain waits until the stage has published everything enqueued.
func drain(b *testing.B, ed edStats) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for st := ed.Stats(); settled(st) < st.Enqueued; st = ed.Stats() {
		if time.Now().After(deadline) {
			b.Fatalf("stage stuck: published %d of %d", st.Published, st.Enqueued)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// settled counts the enqueued records the stage is done with.
func settled(st coordinator.EventDrivenStats) uint64 {
	return st.Published + st.PublishErrors + st.Filtered + st.Deduplicated + st.RateLimited + st.Panics
}

// blockedBus never returns from Publish until ctx ends: a stage stuck on
// it never drains its queue.
type blockedBus struct{}

func (blockedBus) Publish(ctx context.Context, _ events.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

// handoff is as large as the coordinator's queued record (strings, a
// duration, a value, a trace context, a time): what the baseline copies.
type handoff struct {
	strs  [7]string
	d     time.Duration
	v     float64
	trace [32]byte
	at    time.Time
}

// BenchmarkEventDrivenSustained measures the rate the EventDriven stage
// sustains into a no-op bus: b.N records are submitted by one caller that
// waits for room (BlockFor) rather than drop, and the timer stops only when
// the last one is published; ns/op is per event, with events/s reported. The
// baseline hands a record of the same size to a goroutine over a buffered
// channel and does nothing with it: the floor of any queue-and-goroutine
// design. Nothing may be dropped.
func BenchmarkEventDrivenSustained(b *testing.B) {
	ctx := context.Background()
	d := 1234 * time.Microsecond
	b.Run("baseline_channel_handoff", func(b *testing.B) {
		q := make(chan handoff, benchQueue)
		done := make(chan int)
		go func() {
			n := 0
			for r := range q {
				if r.d > 0 && r.v == 0 && r.at.IsZero() && r.trace[0] == 0 {
					n++
				}
			}
			done <- n
		}()
		b.ReportAllocs()
		for b.Loop() {
			q <- handoff{strs: [7]string{"performance.operation.complete", "db.query", 5: "success"}, d: d}
		}
		close(q)
		<-done
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("event_driven_no_op_bus", func(b *testing.B) {
		ed := newBenchED(b, time.Minute)
		var c coordinator.Coordinator = ed
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
		}
		drain(b, ed)
		b.StopTimer()
		if st := ed.Stats(); st.Dropped != 0 || st.Published != uint64(b.N) {
			b.Fatalf("published %d of %d, dropped %d", st.Published, b.N, st.Dropped)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkTime measures the defer-style timer (two clock reads included).
func BenchmarkTime(b *testing.B) {
	ctx := context.Background()
	b.Run("disabled", func(b *testing.B) {
		var c coordinator.Coordinator = coordinator.Noop{}
		b.ReportAllocs()
		for b.Loop() {
			c.Time(ctx, "op")()
		}
	})
	b.Run("direct", func(b *testing.B) {
		var c coordinator.Coordinator = coordinator.NewDirect()
		b.ReportAllocs()
		for b.Loop() {
			c.Time(ctx, "op")()
		}
	})
}
