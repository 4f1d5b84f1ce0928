package otlp

import (
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Every body either fails to decode or yields spans that map to valid
// events or to an error naming the field: never a panic.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[` +
		`{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"n","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":2,"status":{"code":"STATUS_CODE_ERROR"}}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, decodeJSON, data)
	})
}

func FuzzDecodeProto(f *testing.F) {
	tid := []byte("0123456789abcdef")
	data, _ := proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		{TraceId: tid, SpanId: tid[:8], Name: "n", StartTimeUnixNano: 1, EndTimeUnixNano: 2},
	}}}}}})
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, decodeProto, data)
	})
}

func check(t *testing.T, decode func([]byte) ([]span, error), data []byte) {
	spans, err := decode(data)
	if err != nil {
		return
	}
	for _, s := range spans {
		ev, err := toEvent(s)
		if err != nil {
			continue
		}
		if verr := ev.Validate(); verr != nil {
			t.Fatalf("mapped an invalid event: %v", verr)
		}
	}
}
