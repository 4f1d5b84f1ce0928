package alerting_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// BenchmarkPattern measures evaluating one raw event against three pattern
// rules (absence, sequence, ratio), against the baseline of decoding that
// event from the wire, which every consumer pays. no_match is an event no
// step selects (a performance event: the common case on a busy bus) and
// must not allocate; absence_open_close opens and closes a key per pair
// of events.
func BenchmarkPattern(b *testing.B) {
	cfg, err := alerting.ParseEmbedded("bench.yaml", []byte(`
rules:
  - alert: Stuck
    kind: absence
    first: {types: [validation.started]}
    then: {types: [validation.completed, validation.failed]}
    within: 30s
  - alert: ErrorsThenFailure
    kind: sequence
    first: {types: [system.error], count: 5, within: 1m}
    then: {types: [health.component.failed]}
    within: 2m
  - alert: FailureRatio
    kind: ratio
    numerator: {types: [validation.failed]}
    denominator: {types: [validation.started]}
    window: 1m
    threshold: 0.5
receivers: [{name: r}]
`))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	perf := events.NewPerformanceEvent(events.OperationComplete, "checkout")
	perf.Operation, perf.DurationMS, perf.Timestamp = "charge", 12.5, t0
	wire, err := events.Marshal(perf)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline_decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.Decode(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("no_match", func(b *testing.B) {
		e := alerting.NewEngine(cfg.Rules)
		b.ReportAllocs()
		for b.Loop() {
			e.Observe(perf, t0)
		}
	})
	b.Run("absence_open_close", func(b *testing.B) {
		e := alerting.NewEngine(cfg.Rules)
		const keys = 1024
		starts, ends := make([]events.Event, keys), make([]events.Event, keys)
		for i := range keys {
			id := fmt.Sprintf("ctx-%06d", i)
			s, c := events.NewValidationEvent(events.ValidationStarted, "checkout", id), events.NewValidationEvent(events.ValidationCompleted, "checkout", id)
			s.Timestamp, c.Timestamp = t0, t0
			starts[i], ends[i] = s, c
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e.Observe(starts[i%keys], t0)
			e.Observe(ends[i%keys], t0)
			i++
		}
	})
}
