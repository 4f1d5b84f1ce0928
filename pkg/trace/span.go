// Package trace reassembles request flows from jetmon events and analyses
// them. It is pure: no I/O, no goroutines, the clock is a parameter.
//
// Events of one trace (same trace_id) become [Span]s. With span ids they form
// a tree by span_id/parent_span_id; without, a flow ordered by time and
// service. Events without a trace but with a context_id (a validation run
// and its phases) form a flow under a trace id derived from the context id
// ([ContextTraceID]), so they are fetched and analysed the same way. While a
// trace is open, an event of the same context_id joins it even under another
// trace id (a validation run whose events were made separately).
//
// The [Assembler] groups spans by trace in memory for a horizon after each
// trace's last span, then hands the finished trace over; it is bounded
// (open traces, spans per trace) and counts what it evicts or drops.
// [Build] turns a trace's spans into a [Tree] with self times, the critical
// path and errors; the [Analyzer] aggregates trees into the service
// dependency map and the critical-path bottlenecks of each window.
package trace

import (
	"crypto/sha256"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Span is one timed step of a trace, made from one event. Start and end are
// Unix nanoseconds; an event's timestamp is its end, and its duration
// (duration_ms, or latency_ms of a health check) reaches back to its start.
type Span struct {
	ID, Parent events.SpanID
	StartNS    int64
	EndNS      int64
	// EventID is the id of the event the span was made from; spans are
	// deduplicated by it.
	EventID string
	Type    events.Type
	// Service is the event's source; Name its operation, phase, component,
	// metric or resource (or the event type when it has none).
	Service, Name string
	Status        string
	Error         bool
	// ContextID is the event's context_id (a validation run, a unit of work).
	ContextID string
}

// DurationMS returns the span's duration in milliseconds.
func (s *Span) DurationMS() float64 { return float64(s.EndNS-s.StartNS) / 1e6 }

// ContextTraceID returns the trace id under which the events of context id
// c (without a trace id of their own) are assembled: the first 16 bytes of
// SHA-256("jetmon-context:" + c). It is never zero.
func ContextTraceID(c string) events.TraceID {
	sum := sha256.Sum256([]byte("jetmon-context:" + c))
	var id events.TraceID
	copy(id[:], sum[:16])
	if id.IsZero() {
		id[15] = 1
	}
	return id
}

// Traceable reports whether events of type t take part in traces. What the
// pipeline itself emits (aggregated windows, threshold events) and the
// monitoring controls do not.
func Traceable(t events.Type) bool {
	switch t {
	case events.MetricAggregated, events.ThresholdExceeded, events.ThresholdRecovered:
		return false
	}
	return t.Known() && t.Family() != events.FamilyMonitoring
}

// FromEvent returns the trace ev belongs to and its span. ok is false for an
// event of no trace (neither trace_id nor context_id) or of a type that is
// not [Traceable].
func FromEvent(ev events.Event) (id events.TraceID, s Span, ok bool) {
	m := ev.Metadata()
	if !Traceable(m.Type) {
		return id, s, false
	}
	switch {
	case !m.TraceID.IsZero():
		id = m.TraceID
	case m.ContextID != "":
		id = ContextTraceID(m.ContextID)
	default:
		return id, s, false
	}
	s = Span{ID: m.SpanID, Parent: m.ParentSpanID, EventID: m.ID, Type: m.Type, Service: m.Source, EndNS: m.Timestamp.UnixNano(), ContextID: m.ContextID}
	var dur float64
	switch e := ev.(type) {
	case *events.PerformanceEvent:
		dur, s.Status = e.DurationMS, e.Status
		s.Name = firstOf(e.Operation, e.Phase, e.Metric, e.Resource)
		s.Error = m.Type == events.OperationFailed || e.Error != ""
	case *events.ValidationEvent:
		dur, s.Status = e.DurationMS, e.Status
		s.Name = firstOf(e.FieldPath, "validation")
		s.Error = m.Type == events.ValidationFailed
	case *events.HealthEvent:
		dur, s.Status = e.LatencyMS, e.Status
		s.Name = firstOf(e.Component, e.Metric)
		s.Error = e.Status == events.StatusFailed
	case *events.SystemEvent:
		s.Name = firstOf(e.Component, "error")
		s.Error = true
	}
	if s.Name == "" {
		s.Name = string(m.Type)
	}
	if s.Status == events.StatusFailure || s.Status == events.StatusFailed {
		s.Error = true
	}
	s.StartNS = s.EndNS - int64(dur*float64(time.Millisecond))
	return id, s, true
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
