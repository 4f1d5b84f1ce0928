package events

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"time"
)

// AggregateEvent carries performance.metric.aggregated: the aggregate of one
// series (aggregated event type, source, operation or metric) over one
// tumbling window. Durations are in milliseconds; for metric series the
// *_duration fields hold the metric's values. Sketch is the serialized
// mergeable sketch (DDSketch) of the window, so that windows and partitions
// can be merged downstream.
type AggregateEvent struct {
	Meta
	// Operation (for operation and phase series) or Metric (for metric
	// series) names the series within its source.
	Operation string
	Metric    string
	// AggregatedType is the event type that was aggregated, e.g.
	// performance.operation.complete.
	AggregatedType Type
	// WindowStart and WindowEnd bound the window: [start, end).
	WindowStart, WindowEnd time.Time
	// Count counts the events; ErrorCount the failed ones among them.
	Count, ErrorCount uint64
	// LateCount counts events that arrived after the window was emitted
	// (they are not in Count).
	LateCount uint64
	// Amendment marks a window that holds only events which arrived after
	// the window of the same series and start had been emitted (wire field
	// amendment): add it to that window. Its id differs from the first
	// window's; readers that sum or merge windows by series and start get
	// every event counted once.
	Amendment          bool
	Sum, Avg, Min, Max float64
	P50, P90, P95, P99 float64
	Unit               string
	Sketch             []byte
	// SlowestTraceIDs names the traces of the window's slowest events,
	// slowest first (at most [MaxSlowestTraces]; wire field
	// slowest_trace_ids): exemplars that lead from a window to its traces.
	SlowestTraceIDs []TraceID
}

// MaxSlowestTraces bounds AggregateEvent.SlowestTraceIDs.
const MaxSlowestTraces = 16

// AggregateID identifies a series (aggregated type, source, operation or
// metric) and the window starting at start: a digest of both. It is the id
// of a window aggregated without input sequence numbers (see [WindowID]), and
// the key under which readers merge every window stored for one series and
// start ([AggregateEvent.SeriesWindowKey]).
func AggregateID(aggregated Type, source, name string, start time.Time) string {
	h := sha256.New()
	for _, s := range []string{string(aggregated), source, name, strconv.FormatInt(start.UnixNano(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return "agg-" + hex.EncodeToString(sum[:16])
}

// WindowID is the id of an amendment of the window of a series starting at
// start, computed from late input messages whose lowest stream sequence is
// first: [AggregateID] followed by "-" and first (AggregateID alone when
// first is 0). The same late input — redelivered after a crash — yields the
// same id, which the server deduplicates; other late input of the same
// window another id, stored beside the first window and its other
// amendments.
func WindowID(aggregated Type, source, name string, start time.Time, first uint64) string {
	id := AggregateID(aggregated, source, name, start)
	if first == 0 {
		return id
	}
	return id + "-" + strconv.FormatUint(first, 10)
}

// SeriesWindowKey returns the [AggregateID] of e's series and window: the
// same for every window stored for them, whatever their ids.
func (e *AggregateEvent) SeriesWindowKey() string {
	return AggregateID(e.AggregatedType, e.Source, e.Name(), e.WindowStart)
}

// NewAggregateEvent returns the aggregate event of a series over
// [start, end): its id is [AggregateID], its timestamp the window's end, its
// source the series' source.
func NewAggregateEvent(aggregated Type, source, name string, start, end time.Time) *AggregateEvent {
	e := &AggregateEvent{AggregatedType: aggregated, WindowStart: start.UTC(), WindowEnd: end.UTC()}
	e.Meta = Meta{ID: AggregateID(aggregated, source, name, start), Type: MetricAggregated, Source: source, Timestamp: end.UTC()}
	if aggregated == MetricRecorded {
		e.Metric = name
	} else {
		e.Operation = name
	}
	return e
}

// Name returns the operation or, for a metric series, the metric.
func (e *AggregateEvent) Name() string {
	if e.Operation != "" {
		return e.Operation
	}
	return e.Metric
}

// Validate reports the first problem with e as a [*ValidationError], or nil.
func (e *AggregateEvent) Validate() error { return validate(e, FamilyPerformance, seenAll) }

func (e *AggregateEvent) validateFields(fieldSet) error {
	if e.Type != MetricAggregated {
		return invalid("event_type", quote(string(e.Type))+" is not carried by an aggregate event")
	}
	switch {
	case e.Operation == "" && e.Metric == "":
		return missing("operation")
	case e.AggregatedType == "":
		return missing("aggregated_type")
	case !e.AggregatedType.Known() || e.AggregatedType.Family() != FamilyPerformance || e.AggregatedType == MetricAggregated:
		return invalid("aggregated_type", quote(string(e.AggregatedType))+" is not an aggregatable performance event type")
	case e.WindowStart.IsZero():
		return missing("window_start")
	case !e.WindowEnd.After(e.WindowStart):
		return invalid("window_end", "must be after window_start")
	case e.ErrorCount > e.Count:
		return invalid("error_count", "exceeds count")
	}
	if err := checkNames("operation", e.Operation, "metric", e.Metric, "unit", e.Unit); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"sum_duration", e.Sum},
		{"avg_duration", e.Avg},
		{"min_duration", e.Min},
		{"max_duration", e.Max},
		{"p50_duration", e.P50},
		{"p90_duration", e.P90},
		{"p95_duration", e.P95},
		{"p99_duration", e.P99},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return invalid(f.name, "must be finite")
		}
	}
	if len(e.SlowestTraceIDs) > MaxSlowestTraces {
		return tooLong("slowest_trace_ids", "more than "+strconv.Itoa(MaxSlowestTraces)+" entries")
	}
	for i, id := range e.SlowestTraceIDs {
		if id.IsZero() {
			return invalid("slowest_trace_ids["+strconv.Itoa(i)+"]", "must not be all zero")
		}
	}
	return nil
}

// AppendJSON appends e's wire form to dst.
func (e *AggregateEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"operation":`, e.Operation)
	dst = appendStringField(dst, `,"metric":`, e.Metric)
	dst = appendStringField(dst, `,"aggregated_type":`, string(e.AggregatedType))
	if !e.WindowStart.IsZero() {
		dst = append(dst, `,"window_start":"`...)
		dst = append(e.WindowStart.UTC().AppendFormat(dst, time.RFC3339Nano), '"')
	}
	if !e.WindowEnd.IsZero() {
		dst = append(dst, `,"window_end":"`...)
		dst = append(e.WindowEnd.UTC().AppendFormat(dst, time.RFC3339Nano), '"')
	}
	dst = strconv.AppendUint(append(dst, `,"count":`...), e.Count, 10)
	dst = strconv.AppendUint(append(dst, `,"error_count":`...), e.ErrorCount, 10)
	if e.LateCount > 0 {
		dst = strconv.AppendUint(append(dst, `,"late_count":`...), e.LateCount, 10)
	}
	if e.Amendment {
		dst = append(dst, `,"amendment":true`...)
	}
	for _, f := range []struct {
		key string
		v   float64
	}{
		{`,"sum_duration":`, e.Sum},
		{`,"avg_duration":`, e.Avg},
		{`,"min_duration":`, e.Min},
		{`,"max_duration":`, e.Max},
		{`,"p50_duration":`, e.P50},
		{`,"p90_duration":`, e.P90},
		{`,"p95_duration":`, e.P95},
		{`,"p99_duration":`, e.P99},
	} {
		dst = appendNumber(append(dst, f.key...), f.v)
	}
	dst = appendStringField(dst, `,"unit":`, e.Unit)
	if len(e.Sketch) > 0 {
		dst = append(dst, `,"sketch":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.Sketch)
		dst = append(dst, '"')
	}
	if len(e.SlowestTraceIDs) > 0 {
		dst = append(dst, `,"slowest_trace_ids":[`...)
		for i, id := range e.SlowestTraceIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(id.appendHex(append(dst, '"')), '"')
		}
		dst = append(dst, ']')
	}
	return e.closeMeta(dst)
}

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *AggregateEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

// UnmarshalJSON decodes and validates an aggregate event in wire form.
func (e *AggregateEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeAs[*AggregateEvent](data, FamilyPerformance)
	if err == nil {
		*e = *ev
	}
	return err
}

func (e *AggregateEvent) decodeField(s *scanner, key []byte, seen *fieldSet) (bool, error) {
	var err error
	switch string(key) {
	case "operation":
		e.Operation, err = readString(s, "operation")
	case "metric":
		e.Metric, err = readString(s, "metric")
	case "aggregated_type":
		var v string
		if v, err = readString(s, "aggregated_type"); err == nil {
			if t, ok := typeByName[v]; ok {
				e.AggregatedType = t
			} else {
				e.AggregatedType = Type(v)
			}
		}
	case "window_start":
		e.WindowStart, err = readTime(s, "window_start")
	case "window_end":
		e.WindowEnd, err = readTime(s, "window_end")
	case "count":
		e.Count, err = readCount(s, "count", seen)
	case "error_count":
		e.ErrorCount, err = readCount(s, "error_count", seen)
	case "late_count":
		e.LateCount, err = readCount(s, "late_count", seen)
	case "amendment":
		e.Amendment, err = readBool(s, "amendment")
	case "sum_duration":
		err = readNumber(s, "sum_duration", &e.Sum, seen, 0)
	case "avg_duration":
		err = readNumber(s, "avg_duration", &e.Avg, seen, 0)
	case "min_duration":
		err = readNumber(s, "min_duration", &e.Min, seen, 0)
	case "max_duration":
		err = readNumber(s, "max_duration", &e.Max, seen, 0)
	case "p50_duration":
		err = readNumber(s, "p50_duration", &e.P50, seen, 0)
	case "p90_duration":
		err = readNumber(s, "p90_duration", &e.P90, seen, 0)
	case "p95_duration":
		err = readNumber(s, "p95_duration", &e.P95, seen, 0)
	case "p99_duration":
		err = readNumber(s, "p99_duration", &e.P99, seen, 0)
	case "unit":
		e.Unit, err = readString(s, "unit")
	case "slowest_trace_ids":
		var ids []string
		if ids, err = readStringSlice(s, "slowest_trace_ids"); err == nil {
			if len(ids) > MaxSlowestTraces {
				return true, tooLong("slowest_trace_ids", "more than "+strconv.Itoa(MaxSlowestTraces)+" entries")
			}
			e.SlowestTraceIDs = make([]TraceID, len(ids))
			for i, v := range ids {
				if e.SlowestTraceIDs[i], err = ParseTraceID(v); err != nil {
					return true, invalid("slowest_trace_ids["+strconv.Itoa(i)+"]", "must be 32 lowercase hex digits, not all zero; got "+quote(v))
				}
			}
		}
	case "sketch":
		var v string
		if v, err = readString(s, "sketch"); err == nil && v != "" {
			if e.Sketch, err = base64.StdEncoding.DecodeString(v); err != nil {
				err = invalid("sketch", "not standard base64")
			}
		}
	default:
		return false, nil
	}
	return true, err
}

// readBool reads true, false or null (which leaves false).
func readBool(s *scanner, field string) (bool, error) {
	s.ws()
	switch {
	case s.literal("true"):
		return true, nil
	case s.literal("false"), s.literal("null"):
		return false, nil
	}
	return false, wrongType(s, field, "true or false")
}

// readCount reads a non-negative integer count.
func readCount(s *scanner, field string, seen *fieldSet) (uint64, error) {
	var f float64
	if err := readNumber(s, field, &f, seen, 0); err != nil {
		return 0, err
	}
	if f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, invalid(field, "must be a non-negative integer")
	}
	return uint64(f), nil
}
