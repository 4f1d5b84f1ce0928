package otlp_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/otlp"
	"github.com/jetmon/jetmon/pkg/trace"
)

// Export an assembled trace as OTLP/JSON for another trace viewer.
func ExampleExport() {
	id, _ := events.ParseTraceID("0af7651916cd43dd8448eb211c80319c")
	span, _ := events.ParseSpanID("b7ad6b7169203331")
	end := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano()
	t := trace.Build(id, []trace.Span{{
		ID: span, EventID: "e1", Type: events.OperationComplete, Service: "checkout", Name: "pay",
		StartNS: end - 12_500_000, EndNS: end, Status: events.StatusSuccess,
	}})
	out, _ := json.Marshal(otlp.Export(t))
	fmt.Println(string(out))
	// Output:
	// {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"jetmon"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"pay","kind":1,"startTimeUnixNano":"1795773599987500000","endTimeUnixNano":"1795773600000000000","attributes":[{"key":"jetmon.event_type","value":{"stringValue":"performance.operation.complete"}},{"key":"jetmon.event_id","value":{"stringValue":"e1"}}],"status":{"code":1}}]}]}]}
}
