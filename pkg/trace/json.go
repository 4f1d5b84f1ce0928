package trace

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// StoredSpan is a span as stored and exported (JSON, docs/traces.md).
type StoredSpan struct {
	SpanID       string      `json:"span_id,omitempty"`
	ParentSpanID string      `json:"parent_span_id,omitempty"`
	EventID      string      `json:"event_id,omitempty"`
	EventType    events.Type `json:"event_type"`
	Service      string      `json:"service"`
	Name         string      `json:"name"`
	StartNS      int64       `json:"start_ns"`
	EndNS        int64       `json:"end_ns"`
	Status       string      `json:"status,omitempty"`
	Error        bool        `json:"error,omitempty"`
	ContextID    string      `json:"context_id,omitempty"`
}

// Stored is the stored form of a trace: its spans, as the runtime keeps
// them (one message per trace in the TRACES stream).
type Stored struct {
	TraceID string       `json:"trace_id"`
	Spans   []StoredSpan `json:"spans"`
	Dropped int          `json:"dropped,omitempty"`
}

// MaxStoredSpans bounds the spans a decoded [Stored] may carry.
const MaxStoredSpans = 100_000

// Encode returns the stored form of a trace's spans.
func Encode(id events.TraceID, spans []Span, dropped int) ([]byte, error) {
	st := Stored{TraceID: id.String(), Spans: make([]StoredSpan, len(spans)), Dropped: dropped}
	for i, s := range spans {
		ss := StoredSpan{
			EventID: s.EventID, EventType: s.Type, Service: s.Service, Name: s.Name,
			StartNS: s.StartNS, EndNS: s.EndNS, Status: s.Status, Error: s.Error, ContextID: s.ContextID,
		}
		if !s.ID.IsZero() {
			ss.SpanID = s.ID.String()
		}
		if !s.Parent.IsZero() {
			ss.ParentSpanID = s.Parent.String()
		}
		st.Spans[i] = ss
	}
	return json.Marshal(st)
}

// Decode reads the stored form; malformed ids and more than
// [MaxStoredSpans] spans are errors.
func Decode(data []byte) (events.TraceID, []Span, int, error) {
	var st Stored
	if err := json.Unmarshal(data, &st); err != nil {
		return events.TraceID{}, nil, 0, fmt.Errorf("stored trace: %w", err)
	}
	id, err := events.ParseTraceID(st.TraceID)
	if err != nil {
		return id, nil, 0, fmt.Errorf("stored trace: trace_id %q: %w", st.TraceID, err)
	}
	if len(st.Spans) > MaxStoredSpans {
		return id, nil, 0, fmt.Errorf("stored trace: %d spans, more than %d", len(st.Spans), MaxStoredSpans)
	}
	spans := make([]Span, len(st.Spans))
	for i, ss := range st.Spans {
		s := Span{
			EventID: ss.EventID, Type: ss.EventType, Service: ss.Service, Name: ss.Name,
			StartNS: ss.StartNS, EndNS: max(ss.EndNS, ss.StartNS), Status: ss.Status, Error: ss.Error, ContextID: ss.ContextID,
		}
		if ss.SpanID != "" {
			if s.ID, err = events.ParseSpanID(ss.SpanID); err != nil {
				return id, nil, 0, fmt.Errorf("stored trace: span %d: span_id %q: %w", i, ss.SpanID, err)
			}
		}
		if ss.ParentSpanID != "" {
			if s.Parent, err = events.ParseSpanID(ss.ParentSpanID); err != nil {
				return id, nil, 0, fmt.Errorf("stored trace: span %d: parent_span_id %q: %w", i, ss.ParentSpanID, err)
			}
		}
		spans[i] = s
	}
	return id, spans, st.Dropped, nil
}

// View is the API's JSON shape of one trace (GET /api/v1/traces/{id}).
type View struct {
	Summary
	Spans        []NodeView    `json:"spans"`
	CriticalPath []SegmentView `json:"critical_path"`
	Dropped      int           `json:"dropped_spans,omitempty"`
}

// Summary is a trace's line in search results.
type Summary struct {
	TraceID    string    `json:"trace_id"`
	Start      time.Time `json:"start"`
	DurationMS float64   `json:"duration_ms"`
	SpanCount  int       `json:"span_count"`
	ErrorCount int       `json:"error_count"`
	Services   []string  `json:"services"`
	RootSvc    string    `json:"root_service"`
	RootName   string    `json:"root_name"`
}

// NodeView is one span of a [View], in display order.
type NodeView struct {
	Index        int         `json:"index"`
	Parent       int         `json:"parent"` // index, -1 for a root
	Depth        int         `json:"depth"`
	SpanID       string      `json:"span_id,omitempty"`
	ParentSpanID string      `json:"parent_span_id,omitempty"`
	EventID      string      `json:"event_id,omitempty"`
	EventType    events.Type `json:"event_type"`
	Service      string      `json:"service"`
	Name         string      `json:"name"`
	Start        time.Time   `json:"start"`
	OffsetMS     float64     `json:"offset_ms"`
	DurationMS   float64     `json:"duration_ms"`
	SelfMS       float64     `json:"self_ms"`
	CriticalMS   float64     `json:"critical_ms"`
	Status       string      `json:"status,omitempty"`
	Error        bool        `json:"error"`
	Orphan       bool        `json:"orphan,omitempty"`
	ContextID    string      `json:"context_id,omitempty"`
}

// SegmentView is a stretch of the critical path; Index -1 is a gap.
type SegmentView struct {
	Index      int     `json:"index"`
	Service    string  `json:"service,omitempty"`
	Name       string  `json:"name,omitempty"`
	OffsetMS   float64 `json:"offset_ms"`
	DurationMS float64 `json:"duration_ms"`
}

// Summary returns the trace's search line.
func (t *Tree) Summary() Summary {
	s := Summary{
		TraceID: t.ID.String(), Start: time.Unix(0, t.StartNS).UTC(), DurationMS: t.DurationMS(),
		SpanCount: len(t.Nodes), ErrorCount: t.Errors, Services: []string{},
	}
	for i := range t.Nodes {
		if !slices.Contains(s.Services, t.Nodes[i].Service) {
			s.Services = append(s.Services, t.Nodes[i].Service)
		}
	}
	slices.Sort(s.Services)
	if len(t.Roots) > 0 {
		r := &t.Nodes[t.Roots[0]]
		s.RootSvc, s.RootName = r.Service, r.Name
	}
	return s
}

// View returns the trace's API shape.
func (t *Tree) View() View {
	v := View{Summary: t.Summary(), Spans: make([]NodeView, len(t.Nodes)), CriticalPath: make([]SegmentView, len(t.Critical)), Dropped: t.Dropped}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	for i := range t.Nodes {
		n := &t.Nodes[i]
		nv := NodeView{
			Index: i, Parent: n.Up, Depth: n.Depth, EventID: n.EventID, EventType: n.Type, Service: n.Service, Name: n.Name,
			Start: time.Unix(0, n.StartNS).UTC(), OffsetMS: ms(n.StartNS - t.StartNS), DurationMS: ms(n.EndNS - n.StartNS),
			SelfMS: ms(n.SelfNS), CriticalMS: ms(n.CriticalNS), Status: n.Status, Error: n.Error, Orphan: n.Orphan,
			ContextID: n.ContextID,
		}
		if !n.ID.IsZero() {
			nv.SpanID = n.ID.String()
		}
		if !n.Parent.IsZero() {
			nv.ParentSpanID = n.Parent.String()
		}
		v.Spans[i] = nv
	}
	for i, s := range t.Critical {
		sv := SegmentView{Index: s.Node, OffsetMS: ms(s.StartNS - t.StartNS), DurationMS: ms(s.EndNS - s.StartNS)}
		if s.Node >= 0 {
			sv.Service, sv.Name = t.Nodes[s.Node].Service, t.Nodes[s.Node].Name
		}
		v.CriticalPath[i] = sv
	}
	return v
}
