package otlp

import (
	"crypto/sha256"
	"strconv"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

// ExportedTraces is the OTLP/JSON form of exported spans (TracesData).
type ExportedTraces struct {
	ResourceSpans []ExportedResource `json:"resourceSpans"`
}

// ExportedResource holds one service's spans.
type ExportedResource struct {
	Resource struct {
		Attributes []KeyValue `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []ExportedScope `json:"scopeSpans"`
}

// ExportedScope is the jetmon instrumentation scope.
type ExportedScope struct {
	Scope struct {
		Name string `json:"name"`
	} `json:"scope"`
	Spans []ExportedSpan `json:"spans"`
}

// KeyValue is an OTLP string attribute.
type KeyValue struct {
	Key   string `json:"key"`
	Value struct {
		StringValue string `json:"stringValue"`
	} `json:"value"`
}

// ExportedSpan is one span in OTLP/JSON: hex ids, decimal-string times,
// integer enums.
type ExportedSpan struct {
	TraceID      string     `json:"traceId"`
	SpanID       string     `json:"spanId"`
	ParentSpanID string     `json:"parentSpanId,omitempty"`
	Name         string     `json:"name"`
	Kind         int        `json:"kind"`
	Start        string     `json:"startTimeUnixNano"`
	End          string     `json:"endTimeUnixNano"`
	Attributes   []KeyValue `json:"attributes,omitempty"`
	Status       struct {
		Code    int    `json:"code"`
		Message string `json:"message,omitempty"`
	} `json:"status"`
}

func kv(k, v string) KeyValue {
	var x KeyValue
	x.Key, x.Value.StringValue = k, v
	return x
}

// Export returns t as OTLP/JSON, grouped by service, so that it opens in
// other trace viewers. A span without a span id (a flow event) gets one
// derived from its event id; the tree's parent links are kept as
// parentSpanId.
func Export(t *trace.Tree) ExportedTraces {
	ids := make([]events.SpanID, len(t.Nodes))
	for i := range t.Nodes {
		ids[i] = t.Nodes[i].ID
		if ids[i].IsZero() {
			sum := sha256.Sum256([]byte(t.Nodes[i].EventID + "/" + strconv.Itoa(i)))
			copy(ids[i][:], sum[:8])
			if ids[i].IsZero() {
				ids[i][7] = 1
			}
		}
	}
	byService := map[string]int{}
	var out ExportedTraces
	for i := range t.Nodes {
		n := &t.Nodes[i]
		k, ok := byService[n.Service]
		if !ok {
			var r ExportedResource
			r.Resource.Attributes = []KeyValue{kv("service.name", n.Service)}
			var sc ExportedScope
			sc.Scope.Name = "jetmon"
			r.ScopeSpans = []ExportedScope{sc}
			out.ResourceSpans = append(out.ResourceSpans, r)
			k = len(out.ResourceSpans) - 1
			byService[n.Service] = k
		}
		s := ExportedSpan{
			TraceID: t.ID.String(), SpanID: ids[i].String(), Name: n.Name, Kind: 1,
			Start: strconv.FormatInt(n.StartNS, 10), End: strconv.FormatInt(n.EndNS, 10),
			Attributes: []KeyValue{kv("jetmon.event_type", string(n.Type)), kv("jetmon.event_id", n.EventID)},
		}
		switch {
		case n.Up >= 0:
			s.ParentSpanID = ids[n.Up].String()
		case !n.Parent.IsZero():
			s.ParentSpanID = n.Parent.String()
		}
		if n.Error {
			s.Status.Code, s.Status.Message = 2, n.Status
		} else if n.Status != "" {
			s.Status.Code = 1
		}
		sc := &out.ResourceSpans[k].ScopeSpans[0]
		sc.Spans = append(sc.Spans, s)
	}
	return out
}
