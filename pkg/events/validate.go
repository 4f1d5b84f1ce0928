package events

import (
	"errors"
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ErrInvalid is matched (with [errors.Is]) by every [*ValidationError]: the
// event breaks the data model and retrying will not help.
var ErrInvalid = errors.New("invalid event")

// MaxClockSkew is how far in the future an event's timestamp may lie before
// validation rejects it as absurd.
const MaxClockSkew = time.Hour

// Limits on the free-form identifiers of an event.
const (
	MaxIDLen     = 128
	MaxSourceLen = 256
)

// ValidationError reports the first field of an event that breaks the data
// model. It matches [ErrInvalid].
type ValidationError struct {
	// Field is the wire (JSON) name of the offending field, e.g. "duration_ms".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ValidationError) Error() string {
	return "invalid event: " + e.Field + ": " + e.Reason
}

// Is makes every ValidationError match [ErrInvalid].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

func missing(field string) error { return invalid(field, "required field is missing") }

// fieldSet records which number fields were present on the wire, so that a
// required number that is absent can be told from one that is zero.
type fieldSet uint8

const (
	seenDuration fieldSet = 1 << iota
	seenValue
	seenSampleRate
	seenAll fieldSet = 0xff // events built in Go: every field counts as set
)

// validate runs the checks common to all events, then the type's own.
func validate(ev Event, fam Family, seen fieldSet) error {
	m := ev.Metadata()
	if err := m.validate(fam); err != nil {
		return err
	}
	return ev.validateFields(seen)
}

func (m *Meta) validate(fam Family) error {
	switch {
	case m.Type == "":
		return missing("event_type")
	case !m.Type.Known():
		return invalid("event_type", "unknown event type "+quote(string(m.Type)))
	case m.Type.Family() != fam:
		return invalid("event_type", quote(string(m.Type))+" is not a "+string(fam)+" event")
	}
	if err := checkToken("id", m.ID, MaxIDLen); err != nil {
		return err
	}
	if err := checkText("source", m.Source, MaxSourceLen, true); err != nil {
		return err
	}
	if m.Timestamp.IsZero() {
		return missing("timestamp")
	}
	if inFuture(m.Timestamp) {
		return invalid("timestamp", m.Timestamp.UTC().Format(time.RFC3339)+" is more than "+MaxClockSkew.String()+" in the future")
	}
	if m.TraceID.IsZero() && (!m.SpanID.IsZero() || !m.ParentSpanID.IsZero()) {
		return invalid("trace_id", "required when span_id or parent_span_id is set")
	}
	if !m.TraceID.IsZero() && m.SpanID.IsZero() {
		return invalid("span_id", "required when trace_id is set")
	}
	return nil
}

// recentNow holds the Unix nanoseconds of some past time.Now(). Because it is
// never later than the real clock, a timestamp within MaxClockSkew of it is
// within MaxClockSkew of now too, and validation skips reading the clock
// (slow on some virtual machines) for all but suspicious timestamps.
var recentNow atomic.Int64

// inFuture reports whether ts lies more than MaxClockSkew after now.
func inFuture(ts time.Time) bool {
	if ts.Before(time.Unix(0, recentNow.Load()).Add(MaxClockSkew)) {
		return false
	}
	now := time.Now()
	recentNow.Store(now.UnixNano())
	return ts.After(now.Add(MaxClockSkew))
}

// checkToken accepts 1..maxLen bytes of printable ASCII without spaces: ids end
// up in message headers.
func checkToken(field, v string, maxLen int) error {
	if v == "" {
		return missing(field)
	}
	if len(v) > maxLen {
		return invalid(field, "longer than "+strconv.Itoa(maxLen)+" bytes")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return invalid(field, "contains a space, control or non-ASCII character at byte "+strconv.Itoa(i))
		}
	}
	return nil
}

// checkText accepts valid UTF-8 without control characters, up to maxLen bytes.
func checkText(field, v string, maxLen int, required bool) error {
	if v == "" {
		if required {
			return missing(field)
		}
		return nil
	}
	if len(v) > maxLen {
		return invalid(field, "longer than "+strconv.Itoa(maxLen)+" bytes")
	}
	if plainPrefixString(v) == len(v) { // printable ASCII: nothing more to check
		return nil
	}
	if !utf8.ValidString(v) {
		return invalid(field, "not valid UTF-8")
	}
	for i, r := range v {
		if r < ' ' || r == 0x7f {
			return invalid(field, "contains a control character at byte "+strconv.Itoa(i))
		}
	}
	return nil
}

// checkDuration accepts finite, non-negative milliseconds.
func checkDuration(field string, v float64) error {
	switch {
	case math.IsNaN(v):
		return invalid(field, "must be a number, got NaN")
	case math.IsInf(v, 0):
		return invalid(field, "must be finite, got "+strconv.FormatFloat(v, 'g', -1, 64))
	case v < 0:
		return invalid(field, "must not be negative, got "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil
}

func checkFinite(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return invalid(field, "must be finite, got "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil
}

func checkHealthStatus(field, v string, required bool) error {
	switch v {
	case StatusHealthy, StatusDegraded, StatusFailed:
		return nil
	case "":
		if required {
			return missing(field)
		}
		return nil
	}
	return invalid(field, "must be healthy, degraded or failed, got "+quote(v))
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *PerformanceEvent) Validate() error { return validate(e, FamilyPerformance, seenAll) }

func (e *PerformanceEvent) validateFields(seen fieldSet) error {
	if err := checkDuration("duration_ms", e.DurationMS); err != nil {
		return err
	}
	if err := checkFinite("value", e.Value); err != nil {
		return err
	}
	needDuration := false
	switch e.Type {
	case PhaseStart:
		if e.Phase == "" {
			return missing("phase")
		}
	case PhaseEnd:
		if e.Phase == "" {
			return missing("phase")
		}
		needDuration = true
	case OperationComplete, OperationFailed:
		if e.Operation == "" {
			return missing("operation")
		}
		needDuration = true
	case MetricRecorded:
		if e.Metric == "" {
			return missing("metric")
		}
		if seen&seenValue == 0 {
			return missing("value")
		}
	case MetricAggregated:
		return invalid("event_type", "performance.metric.aggregated is carried by an AggregateEvent")
	case ResourceAllocated, ResourceReleased:
		if e.Resource == "" {
			return missing("resource")
		}
	}
	if needDuration && seen&seenDuration == 0 {
		return missing("duration_ms")
	}
	return nil
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *HealthEvent) Validate() error { return validate(e, FamilyHealth, seenAll) }

func (e *HealthEvent) validateFields(fieldSet) error {
	if err := checkDuration("latency_ms", e.LatencyMS); err != nil {
		return err
	}
	if err := checkFinite("value", e.Value); err != nil {
		return err
	}
	if err := checkFinite("threshold", e.Threshold); err != nil {
		return err
	}
	switch e.Type {
	case ComponentHealthy, ComponentDegraded, ComponentFailed:
		if e.Component == "" {
			return missing("component")
		}
		if want := e.Type[len("health.component."):]; e.Status != "" && e.Status != string(want) {
			return invalid("status", quote(e.Status)+" contradicts event_type "+quote(string(e.Type)))
		}
	case CheckCompleted:
		if e.Component == "" {
			return missing("component")
		}
		return checkHealthStatus("status", e.Status, true)
	case SystemStatus:
		return checkHealthStatus("status", e.Status, true)
	case ThresholdExceeded, ThresholdRecovered:
		if e.Metric == "" {
			return missing("metric")
		}
	}
	return checkHealthStatus("status", e.Status, false)
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *ControlEvent) Validate() error { return validate(e, FamilyMonitoring, seenAll) }

func (e *ControlEvent) validateFields(seen fieldSet) error {
	if err := checkMode("mode", e.Mode, e.Type == ModeSwitched); err != nil {
		return err
	}
	if err := checkMode("previous_mode", e.PreviousMode, false); err != nil {
		return err
	}
	if math.IsNaN(e.SampleRate) || e.SampleRate < 0 || e.SampleRate > 1 {
		return invalid("sample_rate", "must be between 0 and 1, got "+strconv.FormatFloat(e.SampleRate, 'g', -1, 64))
	}
	if e.Type == MonitoringSampled && seen&seenSampleRate == 0 {
		return missing("sample_rate")
	}
	if e.Scope != "" {
		if err := ValidatePattern(e.Scope); err != nil {
			return invalid("scope", err.Error())
		}
	}
	return nil
}

func checkMode(field, v string, required bool) error {
	switch v {
	case ModeDirect, ModeEventDriven, ModeDisabled:
		return nil
	case "":
		if required {
			return missing(field)
		}
		return nil
	}
	return invalid(field, "must be direct, event_driven or disabled, got "+quote(v))
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *ValidationEvent) Validate() error { return validate(e, FamilyValidation, seenAll) }

func (e *ValidationEvent) validateFields(fieldSet) error {
	if e.ContextID == "" {
		return missing("context_id")
	}
	return checkDuration("duration_ms", e.DurationMS)
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *SystemEvent) Validate() error { return validate(e, FamilySystem, seenAll) }

func (e *SystemEvent) validateFields(fieldSet) error {
	if e.Error == "" {
		return missing("error")
	}
	return nil
}

// quote returns s in double quotes, shortened to keep error messages readable.
func quote(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}
