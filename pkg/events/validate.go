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
// validation rejects it: enough for clocks that disagree, too little to
// hold a window open or to sort ahead of what is yet to come.
const MaxClockSkew = 5 * time.Minute

// MinTimestamp is the earliest timestamp validation accepts: the Unix epoch.
var MinTimestamp = time.Unix(0, 0).UTC()

// Limits on the strings of an event (docs/wire-format.md, "Limits"), in
// bytes of UTF-8.
const (
	// MaxIDLen bounds id.
	MaxIDLen = 128
	// MaxSourceLen bounds source.
	MaxSourceLen = 256
	// MaxNameLen bounds the names: operation, phase, metric, component,
	// resource, field_path, unit, status, context_id, scope,
	// aggregated_type.
	MaxNameLen = 256
	// MaxTextLen bounds free text: message, error, reason, each entry of a
	// validation event's errors, each value of a control event's config.
	MaxTextLen = 4 << 10
	// MaxLabels bounds the entries of attributes and config.
	MaxLabels = 64
	// MaxLabelKeyLen bounds each key of attributes and config (keys must not
	// be empty).
	MaxLabelKeyLen = 128
	// MaxLabelValueLen bounds each value of attributes.
	MaxLabelValueLen = 1 << 10
	// MaxListLen bounds the entries of a validation event's errors.
	MaxListLen = 256
)

// Limits on the numbers of an event. Every number must be finite.
const (
	// MaxDurationMS bounds duration_ms and latency_ms, which must not be
	// negative either: 1e10 ms is about 115 days.
	MaxDurationMS = 1e10
	// MaxAbsValue bounds the absolute value of value and threshold.
	MaxAbsValue = 1e15
)

// ValidationError reports the first field of an event that breaks the data
// model. It matches [ErrInvalid]; one for a field over its length or count
// limit also matches [ErrPayloadTooLarge].
type ValidationError struct {
	// Field is the wire (JSON) name of the offending field, e.g. "duration_ms".
	Field string
	// Reason says what is wrong with it.
	Reason string

	tooLarge bool
}

func (e *ValidationError) Error() string {
	return "invalid event: " + e.Field + ": " + e.Reason
}

// Is makes every ValidationError match [ErrInvalid], and one for a field
// over its size limit [ErrPayloadTooLarge].
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || (e.tooLarge && target == ErrPayloadTooLarge)
}

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }

// tooLong reports a field over its length or count limit.
func tooLong(field, reason string) error {
	return &ValidationError{Field: field, Reason: reason, tooLarge: true}
}

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
	if m.Timestamp.Before(MinTimestamp) {
		return invalid("timestamp", m.Timestamp.UTC().Format(time.RFC3339)+" is before 1970")
	}
	if err := checkText("context_id", m.ContextID, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkLabels("attributes", m.Attributes, MaxLabelValueLen); err != nil {
		return err
	}
	// trace_id alone is valid (the seed's correlation): events of one trace
	// without spans are ordered into a flow by time and source.
	if m.TraceID.IsZero() && (!m.SpanID.IsZero() || !m.ParentSpanID.IsZero()) {
		return invalid("trace_id", "required when span_id or parent_span_id is set")
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
		return tooLong(field, "longer than "+strconv.Itoa(maxLen)+" bytes")
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
		return tooLong(field, "longer than "+strconv.Itoa(maxLen)+" bytes")
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

// checkLength accepts up to maxLen bytes of anything (free text may hold
// line breaks).
func checkLength(field, v string, maxLen int) error {
	if len(v) > maxLen {
		return tooLong(field, "longer than "+strconv.Itoa(maxLen)+" bytes")
	}
	return nil
}

// checkNames applies checkText with MaxNameLen to optional name fields,
// given as field, value pairs.
func checkNames(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if err := checkText(fields[i], fields[i+1], MaxNameLen, false); err != nil {
			return err
		}
	}
	return nil
}

// checkLabels bounds a map of labels: at most MaxLabels entries, non-empty
// keys of at most MaxLabelKeyLen bytes, values of at most maxValue bytes.
func checkLabels(field string, m map[string]string, maxValue int) error {
	if len(m) > MaxLabels {
		return tooLong(field, "more than "+strconv.Itoa(MaxLabels)+" entries")
	}
	for k, v := range m {
		switch {
		case k == "":
			return invalid(field, "empty key")
		case len(k) > MaxLabelKeyLen:
			return tooLong(field, "key "+quote(k)+" longer than "+strconv.Itoa(MaxLabelKeyLen)+" bytes")
		case len(v) > maxValue:
			return tooLong(field+"."+k, "longer than "+strconv.Itoa(maxValue)+" bytes")
		}
	}
	return nil
}

// checkDuration accepts finite milliseconds in [0, MaxDurationMS].
func checkDuration(field string, v float64) error {
	switch {
	case math.IsNaN(v):
		return invalid(field, "must be a number, got NaN")
	case math.IsInf(v, 0):
		return invalid(field, "must be finite, got "+strconv.FormatFloat(v, 'g', -1, 64))
	case v < 0:
		return invalid(field, "must not be negative, got "+strconv.FormatFloat(v, 'g', -1, 64))
	case v > MaxDurationMS:
		return invalid(field, "must be at most 1e10 (ms, about 115 days), got "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil
}

// checkValue accepts finite numbers whose absolute value is at most
// MaxAbsValue.
func checkValue(field string, v float64) error {
	if err := checkFinite(field, v); err != nil {
		return err
	}
	if math.Abs(v) > MaxAbsValue {
		return invalid(field, "must be between -1e15 and 1e15, got "+strconv.FormatFloat(v, 'g', -1, 64))
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
	if err := checkValue("value", e.Value); err != nil {
		return err
	}
	if err := checkNames("field_path", e.FieldPath, "operation", e.Operation, "phase", e.Phase, "status", e.Status,
		"metric", e.Metric, "unit", e.Unit, "resource", e.Resource); err != nil {
		return err
	}
	if err := checkLength("error", e.Error, MaxTextLen); err != nil {
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
	if err := checkValue("value", e.Value); err != nil {
		return err
	}
	if err := checkValue("threshold", e.Threshold); err != nil {
		return err
	}
	if err := checkNames("component", e.Component, "metric", e.Metric); err != nil {
		return err
	}
	if err := checkLength("message", e.Message, MaxTextLen); err != nil {
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
		if err := checkLength("scope", e.Scope, MaxNameLen); err != nil {
			return err
		}
		if err := ValidatePattern(e.Scope); err != nil {
			return invalid("scope", err.Error())
		}
	}
	if err := checkLength("reason", e.Reason, MaxTextLen); err != nil {
		return err
	}
	return checkLabels("config", e.Config, MaxTextLen)
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
	if err := checkDuration("duration_ms", e.DurationMS); err != nil {
		return err
	}
	if err := checkNames("field_path", e.FieldPath, "status", e.Status); err != nil {
		return err
	}
	if err := checkLength("message", e.Message, MaxTextLen); err != nil {
		return err
	}
	if len(e.Errors) > MaxListLen {
		return tooLong("errors", "more than "+strconv.Itoa(MaxListLen)+" entries")
	}
	for i, msg := range e.Errors {
		if err := checkLength("errors["+strconv.Itoa(i)+"]", msg, MaxTextLen); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *SystemEvent) Validate() error { return validate(e, FamilySystem, seenAll) }

func (e *SystemEvent) validateFields(fieldSet) error {
	if e.Error == "" {
		return missing("error")
	}
	if err := checkNames("component", e.Component); err != nil {
		return err
	}
	if err := checkLength("error", e.Error, MaxTextLen); err != nil {
		return err
	}
	return checkLength("message", e.Message, MaxTextLen)
}

// quote returns s in double quotes, shortened to keep error messages readable.
func quote(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}
