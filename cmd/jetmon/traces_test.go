package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
	"github.com/jetmon/jetmon/pkg/tracing"
)

func TestTraceCommands(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"trace help", []string{"trace", "--help"}, 0, "TRACE_ID"},
		{"trace no id", []string{"trace"}, 2, "one trace id expected"},
		{"trace bad id", []string{"trace", "XYZ"}, 2, `trace id "XYZ"`},
		{"trace zero id", []string{"trace", strings.Repeat("0", 32)}, 2, "not all zero"},
		{"trace bad format", []string{"trace", "--format", "svg", "0af7651916cd43dd8448eb211c80319c"}, 2, `--format "svg"`},
		{"trace unreachable", []string{"trace", "--url", "http://127.0.0.1:1", "--timeout", "2s", "0af7651916cd43dd8448eb211c80319c"}, 1, "connect"},
		{"traces no verb", []string{"traces"}, 2, "jetmon traces serve"},
		{"traces help", []string{"traces", "serve", "--help"}, 0, "JETMON_<FLAG>"},
		{"traces bad horizon", []string{"traces", "serve", "--horizon", "0s"}, 2, "Horizon 0s"},
		{"traces bad partition", []string{"traces", "serve", "--partitions", "2", "--partition", "2"}, 2, "Partition 2 of 2"},
		{"traces exposed", []string{"traces", "serve", "--http", "0.0.0.0:9104"}, 2, "token"},
		{"up bad horizon", []string{"up", "--trace-horizon", "-1s"}, 2, "trace-horizon -1s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), c.args, &out, &out, noEnv)
			if code != c.code || !strings.Contains(out.String(), c.out) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), c.code, c.out)
			}
		})
	}
}

// An application instrumented with the OpenTelemetry Go SDK exports to the
// real `jetmon up` over OTLP/HTTP; the trace is assembled and found by its
// trace id with the SDK's parent links, `jetmon trace ID` (the real binary)
// prints its waterfall, and the dependency map holds the call.
func TestOTelSDKToJetmonUp(t *testing.T) {
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--trace-horizon", "300ms", "--quiet")
	defer p.stop(t)

	// One provider (and exporter) per service, batching: ForceFlush returns
	// the export's error, so a refused export fails the test here.
	mk := func(svc string) *sdktrace.TracerProvider {
		exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL("http://"+p.http+"/v1/traces"))
		if err != nil {
			t.Fatal(err)
		}
		return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(svc))))
	}
	front, back := mk("frontend"), mk("inventory")
	t0 := time.Now().Add(-time.Second)
	ctx, root := front.Tracer("app").Start(t.Context(), "GET /cart", oteltrace.WithTimestamp(t0), oteltrace.WithSpanKind(oteltrace.SpanKindServer))
	_, call := back.Tracer("app").Start(ctx, "reserve", oteltrace.WithTimestamp(t0.Add(10*time.Millisecond)))
	call.SetStatus(codes.Error, "out of stock")
	call.End(oteltrace.WithTimestamp(t0.Add(70 * time.Millisecond)))
	root.End(oteltrace.WithTimestamp(t0.Add(100 * time.Millisecond)))
	for _, tp := range []*sdktrace.TracerProvider{front, back} {
		if err := tp.ForceFlush(t.Context()); err != nil {
			t.Fatalf("export: %v", err)
		}
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	id := root.SpanContext().TraceID().String()

	var v trace.View
	testutil.WaitFor(t, 20*time.Second, func() bool {
		resp, err := testutil.Get(t, "http://"+p.http+"/api/v1/traces/"+id)
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && json.Unmarshal(body, &v) == nil && len(v.Spans) == 2
	}, "the SDK's trace assembled")
	r, c := v.Spans[0], v.Spans[1]
	if r.SpanID != root.SpanContext().SpanID().String() || r.Service != "frontend" || r.Name != "GET /cart" || r.DurationMS != 100 ||
		c.SpanID != call.SpanContext().SpanID().String() || c.ParentSpanID != r.SpanID || c.Parent != 0 || c.Service != "inventory" ||
		!c.Error || c.DurationMS != 60 || r.SelfMS != 40 || v.ErrorCount != 1 {
		t.Fatalf("trace %+v", v)
	}
	out, err := runBin(t.Context(), bin, "trace", "--url", "http://"+p.http, id)
	if err != nil {
		t.Fatalf("jetmon trace: %v\n%s", err, out)
	}
	for _, want := range []string{
		"trace " + id, "100.000 ms  2 spans  1 errors", "*  frontend GET /cart", "*!   inventory reserve",
		"critical path: frontend GET /cart 10.000 ms; inventory reserve 60.000 ms; frontend GET /cart 30.000 ms;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("waterfall lacks %q:\n%s", want, out)
		}
	}
	if out, err := runBin(t.Context(), bin, "trace", "--url", "http://"+p.http, strings.Repeat("ab", 16)); err == nil || !strings.Contains(out, "404") {
		t.Errorf("unknown trace: %v %s", err, out)
	}
	resp, err := testutil.Get(t, "http://"+p.http+"/api/v1/dependencies?format=dot")
	if err != nil {
		t.Fatal(err)
	}
	dot, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(dot), `"frontend" -> "inventory" [label="`) || !strings.Contains(string(dot), "100.0% err") {
		t.Errorf("dependency map:\n%s", dot)
	}
	// The stored trace is counted, and its duration observed with the trace
	// id as exemplar (OpenMetrics).
	testutil.WaitFor(t, 10*time.Second, func() bool {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.http+"/metrics", nil)
		req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), "jetmon_traces_stored_total 1") &&
			strings.Contains(string(body), `# {trace_id="`+id+`"} 0.1`)
	}, "the stored trace counted, with its exemplar")
}

// `jetmon traces serve` (the real binary) against a NATS server: it
// assembles and serves a trace, answers /healthz, /readyz and /metrics, and
// stops cleanly on SIGTERM.
func TestTracesServe(t *testing.T) {
	bin := buildJetmon(t)
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	addr := testutil.FreeAddr(t)
	cmd := exec.CommandContext(context.Background(), bin, "traces", "serve", "--http", addr, "--log-json")
	cmd.Env = append(os.Environ(), "NATS_URL="+srv.ClientURL(), "JETMON_HORIZON=200ms")
	stderr := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	status := func(path string) int {
		resp, err := testutil.Get(t, "http://"+addr+path)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	testutil.WaitFor(t, 30*time.Second, func() bool { return status("/readyz") == 200 }, "traces serve ready")
	ev := events.NewPerformanceEvent(events.OperationComplete, "svc")
	ev.Operation, ev.DurationMS = "op", 5
	if err := bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool { return status("/api/v1/traces/"+ev.TraceID.String()) == 200 }, "the trace served")
	if c := status("/metrics"); c != 200 {
		t.Fatalf("/metrics: %d", c)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), `"stopped"`) {
			t.Fatalf("exit %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
}

// kill -9 of `jetmon traces serve` while traces are open: the restarted
// process replays from its recovery point and stores them whole.
func TestTracesServeKillNineRecoversOpenTraces(t *testing.T) {
	bin := buildJetmon(t)
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	addr := testutil.FreeAddr(t)
	start := func(horizon string) (*exec.Cmd, *testutil.SyncBuffer) {
		cmd := exec.CommandContext(context.Background(), bin, "traces", "serve", "--http", addr, "--horizon", horizon)
		cmd.Env = append(os.Environ(), "NATS_URL="+srv.ClientURL())
		stderr := &testutil.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = io.Discard, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr.String())
			}
		})
		testutil.WaitFor(t, 30*time.Second, func() bool {
			resp, err := testutil.Get(t, "http://"+addr+"/readyz")
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, "traces serve ready")
		return cmd, stderr
	}
	first, _ := start("1h") // nothing is stored before the kill
	tc := events.NewRootTrace()
	for i := range 2 {
		ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprintf("svc-%d", i))
		ev.SetTrace(tc)
		ev.Operation, ev.DurationMS = "op", 5
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		tc = tc.Child()
	}
	kv, err := bus.JetStream().KeyValue(t.Context(), tracing.RecoveryBucket)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		resp, err := testutil.Get(t, "http://"+addr+"/metrics")
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		_, kerr := kv.Get(t.Context(), "traces")
		return strings.Contains(string(body), "jetmon_traces_open_spans 2") && kerr == nil
	}, "both spans held open and a recovery point written")
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	start("200ms")
	testutil.WaitFor(t, 20*time.Second, func() bool {
		resp, err := testutil.Get(t, "http://"+addr+"/api/v1/traces/"+tc.TraceID.String())
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		var v trace.View
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil && v.SpanCount == 2
	}, "the trace open at the kill stored whole after the restart")
}
