package otlp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/pkg/otlp"
)

// BenchmarkIngest compares the OTLP door with the JSON door (the baseline)
// on the same 100 spans per request, each request stored in JetStream (2xx
// means stored) on the same embedded server. Ids are fresh per request so
// that no request is a duplicate.
func BenchmarkIngest(b *testing.B) {
	bus := natstest.Connect(b, natstest.Start(b).ClientURL())
	const spans = 100
	end := time.Now().Add(-time.Second)
	request := func() (*tracepb.TracesData, []events.Event) {
		tid := events.NewTraceID()
		rs := &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{
			Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "checkout"}},
		}}}}
		ss := &tracepb.ScopeSpans{}
		var evs []events.Event
		for range spans {
			sid := events.NewSpanID()
			ss.Spans = append(ss.Spans, &tracepb.Span{
				TraceId: tid[:], SpanId: sid[:], Name: "db.query",
				StartTimeUnixNano: uint64(end.Add(-5 * time.Millisecond).UnixNano()), EndTimeUnixNano: uint64(end.UnixNano()),
			})
			ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
			ev.ID, ev.TraceID, ev.SpanID = "otlp-"+tid.String()+"-"+sid.String(), tid, sid
			ev.Operation, ev.Status, ev.DurationMS, ev.Timestamp = "db.query", events.StatusSuccess, 5, end
			evs = append(evs, ev)
		}
		rs.ScopeSpans = []*tracepb.ScopeSpans{ss}
		return &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{rs}}, evs
	}
	serve := func(b *testing.B, h http.Handler, path, ct string, body func() []byte) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, path, bytes.NewReader(body()))
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code/100 != 2 {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
			n += spans
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "spans/s")
	}
	b.Run("baseline=json-ingest", func(b *testing.B) {
		h, err := ingest.New(ingest.Options{Publisher: bus})
		if err != nil {
			b.Fatal(err)
		}
		serve(b, h, "/v1/events", "application/json", func() []byte {
			_, evs := request()
			var buf []byte
			buf = append(buf, '[')
			for i, ev := range evs {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = ev.AppendJSON(buf)
			}
			return append(buf, ']')
		})
	})
	b.Run("otlp-protobuf", func(b *testing.B) {
		h, err := otlp.New(otlp.Options{Publisher: bus})
		if err != nil {
			b.Fatal(err)
		}
		serve(b, h, "/v1/traces", "application/x-protobuf", func() []byte {
			td, _ := request()
			data, _ := proto.Marshal(td)
			return data
		})
	})
}
