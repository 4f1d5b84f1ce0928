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
	b.Run("event_driven", func(b *testing.B) {
		ed, err := coordinator.NewEventDriven(events.NewNoopBus(), coordinator.Options{Source: "bench", QueueSize: 1 << 16})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = ed.Close(context.Background()) }()
		var c coordinator.Coordinator = ed
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
		}
	})
	b.Run("event_driven_switchable", func(b *testing.B) {
		sw, err := coordinator.NewSwitchable(coordinator.EventDriven, events.NewNoopBus(), coordinator.Options{Source: "bench", QueueSize: 1 << 16})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sw.Close(context.Background()) }()
		var c coordinator.Coordinator = sw
		b.ReportAllocs()
		for b.Loop() {
			c.OperationComplete(ctx, "db.query", d)
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
