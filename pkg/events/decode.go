package events

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// Errors returned by decoding.
var (
	// ErrMalformed is matched by a [*SyntaxError]: the payload is not valid JSON
	// of the wire format's shape.
	ErrMalformed = errors.New("malformed event payload")
	// ErrPayloadTooLarge reports a payload (or an event's encoding) over the
	// configured size limit.
	ErrPayloadTooLarge = errors.New("payload too large")
)

// DefaultMaxPayload is the default limit on an encoded event or batch: 1 MiB,
// the default NATS max_payload.
const DefaultMaxPayload = 1 << 20

// Decoder turns wire-form payloads into typed events. The zero value is ready
// to use: it enforces [DefaultMaxPayload] and validates every event. A Decoder
// is safe for concurrent use.
type Decoder struct {
	// MaxPayload is the largest payload accepted, in bytes. 0 means
	// DefaultMaxPayload; a negative value means no limit.
	MaxPayload int
	// SkipValidation returns events that decode but break the data model
	// (missing required fields, absurd timestamps) instead of rejecting them.
	// Unknown event types are always rejected: they have no Go type.
	SkipValidation bool
}

// Decode decodes one event with the default [Decoder].
func Decode(data []byte) (Event, error) { return Decoder{}.Decode(data) }

// DecodeBatch decodes a batch (or a single event) with the default [Decoder].
func DecodeBatch(data []byte) ([]Event, error) { return Decoder{}.DecodeBatch(data) }

func (d Decoder) checkSize(data []byte) error {
	limit := d.MaxPayload
	if limit == 0 {
		limit = DefaultMaxPayload
	}
	if limit > 0 && len(data) > limit {
		return &sizeError{size: len(data), limit: limit}
	}
	return nil
}

type sizeError struct{ size, limit int }

func (e *sizeError) Error() string {
	return "payload too large: " + strconv.Itoa(e.size) + " bytes exceeds the limit of " + strconv.Itoa(e.limit)
}

func (e *sizeError) Is(target error) bool { return target == ErrPayloadTooLarge }

// Decode decodes one event in wire form (a JSON object). Errors match
// [ErrPayloadTooLarge], [ErrMalformed] (a [*SyntaxError] with the offset) or
// [ErrInvalid] (a [*ValidationError] naming the field). Decode never panics.
func (d Decoder) Decode(data []byte) (Event, error) {
	if err := d.checkSize(data); err != nil {
		return nil, err
	}
	s := scanner{data: data}
	if s.peek() != '{' {
		return nil, s.fail("expected a JSON object")
	}
	return d.decodeObject(data, s.pos, true)
}

// DecodeBatch decodes a batch in wire form: a JSON array of events (a single
// object is accepted as a batch of one). It returns every event that decoded;
// when some did not, the error is a [*BatchError] with one entry per bad item.
// Other errors ([ErrPayloadTooLarge], [ErrMalformed] for broken array syntax)
// mean nothing could be decoded.
func (d Decoder) DecodeBatch(data []byte) ([]Event, error) {
	var out []Event
	var bad []ItemError
	err := d.EachInBatch(data, func(it BatchItem) {
		if it.Err != nil {
			bad = append(bad, ItemError{Index: it.Index, Err: it.Err})
			return
		}
		out = append(out, it.Event)
	})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return out, &BatchError{Items: bad}
	}
	return out, nil
}

// BatchItem is one item of a batch, as [Decoder.EachInBatch] sees it.
type BatchItem struct {
	// Index is the item's position in the batch, from 0.
	Index int
	// Raw is the item's bytes (valid during the callback only).
	Raw []byte
	// Event is the decoded event, or nil when Err is set.
	Event Event
	// Err is what is wrong with this item alone.
	Err error
}

// EachInBatch decodes a batch item by item, calling fn with each item: its
// event or the error that item alone caused. A bad item never hides the good
// ones. The returned error is for the payload as a whole: over the size
// limit, or array syntax broken so that items cannot be told apart (items
// before the break have been passed to fn).
func (d Decoder) EachInBatch(data []byte, fn func(BatchItem)) error {
	if err := d.checkSize(data); err != nil {
		return err
	}
	s := &scanner{data: data}
	switch s.peek() {
	case '{':
		ev, err := d.Decode(data)
		if _, ok := errors.AsType[*SyntaxError](err); ok {
			return err
		}
		fn(BatchItem{Index: 0, Raw: data, Event: ev, Err: err})
		return nil
	case '[':
	default:
		return s.fail("expected a JSON array or object")
	}
	for i := 0; ; i++ {
		ok, err := s.element(i == 0)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		start := s.pos
		isObject := s.peek() == '{'
		if err := s.skip(1); err != nil {
			return err
		}
		raw := data[start:s.pos]
		if !isObject {
			fn(BatchItem{Index: i, Raw: raw, Err: &SyntaxError{Offset: start, Msg: "batch item is not an object"}})
			continue
		}
		ev, err := d.decodeObject(data[:s.pos], start, false)
		fn(BatchItem{Index: i, Raw: raw, Event: ev, Err: err})
	}
	if s.peek() != 0 {
		return s.fail("unexpected data after the batch")
	}
	return nil
}

// ItemError is the error of one item of a batch.
type ItemError struct {
	Index int
	Err   error
}

// BatchError lists the items of a batch that could not be decoded.
type BatchError struct {
	Items []ItemError
}

func (e *BatchError) Error() string {
	msg := strconv.Itoa(len(e.Items)) + " bad event(s) in batch; first: item " +
		strconv.Itoa(e.Items[0].Index) + ": " + e.Items[0].Err.Error()
	return msg
}

// Unwrap returns the items' errors, so errors.Is(err, ErrInvalid) works.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Items))
	for i, it := range e.Items {
		errs[i] = it.Err
	}
	return errs
}

// decodeObject decodes the object that starts at data[start:]. With whole
// set, the object must be all that follows; otherwise data ends with it.
// Strings without escapes share one allocation: a copy of the object's bytes.
func (d Decoder) decodeObject(data []byte, start int, whole bool) (Event, error) {
	// Offsets into s.str match offsets into s.data.
	s := scanner{data: data[start:], str: string(data[start:])}
	var t Type
	var ev Event
	var seen fieldSet
	var err error
	if key, ok, kerr := s.member(true); kerr == nil && ok && string(key) == "event_type" {
		// The common case: the type comes first, so decoding goes on from here.
		if t, err = readType(&s); err != nil {
			return nil, shift(err, start)
		}
		if ev = newForType(t); ev == nil {
			return nil, invalid("event_type", "unknown event type "+quote(string(t)))
		}
		ev.Metadata().Type = t
		seen, err = decodeInto(&s, ev, false)
	} else {
		s.pos = 0
		if t, err = findType(&s); err != nil {
			return nil, shift(err, start)
		}
		if ev = newForType(t); ev == nil {
			return nil, invalid("event_type", "unknown event type "+quote(string(t)))
		}
		s.pos = 0
		seen, err = decodeInto(&s, ev, true)
	}
	if err != nil {
		return nil, shift(err, start)
	}
	if whole && s.peek() != 0 {
		return nil, shift(s.fail("unexpected data after the event"), start)
	}
	if d.SkipValidation {
		return ev, nil
	}
	if err := ev.Metadata().validate(t.Family()); err != nil {
		return nil, err
	}
	if err := ev.validateFields(seen); err != nil {
		return nil, err
	}
	return ev, nil
}

// typeByName interns event type names: a lookup with a []byte key does not
// allocate, and decoded events share the constants' strings.
var typeByName = func() map[string]Type {
	m := make(map[string]Type, len(knownTypes))
	for t := range knownTypes {
		m[string(t)] = t
	}
	return m
}()

// shift moves the offset of a syntax error from object to payload coordinates.
func shift(err error, by int) error {
	if se, ok := errors.AsType[*SyntaxError](err); ok && by != 0 {
		return &SyntaxError{Offset: se.Offset + by, Msg: se.Msg}
	}
	return err
}

// readType reads the value of an event_type member, interning known types.
func readType(s *scanner) (Type, error) {
	b, err := readStringBytes(s, "event_type")
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", missing("event_type")
	}
	if known, ok := typeByName[string(b)]; ok {
		return known, nil
	}
	return Type(b), nil
}

// findType returns the event_type of the object at s.pos without decoding
// the rest; the encoder writes it first, so this usually reads one key.
func findType(s *scanner) (Type, error) {
	for first := true; ; first = false {
		key, ok, err := s.member(first)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", missing("event_type")
		}
		if string(key) != "event_type" {
			if err := s.skip(1); err != nil {
				return "", err
			}
			continue
		}
		return readType(s)
	}
}

// decodeInto reads every member of the object at s.pos into ev. Later
// duplicates of a key win, as with encoding/json; unknown keys are skipped.
func decodeInto(s *scanner, ev Event, first bool) (fieldSet, error) {
	m := ev.Metadata()
	var seen fieldSet
	for ; ; first = false {
		key, ok, err := s.member(first)
		if err != nil || !ok {
			return seen, err
		}
		switch string(key) {
		case "event_type":
			m.Type, err = readType(s)
		case "id":
			m.ID, err = readString(s, "id")
		case "source":
			m.Source, err = readString(s, "source")
		case "timestamp":
			m.Timestamp, err = readTime(s, "timestamp")
		case "trace_id":
			err = readHexID(s, "trace_id", m.TraceID[:])
		case "span_id":
			err = readHexID(s, "span_id", m.SpanID[:])
		case "parent_span_id":
			err = readHexID(s, "parent_span_id", m.ParentSpanID[:])
		case "context_id":
			m.ContextID, err = readString(s, "context_id")
		case "attributes":
			m.Attributes, err = readStringMap(s, "attributes")
		default:
			var owned bool
			if owned, err = decodeField(ev, s, key, &seen); err == nil && !owned {
				err = s.skip(1)
			}
		}
		if err != nil {
			return seen, err
		}
	}
}

// decodeField reads one type-specific field into ev; it reports false for keys
// the type does not own. (A type switch rather than an interface method keeps
// the scanner on the stack.)
func decodeField(ev Event, s *scanner, key []byte, seen *fieldSet) (bool, error) {
	switch e := ev.(type) {
	case *PerformanceEvent:
		return e.decodeField(s, key, seen)
	case *HealthEvent:
		return e.decodeField(s, key, seen)
	case *ControlEvent:
		return e.decodeField(s, key, seen)
	case *ValidationEvent:
		return e.decodeField(s, key, seen)
	case *SystemEvent:
		return e.decodeField(s, key, seen)
	case *AggregateEvent:
		return e.decodeField(s, key, seen)
	}
	return false, nil
}

func (e *PerformanceEvent) decodeField(s *scanner, key []byte, seen *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "field_path":
		e.FieldPath, err = readString(s, "field_path")
	case "operation":
		e.Operation, err = readString(s, "operation")
	case "duration_ms":
		err = readNumber(s, "duration_ms", &e.DurationMS, seen, seenDuration)
	case "phase":
		e.Phase, err = readString(s, "phase")
	case "status":
		e.Status, err = readString(s, "status")
	case "metric":
		e.Metric, err = readString(s, "metric")
	case "value":
		err = readNumber(s, "value", &e.Value, seen, seenValue)
	case "unit":
		e.Unit, err = readString(s, "unit")
	case "resource":
		e.Resource, err = readString(s, "resource")
	case "error":
		e.Error, err = readString(s, "error")
	default:
		return false, nil
	}
	return true, err
}

func (e *HealthEvent) decodeField(s *scanner, key []byte, seen *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "component":
		e.Component, err = readString(s, "component")
	case "status":
		e.Status, err = readString(s, "status")
	case "message":
		e.Message, err = readString(s, "message")
	case "latency_ms":
		err = readNumber(s, "latency_ms", &e.LatencyMS, seen, 0)
	case "metric":
		e.Metric, err = readString(s, "metric")
	case "value":
		err = readNumber(s, "value", &e.Value, seen, seenValue)
	case "threshold":
		err = readNumber(s, "threshold", &e.Threshold, seen, 0)
	default:
		return false, nil
	}
	return true, err
}

func (e *ControlEvent) decodeField(s *scanner, key []byte, seen *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "mode":
		e.Mode, err = readString(s, "mode")
	case "previous_mode":
		e.PreviousMode, err = readString(s, "previous_mode")
	case "sample_rate":
		err = readNumber(s, "sample_rate", &e.SampleRate, seen, seenSampleRate)
	case "scope":
		e.Scope, err = readString(s, "scope")
	case "reason":
		e.Reason, err = readString(s, "reason")
	case "config":
		e.Config, err = readStringMap(s, "config")
	default:
		return false, nil
	}
	return true, err
}

func (e *ValidationEvent) decodeField(s *scanner, key []byte, seen *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "field_path":
		e.FieldPath, err = readString(s, "field_path")
	case "status":
		e.Status, err = readString(s, "status")
	case "duration_ms":
		err = readNumber(s, "duration_ms", &e.DurationMS, seen, seenDuration)
	case "errors":
		e.Errors, err = readStringSlice(s, "errors")
	case "message":
		e.Message, err = readString(s, "message")
	default:
		return false, nil
	}
	return true, err
}

func (e *SystemEvent) decodeField(s *scanner, key []byte, _ *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "component":
		e.Component, err = readString(s, "component")
	case "error":
		e.Error, err = readString(s, "error")
	case "message":
		e.Message, err = readString(s, "message")
	default:
		return false, nil
	}
	return true, err
}

// wrongType names the field and what its value should have been.
func wrongType(s *scanner, field, want string) error {
	if err := s.skip(1); err != nil {
		return err
	}
	return invalid(field, "expected "+want)
}

// readString reads a string or null (which leaves "").
func readString(s *scanner, field string) (string, error) {
	switch s.peek() {
	case '"':
		return s.stringValue()
	case 'n':
		if s.null() {
			return "", nil
		}
	}
	return "", wrongType(s, field, "a string")
}

// readStringBytes is readString without the conversion; the result is valid
// until the next read.
func readStringBytes(s *scanner, field string) ([]byte, error) {
	switch s.peek() {
	case '"':
		return s.stringBytes()
	case 'n':
		if s.null() {
			return nil, nil
		}
	}
	return nil, wrongType(s, field, "a string")
}

// readNumber reads a finite number into *dst and marks bit in seen; null
// leaves *dst alone and bit unset.
func readNumber(s *scanner, field string, dst *float64, seen *fieldSet, bit fieldSet) error {
	c := s.peek()
	if c == 'n' && s.null() {
		return nil
	}
	if c != '-' && (c < '0' || c > '9') {
		return wrongType(s, field, "a number")
	}
	b, ok := s.numberBytes()
	if !ok {
		return s.fail("malformed number")
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) {
		return invalid(field, "number out of range: "+quote(string(b)))
	}
	*dst = v
	*seen |= bit
	return nil
}

func readTime(s *scanner, field string) (time.Time, error) {
	str, err := readString(s, field)
	if err != nil || str == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		return time.Time{}, invalid(field, "not an RFC 3339 time: "+quote(str))
	}
	return t, nil
}

func readHexID(s *scanner, field string, dst []byte) error {
	if s.peek() == 'n' && s.null() {
		return nil
	}
	if s.peek() != '"' {
		return wrongType(s, field, "a string of hex digits")
	}
	b, err := s.stringBytes()
	if err != nil {
		return err
	}
	if parseHexID(dst, b) != nil {
		return invalid(field, "must be "+strconv.Itoa(2*len(dst))+" lowercase hex digits, not all zero; got "+quote(string(b)))
	}
	return nil
}

func readStringMap(s *scanner, field string) (map[string]string, error) {
	switch s.peek() {
	case 'n':
		if s.null() {
			return nil, nil
		}
	case '{':
		m := make(map[string]string)
		for first := true; ; first = false {
			key, ok, err := s.member(first)
			if err != nil || !ok {
				return m, err
			}
			k := string(key)
			v, err := readString(s, field)
			if err != nil {
				return m, renameField(err, field+"."+k)
			}
			m[k] = v
		}
	}
	return nil, wrongType(s, field, "an object of strings")
}

func readStringSlice(s *scanner, field string) ([]string, error) {
	switch s.peek() {
	case 'n':
		if s.null() {
			return nil, nil
		}
	case '[':
		var out []string
		for first := true; ; first = false {
			ok, err := s.element(first)
			if err != nil || !ok {
				return out, err
			}
			v, err := readString(s, field)
			if err != nil {
				return out, renameField(err, field+"["+strconv.Itoa(len(out))+"]")
			}
			out = append(out, v)
		}
	}
	return nil, wrongType(s, field, "an array of strings")
}

// decodeAs decodes data and checks that it carries a T.
func decodeAs[T Event](data []byte, fam Family) (T, error) {
	var zero T
	ev, err := Decoder{MaxPayload: -1}.Decode(data)
	if err != nil {
		return zero, err
	}
	t, ok := ev.(T)
	if !ok {
		return zero, invalid("event_type", quote(string(ev.Metadata().Type))+" is not a "+string(fam)+" event")
	}
	return t, nil
}

// UnmarshalJSON decodes and validates a performance event in wire form.
func (e *PerformanceEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*PerformanceEvent](data, FamilyPerformance)
	if err == nil {
		*e = *ev
	}
	return err
}

// UnmarshalJSON decodes and validates a health event in wire form.
func (e *HealthEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*HealthEvent](data, FamilyHealth)
	if err == nil {
		*e = *ev
	}
	return err
}

// UnmarshalJSON decodes and validates a control event in wire form.
func (e *ControlEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*ControlEvent](data, FamilyMonitoring)
	if err == nil {
		*e = *ev
	}
	return err
}

// UnmarshalJSON decodes and validates a validation event in wire form.
func (e *ValidationEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*ValidationEvent](data, FamilyValidation)
	if err == nil {
		*e = *ev
	}
	return err
}

// UnmarshalJSON decodes and validates a system event in wire form.
func (e *SystemEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*SystemEvent](data, FamilySystem)
	if err == nil {
		*e = *ev
	}
	return err
}

// renameField points a validation error at a more precise field name.
func renameField(err error, field string) error {
	if ve, ok := errors.AsType[*ValidationError](err); ok {
		renamed := *ve
		renamed.Field = field
		return &renamed
	}
	return err
}
