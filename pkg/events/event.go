package events

import (
	"time"
)

// Event is one typed jetmon event: a [*PerformanceEvent], [*AggregateEvent],
// [*HealthEvent], [*ControlEvent], [*ValidationEvent] or [*SystemEvent]. The set is closed; the
// event's [Type] decides which Go type carries it.
//
// Events are plain values: they are not safe for concurrent mutation, and a bus
// never keeps a reference to an event after Publish returns (subscribers receive
// their own decoded copies).
type Event interface {
	// Metadata returns the fields every event carries. Changes made through the
	// pointer change the event.
	Metadata() *Meta
	// Validate reports the first problem with the event, as a [*ValidationError]
	// naming the field, or nil.
	Validate() error
	// AppendJSON appends the event's wire form (docs/wire-format.md) to dst.
	// Non-finite numbers are written as null; call Validate first to reject them.
	AppendJSON(dst []byte) []byte

	// validateFields checks the type's own fields; seen says which number
	// fields were present on the wire. Being unexported, it also keeps the set
	// of event types closed.
	validateFields(seen fieldSet) error
}

// Meta holds the fields every event carries, whatever its type.
type Meta struct {
	// ID is unique per event and the key for deduplication. [NewID] makes
	// time-sortable UUIDv7 ids; any non-empty string up to 128 bytes is accepted.
	ID string
	// Type is the event type; it must be one of the taxonomy's constants.
	Type Type
	// Source names the emitting service or instance.
	Source string
	// Timestamp is when the event happened (set at creation).
	Timestamp time.Time
	// TraceID, SpanID and ParentSpanID are the W3C trace context. Zero means absent.
	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID
	// ContextID correlates the events of one unit of work, e.g. a validation run
	// and the phases it drives.
	ContextID string
	// Attributes are free-form labels added by the emitter or by enrichment
	// (host, service, version, ...).
	Attributes map[string]string
}

// Metadata returns m itself; it makes every event type satisfy [Event].
func (m *Meta) Metadata() *Meta { return m }

// Trace returns the event's trace context.
func (m *Meta) Trace() TraceContext {
	return TraceContext{TraceID: m.TraceID, SpanID: m.SpanID, ParentSpanID: m.ParentSpanID, Sampled: true}
}

// SetTrace places the event in tc: it takes tc's trace, span and parent span.
func (m *Meta) SetTrace(tc TraceContext) {
	m.TraceID, m.SpanID, m.ParentSpanID = tc.TraceID, tc.SpanID, tc.ParentSpanID
}

// newMeta fills the fields set at creation: a fresh id, the current time (UTC,
// without the monotonic reading) and a new root span.
func newMeta(t Type, source string) Meta {
	return Meta{
		ID:        NewID(),
		Type:      t,
		Source:    source,
		Timestamp: time.Now().UTC().Round(0),
		TraceID:   NewTraceID(),
		SpanID:    NewSpanID(),
	}
}

// Status values used by performance, validation and health events.
const (
	StatusSuccess  = "success"
	StatusFailure  = "failure"
	StatusHealthy  = "healthy"
	StatusDegraded = "degraded"
	StatusFailed   = "failed"
)

// Monitoring modes carried by [ModeSwitched] events.
const (
	ModeDirect      = "direct"
	ModeEventDriven = "event_driven"
	ModeDisabled    = "disabled"
)

// PerformanceEvent carries the performance.* events of phases, operations,
// metrics and resources; performance.metric.aggregated has its own
// [AggregateEvent].
type PerformanceEvent struct {
	Meta
	// FieldPath is the field or path being processed (e.g. "user.address.zip").
	FieldPath string
	// Operation names the timed operation (required for operation.* events).
	Operation string
	// DurationMS is the duration in milliseconds (required for phase.end and
	// operation.* events); it must be finite and not negative.
	DurationMS float64
	// Phase names the phase (required for phase.* events).
	Phase string
	// Status is the outcome, usually [StatusSuccess] or [StatusFailure].
	Status string
	// Metric and Value are the name and value of a metric.recorded event.
	Metric string
	Value  float64
	// Unit is the unit of Value (e.g. "bytes").
	Unit string
	// Resource names the resource of a resource.* event.
	Resource string
	// Error describes the failure of an operation.failed event.
	Error string
}

// NewPerformanceEvent returns a performance event of type t from source with
// its id, timestamp and a new root span set.
func NewPerformanceEvent(t Type, source string) *PerformanceEvent {
	return &PerformanceEvent{Meta: newMeta(t, source)}
}

// HealthEvent carries every health.* event.
type HealthEvent struct {
	Meta
	// Component names the checked component (required for component.* and
	// check.completed events).
	Component string
	// Status is [StatusHealthy], [StatusDegraded] or [StatusFailed].
	Status string
	// Message explains the status.
	Message string
	// LatencyMS is how long the check took, in milliseconds.
	LatencyMS float64
	// Metric, Value and Threshold describe a threshold.* event: the measured
	// metric, its value and the threshold it crossed.
	Metric    string
	Value     float64
	Threshold float64
}

// NewHealthEvent returns a health event of type t from source about component.
// For component.* types Status is set to match the type.
func NewHealthEvent(t Type, source, component string) *HealthEvent {
	e := &HealthEvent{Meta: newMeta(t, source), Component: component}
	switch t {
	case ComponentHealthy:
		e.Status = StatusHealthy
	case ComponentDegraded:
		e.Status = StatusDegraded
	case ComponentFailed:
		e.Status = StatusFailed
	}
	return e
}

// ControlEvent carries every monitoring.* event: the run-time controls of the
// monitoring system and their acknowledgements.
type ControlEvent struct {
	Meta
	// Mode is the new monitoring mode ([ModeDirect], [ModeEventDriven] or
	// [ModeDisabled]); required for mode.switched.
	Mode string
	// PreviousMode is the mode before the switch, if known.
	PreviousMode string
	// SampleRate is the fraction of events kept, in [0, 1]; required for
	// monitoring.sampled.
	SampleRate float64
	// Scope is an event-type pattern the control applies to; empty means all.
	Scope string
	// Reason says why the control was issued.
	Reason string
	// Config holds changed settings of a config.changed event.
	Config map[string]string
}

// NewControlEvent returns a monitoring control event of type t from source.
func NewControlEvent(t Type, source string) *ControlEvent {
	return &ControlEvent{Meta: newMeta(t, source)}
}

// ValidationEvent carries every validation.* event.
type ValidationEvent struct {
	Meta
	// FieldPath is the field or document being validated.
	FieldPath string
	// Status is the outcome of a completed or failed validation.
	Status string
	// DurationMS is how long the validation took, in milliseconds.
	DurationMS float64
	// Errors lists validation failures.
	Errors []string
	// Message is a human-readable summary.
	Message string
}

// NewValidationEvent returns a validation event of type t from source for the
// validation run contextID.
func NewValidationEvent(t Type, source, contextID string) *ValidationEvent {
	e := &ValidationEvent{Meta: newMeta(t, source)}
	e.ContextID = contextID
	return e
}

// SystemEvent carries system.error events.
type SystemEvent struct {
	Meta
	// Component names where the error happened.
	Component string
	// Error is the error text (required).
	Error string
	// Message adds context for people.
	Message string
}

// NewSystemEvent returns a system event of type t from source.
func NewSystemEvent(t Type, source, errText string) *SystemEvent {
	return &SystemEvent{Meta: newMeta(t, source), Error: errText}
}

// New returns an empty event of the Go type that carries t, with its id,
// timestamp and a new root span set. It returns a [*ValidationError] for a
// type outside the taxonomy.
func New(t Type, source string) (Event, error) {
	ev := newForType(t)
	if ev == nil {
		return nil, &ValidationError{Field: "event_type", Reason: "unknown event type " + quote(string(t))}
	}
	*ev.Metadata() = newMeta(t, source)
	return ev, nil
}

// newForType returns a zero event of the Go type that carries t, or nil.
func newForType(t Type) Event {
	if !t.Known() {
		return nil
	}
	switch t.Family() {
	case FamilyPerformance:
		if t == MetricAggregated {
			return &AggregateEvent{}
		}
		return &PerformanceEvent{}
	case FamilyHealth:
		return &HealthEvent{}
	case FamilyMonitoring:
		return &ControlEvent{}
	case FamilyValidation:
		return &ValidationEvent{}
	case FamilySystem:
		return &SystemEvent{}
	}
	return nil
}
