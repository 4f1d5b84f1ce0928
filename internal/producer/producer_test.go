package producer_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/producer"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
)

func TestLoadGenEmitsWholeTraces(t *testing.T) {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	rep, err := producer.LoadGen(t.Context(), bus, producer.LoadOptions{
		Rate: 100_000, Count: 200, Depth: 3, ErrorRate: 0.1, SlowOperation: "checkout", Quiet: true,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 200 || rep.Sent != 600 || rep.Failed != 0 {
		t.Fatalf("report %+v", rep)
	}
	byTrace := map[events.TraceID][]*events.PerformanceEvent{}
	failed, slow := 0, 0
	for _, ev := range bus.Published() {
		p := ev.(*events.PerformanceEvent)
		byTrace[p.TraceID] = append(byTrace[p.TraceID], p)
		if p.Type == events.OperationFailed {
			failed++
		}
		if p.Operation == "checkout" {
			slow++
		}
	}
	if len(byTrace) != 200 {
		t.Fatalf("%d traces, want 200", len(byTrace))
	}
	for _, hops := range byTrace {
		if len(hops) != 3 || hops[1].ParentSpanID != hops[0].SpanID || hops[2].ParentSpanID != hops[1].SpanID {
			t.Fatalf("a request is not one trace of parent/child spans: %+v", hops)
		}
	}
	if failed < 20 || failed > 110 || slow == 0 {
		t.Errorf("%d failed of 600 at a 10%% error rate, %d slow", failed, slow)
	}
	if !strings.Contains(rep.String(), "events/s") {
		t.Errorf("report %q", rep)
	}
}

func TestLoadHealthConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "h.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write(`{"interval":"5s","checks":[{"name":"api","type":"http","url":"http://127.0.0.1:1/health","critical":true},{"name":"db","type":"tcp","addr":"127.0.0.1:5432"},{"name":"cache","type":"redis","addr":"127.0.0.1:6379","password_env":"REDIS_PW"},{"name":"bus","type":"nats"}]}`)
	c, err := producer.LoadHealthConfig(good)
	if err != nil || len(c.Checks) != 4 || time.Duration(c.Interval) != 5*time.Second {
		t.Fatalf("%+v %v", c, err)
	}
	for body, want := range map[string]string{
		`{"checks":[{"name":"x","type":"ftp"}]}`:                             `type "ftp"`,
		`{"checks":[{"type":"tcp","addr":"h:1"}]}`:                           "name is required",
		`{"checks":[{"name":"x","type":"tcp","addr":"nohost"}]}`:             `addr "nohost"`,
		`{"checks":[{"name":"x","type":"http","url":"ftp://x"}]}`:            `url "ftp://x"`,
		`{"checks":[{"name":"x","type":"nats"},{"name":"x","type":"nats"}]}`: "used twice",
		`{"intervall":"5s"}`:  "intervall",
		`{"interval":"soon"}`: "soon",
	} {
		if _, err := producer.LoadHealthConfig(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %s", body, err, want)
		}
	}
}

// TestServe runs the ingest and the health agent against a real nats-server.
func TestServe(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	br, err := breaker.New(bus, breaker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = br.Close() }()
	col := make(chan events.Event, 100)
	if _, err := bus.Subscribe(t.Context(), ">", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		col <- ev
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- producer.Serve(ctx, producer.ServeOptions{
			Bus: bus, Breaker: br, HTTP: "127.0.0.1:0", Token: "tok", Source: "agent", Logger: zerolog.Nop(),
			Health: producer.HealthConfig{Interval: producer.Duration(time.Second), Checks: []producer.CheckConfig{{Name: "bus", Type: "nats", Critical: true}}},
			Ready:  func(a net.Addr) { addr <- a.String() },
		})
	}()
	base := "http://" + <-addr
	body := string(events.NewSystemEvent(events.SystemError, "svc", "boom").AppendJSON(nil)) + "\n"
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", resp.StatusCode)
	}
	got := map[events.Type]bool{}
	deadline := time.After(15 * time.Second)
	for !got[events.SystemError] || !got[events.CheckCompleted] {
		select {
		case ev := <-col:
			got[ev.Metadata().Type] = true
		case <-deadline:
			t.Fatalf("events seen: %v", got)
		}
	}
	// Ready once the critical check has run.
	waitReady := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(waitReady) {
			t.Fatalf("/readyz still %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The probes are open; everything else needs the token.
	for _, path := range []string{"/metrics", "/v1/openapi.json"} {
		resp, err := testutil.Get(t, base+path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/openapi.json"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if path != "/healthz" && path != "/readyz" {
			req.Header.Set("Authorization", "Bearer tok")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if path == "/metrics" && !strings.Contains(string(b), "go_goroutines") {
			t.Errorf("/metrics lacks the runtime metrics")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
