package events_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// TestBounds: every number is finite and in its documented range, every
// string and label set within its documented size, timestamps at most
// MaxClockSkew ahead (docs/wire-format.md, "Limits").
func TestBounds(t *testing.T) {
	perf := func(f func(*events.PerformanceEvent)) events.Event {
		ev := events.NewPerformanceEvent(events.OperationComplete, "svc")
		ev.Operation, ev.DurationMS = "op", 1
		f(ev)
		return ev
	}
	health := func(f func(*events.HealthEvent)) events.Event {
		ev := events.NewHealthEvent(events.CheckCompleted, "svc", "db")
		ev.Status = events.StatusHealthy
		f(ev)
		return ev
	}
	labels := func(n, keyLen, valueLen int) map[string]string {
		m := map[string]string{}
		for i := range n {
			k := strconv.Itoa(i)
			m[k+strings.Repeat("k", max(keyLen-len(k), 0))] = strings.Repeat("v", valueLen)
		}
		return m
	}
	now := time.Now()
	for _, tc := range []struct {
		name     string
		ev       events.Event
		field    string // "" = valid
		tooLarge bool
	}{
		{"duration 1.7e308", perf(func(e *events.PerformanceEvent) { e.DurationMS = 1.7e308 }), "duration_ms", false},
		{"duration at the limit", perf(func(e *events.PerformanceEvent) { e.DurationMS = 1e10 }), "", false},
		{"duration over the limit", perf(func(e *events.PerformanceEvent) { e.DurationMS = 1e10 + 1 }), "duration_ms", false},
		{"value 1e16", perf(func(e *events.PerformanceEvent) { e.Value = 1e16 }), "value", false},
		{"value -1e16", perf(func(e *events.PerformanceEvent) { e.Value = -1e16 }), "value", false},
		{"value 1e15", perf(func(e *events.PerformanceEvent) { e.Value = -1e15 }), "", false},
		{"latency 1e11", health(func(e *events.HealthEvent) { e.LatencyMS = 1e11 }), "latency_ms", false},
		{"threshold 1e300", health(func(e *events.HealthEvent) { e.Threshold = 1e300 }), "threshold", false},
		{"timestamp 55 min ahead", perf(func(e *events.PerformanceEvent) { e.Timestamp = now.Add(55 * time.Minute) }), "timestamp", false},
		{"timestamp 6 min ahead", perf(func(e *events.PerformanceEvent) { e.Timestamp = now.Add(6 * time.Minute) }), "timestamp", false},
		{"timestamp 4 min ahead", perf(func(e *events.PerformanceEvent) { e.Timestamp = now.Add(4 * time.Minute) }), "", false},
		{"timestamp before 1970", perf(func(e *events.PerformanceEvent) { e.Timestamp = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }), "timestamp", false},
		{"operation 256 bytes", perf(func(e *events.PerformanceEvent) { e.Operation = strings.Repeat("o", 256) }), "", false},
		{"operation 257 bytes", perf(func(e *events.PerformanceEvent) { e.Operation = strings.Repeat("o", 257) }), "operation", true},
		{"phase with a newline", perf(func(e *events.PerformanceEvent) { e.Phase = "a\nb" }), "phase", false},
		{"metric too long", perf(func(e *events.PerformanceEvent) { e.Metric = strings.Repeat("m", 300) }), "metric", true},
		{"error 4 KiB", perf(func(e *events.PerformanceEvent) { e.Error = strings.Repeat("e", 4096) }), "", false},
		{"error over 4 KiB", perf(func(e *events.PerformanceEvent) { e.Error = strings.Repeat("e", 4097) }), "error", true},
		{"component too long", health(func(e *events.HealthEvent) { e.Component = strings.Repeat("c", 257) }), "component", true},
		{"message over 4 KiB", health(func(e *events.HealthEvent) { e.Message = strings.Repeat("m", 4097) }), "message", true},
		{"64 attributes", perf(func(e *events.PerformanceEvent) { e.Attributes = labels(64, 128, 1024) }), "", false},
		{"65 attributes", perf(func(e *events.PerformanceEvent) { e.Attributes = labels(65, 1, 1) }), "attributes", true},
		{"attribute key too long", perf(func(e *events.PerformanceEvent) { e.Attributes = labels(1, 129, 1) }), "attributes", true},
		{"attribute value too long", perf(func(e *events.PerformanceEvent) { e.Attributes = map[string]string{"k": strings.Repeat("v", 1025)} }), "attributes.k", true},
		{"empty attribute key", perf(func(e *events.PerformanceEvent) { e.Attributes = map[string]string{"": "v"} }), "attributes", false},
		{"context_id too long", perf(func(e *events.PerformanceEvent) { e.ContextID = strings.Repeat("c", 257) }), "context_id", true},
		{"65 config entries", func() events.Event {
			ev := events.NewControlEvent(events.ConfigChanged, "svc")
			ev.Config = labels(65, 1, 1)
			return ev
		}(), "config", true},
		{"reason over 4 KiB", func() events.Event {
			ev := events.NewControlEvent(events.MonitoringDisabled, "svc")
			ev.Reason = strings.Repeat("r", 4097)
			return ev
		}(), "reason", true},
		{"257 validation errors", func() events.Event {
			ev := events.NewValidationEvent(events.ValidationFailed, "svc", "run-1")
			ev.Errors = make([]string, 257)
			return ev
		}(), "errors", true},
		{"validation error over 4 KiB", func() events.Event {
			ev := events.NewValidationEvent(events.ValidationFailed, "svc", "run-1")
			ev.Errors = []string{"ok", strings.Repeat("e", 4097)}
			return ev
		}(), "errors[1]", true},
		{"system message over 4 KiB", func() events.Event {
			ev := events.NewSystemEvent(events.SystemError, "svc", "boom")
			ev.Message = strings.Repeat("m", 4097)
			return ev
		}(), "message", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			ve, ok := errors.AsType[*events.ValidationError](err)
			if !ok || ve.Field != tc.field {
				t.Fatalf("Validate: %v; want an error on %s", err, tc.field)
			}
			if errors.Is(err, events.ErrPayloadTooLarge) != tc.tooLarge {
				t.Errorf("errors.Is(%v, ErrPayloadTooLarge) = %v, want %v", err, !tc.tooLarge, tc.tooLarge)
			}
			// The decoder applies the same bounds.
			if _, err := events.Decode(tc.ev.AppendJSON(nil)); err == nil {
				t.Errorf("Decode accepted what Validate refuses")
			}
		})
	}
}

func TestDecodeRefusesAbsurdNumbers(t *testing.T) {
	for _, body := range []string{
		`{"event_type":"performance.operation.complete","id":"1","source":"s","timestamp":"2026-11-27T10:00:00Z","operation":"op","duration_ms":1.7e308}`,
		`{"event_type":"performance.metric.recorded","id":"1","source":"s","timestamp":"2026-11-27T10:00:00Z","metric":"m","value":-1e20}`,
		`{"event_type":"health.check.completed","id":"1","source":"s","timestamp":"2026-11-27T10:00:00Z","component":"c","status":"healthy","latency_ms":1e12}`,
	} {
		if _, err := events.Decode([]byte(body)); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("Decode(%s): %v, want ErrInvalid", body, err)
		}
	}
}

// TestFutureTimestampAfterFastPath: the clock-free fast path never lets a
// timestamp past MaxClockSkew through, whatever was validated before.
func TestFutureTimestampAfterFastPath(t *testing.T) {
	for _, ahead := range []time.Duration{0, 4 * time.Minute, time.Minute, 6 * time.Minute, 0, events.MaxClockSkew + time.Second} {
		ev := events.NewSystemEvent(events.SystemError, "svc", "boom")
		ev.Timestamp = time.Now().Add(ahead)
		err := ev.Validate()
		if want := ahead > events.MaxClockSkew; (err != nil) != want {
			t.Errorf("%v ahead: %v", ahead, err)
		}
	}
}
