package otlp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/otlp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stored reads back every performance event stored in JetStream.
func stored(t *testing.T, bus *jsbus.Bus, want int) map[string]*events.PerformanceEvent {
	t.Helper()
	got := map[string]*events.PerformanceEvent{}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		_, err := bus.Replay(t.Context(), "performance.>", jsbus.ReplayOptions{From: time.Unix(0, 0)}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			got[ev.Metadata().ID] = ev.(*events.PerformanceEvent)
			return nil
		}))
		return err == nil && len(got) >= want
	}, fmt.Sprintf("%d events stored", want))
	if len(got) != want {
		t.Fatalf("%d events stored, want %d", len(got), want)
	}
	return got
}

func door(t *testing.T, bus *jsbus.Bus, o otlp.Options) string {
	o.Publisher = bus
	h, err := otlp.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The real OpenTelemetry Go SDK exports spans with otlptracehttp; each span
// is stored as a performance event with its trace, span and parent ids,
// service, operation, status and duration.
func TestOTelSDKExport(t *testing.T) {
	bus := natstest.Connect(t, natstest.Start(t).ClientURL())
	url := door(t, bus, otlp.Options{})
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL(url+"/v1/traces"), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("checkout"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	tr := tp.Tracer("test")
	t0 := time.Now().Add(-time.Second)
	ctx, root := tr.Start(t.Context(), "POST /checkout", oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithTimestamp(t0))
	_, child := tr.Start(ctx, "db.query", oteltrace.WithSpanKind(oteltrace.SpanKindClient),
		oteltrace.WithAttributes(attribute.String("db.system", "postgres")), oteltrace.WithTimestamp(t0.Add(5*time.Millisecond)))
	child.SetStatus(codes.Error, "deadlock")
	child.End(oteltrace.WithTimestamp(t0.Add(35 * time.Millisecond)))
	root.End(oteltrace.WithTimestamp(t0.Add(50 * time.Millisecond)))
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatalf("export: %v", err)
	}
	rc, cc := root.SpanContext(), child.SpanContext()
	got := stored(t, bus, 2)
	r := got["otlp-"+rc.TraceID().String()+"-"+rc.SpanID().String()]
	c := got["otlp-"+cc.TraceID().String()+"-"+cc.SpanID().String()]
	if r == nil || c == nil {
		t.Fatalf("spans not found by id: %v", got)
	}
	if r.Source != "checkout" || r.Operation != "POST /checkout" || r.Type != events.OperationComplete || !r.ParentSpanID.IsZero() ||
		r.TraceID.String() != rc.TraceID().String() || r.Attributes["span.kind"] != "server" {
		t.Fatalf("root %+v", r)
	}
	if c.Type != events.OperationFailed || c.Status != events.StatusFailure || c.Error != "deadlock" || c.ParentSpanID.String() != rc.SpanID().String() ||
		c.TraceID != r.TraceID || c.DurationMS != 30 || r.DurationMS != 50 || !r.Timestamp.Equal(t0.Add(50*time.Millisecond).Truncate(0).UTC()) {
		t.Fatalf("child %+v (root %v ms)", c, r.DurationMS)
	}
}

func post(t *testing.T, url, ct string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// OTLP/JSON with the spec's quirks (hex ids, string or number times, integer
// enums); invalid spans are rejected in partial_success, the good ones
// stored; re-sending stores nothing twice.
func TestJSONAndPartialSuccess(t *testing.T) {
	bus := natstest.Connect(t, natstest.Start(t).ClientURL())
	url := door(t, bus, otlp.Options{MaxSpans: 4})
	end := time.Now().Add(-time.Second).UnixNano()
	span := func(sid, parent, name string, start, end any, code int) string {
		return fmt.Sprintf(`{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":%q,"parentSpanId":%q,"name":%q,"kind":2,"startTimeUnixNano":%v,"endTimeUnixNano":%v,"status":{"code":%d},"unknownField":[1]}`,
			sid, parent, name, start, end, code)
	}
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":[` +
		span("eee19b7ec3c1b174", "", "GET /", fmt.Sprintf("%q", fmt.Sprint(end-5e6)), fmt.Sprintf("%q", fmt.Sprint(end)), 1) + "," +
		span("eee19b7ec3c1b175", "eee19b7ec3c1b174", "child", end-1e6, end, 2) + "," + // numbers, not strings
		span("zz", "", "bad id", end-1, end, 0) + "," +
		span("eee19b7ec3c1b176", "", "backwards", end, end-1, 0) + "," +
		span("eee19b7ec3c1b177", "", "over MaxSpans", end-1, end, 0) +
		`]}]}]}`
	code, resp := post(t, url, "application/json", []byte(body))
	if code != 200 || !strings.Contains(resp, `"rejectedSpans":"3"`) || !strings.Contains(resp, "span 2: spanId") {
		t.Fatalf("answer %d %s", code, resp)
	}
	if code, resp := post(t, url, "application/json", []byte(body)); code != 200 {
		t.Fatalf("re-send: %d %s", code, resp)
	}
	got := stored(t, bus, 2)
	c := got["otlp-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b175"]
	if c == nil || c.Source != "api" || c.DurationMS != 1 || c.Type != events.OperationFailed || c.ParentSpanID.String() != "eee19b7ec3c1b174" {
		t.Fatalf("child %+v", c)
	}
}

// Hostile bodies get clear answers, never a crash or a hang.
func TestHostileBodies(t *testing.T) {
	bus := natstest.Connect(t, natstest.Start(t).ClientURL())
	url := door(t, bus, otlp.Options{MaxBody: 1 << 16})
	huge := bytes.Repeat([]byte("x"), 1<<17)
	// A protobuf that claims a length far past its end.
	var lying []byte
	lying = protowire.AppendTag(lying, 1, protowire.BytesType)
	lying = protowire.AppendVarint(lying, 1<<40)
	deep := strings.Repeat(`{"resourceSpans":[`, 3000)
	cases := []struct {
		name, ct string
		body     []byte
		code     int
	}{
		{"huge", "application/json", huge, 413},
		{"form", "application/x-www-form-urlencoded", []byte("a=b"), 415},
		{"not json", "application/json", []byte("{"), 400},
		{"deep nesting", "application/json", []byte(deep), 400},
		{"lying protobuf", "application/x-protobuf", lying, 400},
		{"garbage protobuf", "application/x-protobuf", []byte{0xff, 0xff, 0xff}, 400},
		{"bad time", "application/json", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}`), 400},
		{"empty export", "application/x-protobuf", nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, body := post(t, url, c.ct, c.body); code != c.code {
				t.Fatalf("%d %.200s, want %d", code, body, c.code)
			}
		})
	}
	// A span far in the future or before 1970 is rejected, counted, not stored.
	future := time.Now().Add(time.Hour).UnixNano()
	body := fmt.Sprintf(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"n","startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, future, future)
	if code, resp := post(t, url, "application/json", []byte(body)); code != 200 || !strings.Contains(resp, `"rejectedSpans":"1"`) || !strings.Contains(resp, "timestamp") {
		t.Fatalf("future span: %d %s", code, resp)
	}
	if _, err := otlp.New(otlp.Options{}); !errors.Is(err, otlp.ErrOptions) {
		t.Fatalf("no publisher: %v", err)
	}
}
