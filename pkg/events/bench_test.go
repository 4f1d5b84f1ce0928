package events_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// stdPerformance mirrors PerformanceEvent's wire form with struct tags, so
// that encoding/json handles the same fields, names and omissions: the
// baseline for the codec benchmarks.
type stdPerformance struct {
	EventType    string            `json:"event_type"`
	ID           string            `json:"id"`
	Source       string            `json:"source"`
	Timestamp    time.Time         `json:"timestamp"`
	TraceID      string            `json:"trace_id,omitempty"`
	SpanID       string            `json:"span_id,omitempty"`
	ParentSpanID string            `json:"parent_span_id,omitempty"`
	ContextID    string            `json:"context_id,omitempty"`
	FieldPath    string            `json:"field_path,omitempty"`
	Operation    string            `json:"operation,omitempty"`
	DurationMS   float64           `json:"duration_ms"`
	Phase        string            `json:"phase,omitempty"`
	Status       string            `json:"status,omitempty"`
	Metric       string            `json:"metric,omitempty"`
	Value        float64           `json:"value,omitempty"`
	Unit         string            `json:"unit,omitempty"`
	Resource     string            `json:"resource,omitempty"`
	Error        string            `json:"error,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
}

// benchEvent is a typical operation event: ids, trace context, operation,
// duration, status and a field path.
func benchEvent() *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.OperationComplete, "checkout-service")
	ev.ContextID, ev.FieldPath, ev.Operation = "req-8c1f", "order.items[3].sku", "db.query"
	ev.DurationMS, ev.Status = 12.75, events.StatusSuccess
	return ev
}

func stdOf(ev *events.PerformanceEvent) stdPerformance {
	return stdPerformance{
		EventType: string(ev.Type), ID: ev.ID, Source: ev.Source, Timestamp: ev.Timestamp,
		TraceID: ev.TraceID.String(), SpanID: ev.SpanID.String(), ContextID: ev.ContextID,
		FieldPath: ev.FieldPath, Operation: ev.Operation, DurationMS: ev.DurationMS, Status: ev.Status,
	}
}

// sink keeps benchmark results alive, so that buffers escape as they would in
// real use.
var sink []byte

// BenchmarkEncode compares encoding one PerformanceEvent with encoding/json on
// the same fields ("baseline"). "jetmon" allocates a fresh buffer per event,
// like Marshal; "jetmon_reuse" appends into a reused one, as buses do.
func BenchmarkEncode(b *testing.B) {
	ev := benchEvent()
	std := stdOf(ev)
	b.Run("baseline_encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&std); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jetmon", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = ev.AppendJSON(make([]byte, 0, 512))
		}
	})
	b.Run("jetmon_reuse", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = ev.AppendJSON(buf[:0])
		}
	})
}

// BenchmarkDecode compares decoding (and validating) one PerformanceEvent with
// encoding/json.Unmarshal into the same fields ("baseline", no validation).
func BenchmarkDecode(b *testing.B) {
	data := benchEvent().AppendJSON(nil)
	b.Run("baseline_encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var v stdPerformance
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jetmon", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := events.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkNewPerformanceEvent measures creating an event: id, timestamp and
// a new root span.
func BenchmarkNewPerformanceEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = events.NewPerformanceEvent(events.OperationComplete, "svc")
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !events.Match("performance.*.complete", events.OperationComplete) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkPublish measures Publish as the caller sees it. The noop bus must
// not allocate; the memory bus is measured with one subscriber draining it,
// and waits for every delivery before stopping the clock.
func BenchmarkPublish(b *testing.B) {
	ev := benchEvent()
	ctx := context.Background()
	b.Run("noop", func(b *testing.B) {
		bus := events.NewNoopBus()
		b.ReportAllocs()
		for b.Loop() {
			if err := bus.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory_1_subscriber", func(b *testing.B) {
		bus := events.NewMemoryBus(events.MemoryOptions{Retain: -1})
		defer func() { _ = bus.Close() }()
		var got atomic.Int64
		_, err := bus.Subscribe(ctx, "performance.>", events.HandlerFunc(func(context.Context, events.Event) error {
			got.Add(1)
			return nil
		}))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		n := int64(0)
		for b.Loop() {
			if err := bus.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
			n++
		}
		for got.Load() < n {
			time.Sleep(time.Millisecond)
		}
	})
}
