// Package otlp is jetmon's OpenTelemetry door: POST /v1/traces takes
// OTLP/HTTP trace exports (protobuf or JSON) and maps every span onto a
// performance event — service.name → source, span name → operation, status
// → status (an error status makes performance.operation.failed), duration →
// duration_ms, end time → timestamp, trace/span/parent ids kept — so services
// instrumented with OpenTelemetry feed jetmon without code changes. It also
// exports an assembled trace as OTLP/JSON ([Export]) for other viewers.
package otlp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jetmon/jetmon/pkg/events"
)

// ErrMalformed is matched when a request body is not an OTLP trace export.
var ErrMalformed = errors.New("malformed OTLP trace export")

// span is one OTLP span as both encodings give it.
type span struct {
	service         string
	traceID, spanID []byte
	parentID        []byte
	name            string
	kind            int32
	startNS, endNS  uint64
	statusCode      int32
	statusMsg       string
}

// decodeProto reads an ExportTraceServiceRequest in protobuf (wire-equal to
// TracesData: field 1, repeated ResourceSpans).
func decodeProto(data []byte) ([]span, error) {
	var req tracepb.TracesData
	if err := proto.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("%w: protobuf: %w", ErrMalformed, err)
	}
	var out []span
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, span{
					service: svc, traceID: s.GetTraceId(), spanID: s.GetSpanId(), parentID: s.GetParentSpanId(),
					name: s.GetName(), kind: int32(s.GetKind()), startNS: s.GetStartTimeUnixNano(), endNS: s.GetEndTimeUnixNano(),
					statusCode: int32(s.GetStatus().GetCode()), statusMsg: s.GetStatus().GetMessage(),
				})
			}
		}
	}
	return out, nil
}

// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding)
// differs from protojson: trace and span ids are hex strings, enums are
// integers, 64-bit integers may be strings or numbers, and unknown fields
// are ignored.
type jsonRequest struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []jsonKV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []jsonSpan `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type jsonKV struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string `json:"stringValue"`
	} `json:"value"`
}

type jsonSpan struct {
	TraceID      string     `json:"traceId"`
	SpanID       string     `json:"spanId"`
	ParentSpanID string     `json:"parentSpanId"`
	Name         string     `json:"name"`
	Kind         jsonInt    `json:"kind"`
	Start        jsonUint64 `json:"startTimeUnixNano"`
	End          jsonUint64 `json:"endTimeUnixNano"`
	Status       struct {
		Code    jsonInt `json:"code"`
		Message string  `json:"message"`
	} `json:"status"`
}

// jsonUint64 takes a fixed64 as a decimal string or a JSON number.
type jsonUint64 uint64

func (u *jsonUint64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an unsigned 64-bit integer: %.32q", s)
	}
	*u = jsonUint64(v)
	return nil
}

// jsonInt takes an enum as an integer (the spec) or a decimal string.
type jsonInt int32

func (i *jsonInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		return nil
	}
	switch s { // enum names, which some senders use
	case "STATUS_CODE_UNSET", "SPAN_KIND_UNSPECIFIED":
		*i = 0
		return nil
	case "STATUS_CODE_OK", "SPAN_KIND_INTERNAL":
		*i = 1
		return nil
	case "STATUS_CODE_ERROR", "SPAN_KIND_SERVER":
		*i = 2
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return fmt.Errorf("not an enum value: %.32q", s)
	}
	*i = jsonInt(v)
	return nil
}

func decodeJSON(data []byte) ([]span, error) {
	var req jsonRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("%w: json: %w", ErrMalformed, err)
	}
	var out []span
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, kv := range rs.Resource.Attributes {
			if kv.Key == "service.name" && kv.Value.StringValue != nil {
				svc = *kv.Value.StringValue
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, span{
					service: svc, traceID: unhex(s.TraceID), spanID: unhex(s.SpanID), parentID: unhex(s.ParentSpanID),
					name: s.Name, kind: int32(s.Kind), startNS: uint64(s.Start), endNS: uint64(s.End),
					statusCode: int32(s.Status.Code), statusMsg: s.Status.Message,
				})
			}
		}
	}
	return out, nil
}

// unhex decodes a hex id (either case); a malformed one becomes a value of
// the wrong length, which the mapping rejects.
func unhex(s string) []byte {
	if s == "" {
		return nil
	}
	b, err := hex.DecodeString(strings.ToLower(s))
	if err != nil {
		return []byte{0}
	}
	return b
}

// DefaultService is the source of spans whose resource has no service.name
// (the OpenTelemetry SDKs' own default).
const DefaultService = "unknown_service"

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// toEvent maps one span onto a performance event; the error names the bad
// field. The event id is derived from the trace and span ids, so that a
// re-sent export is deduplicated.
func toEvent(s span) (*events.PerformanceEvent, error) {
	var tid events.TraceID
	var sid, pid events.SpanID
	if len(s.traceID) != len(tid) || bytes.Equal(s.traceID, tid[:]) {
		return nil, fmt.Errorf("traceId: must be 16 bytes, not all zero")
	}
	if len(s.spanID) != len(sid) || bytes.Equal(s.spanID, sid[:]) {
		return nil, fmt.Errorf("spanId: must be 8 bytes, not all zero")
	}
	if len(s.parentID) != 0 && len(s.parentID) != len(pid) {
		return nil, fmt.Errorf("parentSpanId: must be 8 bytes or empty")
	}
	copy(tid[:], s.traceID)
	copy(sid[:], s.spanID)
	copy(pid[:], s.parentID)
	if s.endNS < s.startNS {
		return nil, fmt.Errorf("endTimeUnixNano: before startTimeUnixNano")
	}
	if s.endNS > uint64(1<<63-1) {
		return nil, fmt.Errorf("endTimeUnixNano: out of range")
	}
	typ, status := events.OperationComplete, events.StatusSuccess
	if s.statusCode == int32(tracepb.Status_STATUS_CODE_ERROR) {
		typ, status = events.OperationFailed, events.StatusFailure
	}
	svc := s.service
	if svc == "" {
		svc = DefaultService
	}
	ev := &events.PerformanceEvent{Meta: events.Meta{
		ID: "otlp-" + tid.String() + "-" + sid.String(), Type: typ, Source: svc,
		Timestamp: time.Unix(0, int64(s.endNS)).UTC(), TraceID: tid, SpanID: sid, ParentSpanID: pid,
	}}
	ev.Operation, ev.Status = s.name, status
	ev.DurationMS = float64(s.endNS-s.startNS) / 1e6
	if typ == events.OperationFailed {
		ev.Error = s.statusMsg
		if ev.Error == "" {
			ev.Error = "error status"
		}
		if len(ev.Error) > events.MaxTextLen {
			ev.Error = ev.Error[:events.MaxTextLen]
		}
	}
	if s.kind > 0 && int(s.kind) < len(kindNames) {
		ev.Attributes = map[string]string{"span.kind": kindNames[s.kind]}
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}
