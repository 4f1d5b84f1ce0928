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
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/ingest"
)

func noEnv(string) (string, bool) { return "", false }

func TestRunCommands(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  string // expected in stdout+stderr
	}{
		{"no args", nil, 2, "Usage:"},
		{"help", []string{"help"}, 0, "jetmon up"},
		{"unknown", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"types", []string{"types"}, 0, "performance.phase.start"},
		{"up help", []string{"up", "--help"}, 0, "JETMON_RATE"},
		{"bad flag", []string{"up", "--rate", "many"}, 2, "invalid value \"many\""},
		{"bad rate", []string{"up", "--rate", "-1"}, 2, "rate -1"},
		{"bad window", []string{"up", "--window", "0s"}, 2, "window 0s"},
		{"bad level", []string{"up", "--log-level", "loud"}, 2, `"loud"`},
		{"bad port", []string{"up", "--nats-port", "70000"}, 2, "nats-port 70000"},
		{"bad rules", []string{"up", "--rules", "nope.yaml"}, 2, "nope.yaml"},
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

type upProcess struct {
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer
	http, nats     string
}

var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildJetmon builds the binary once for every test of the run.
func buildJetmon(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "jetmon-test-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "jetmon")
		if out, err := exec.CommandContext(context.Background(), "go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// runBin runs the binary to its end and returns its combined output.
func runBin(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// startUp runs `jetmon up` as a real process and waits until /readyz is 200.
func startUp(t *testing.T, bin, dataDir string, args ...string) *upProcess {
	t.Helper()
	p := &upProcess{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}}
	httpPort, natsPort := testutil.FreePort(t), testutil.FreePort(t)
	p.http = fmt.Sprintf("127.0.0.1:%d", httpPort)
	p.nats = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	args = append([]string{"up", "--data-dir", dataDir, "--http", p.http, "--nats-port", fmt.Sprint(natsPort), "--refresh", "300ms"}, args...)
	p.cmd = exec.CommandContext(context.Background(), bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("jetmon up stderr:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.http+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jetmon up not ready:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *upProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("jetmon up exited with %v\nstderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("jetmon up did not stop within 15 s of SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("stderr lacks the shutdown line:\n%s", p.stderr.String())
	}
}

// TestUpEndToEnd starts `jetmon up` as a real process, sends events over
// HTTP, and reads their aggregated windows and the alert they fire back over
// NATS; the live view shows both; a restart resumes the data dir.
func TestUpEndToEnd(t *testing.T) {
	bin := buildJetmon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, bin, dataDir, "--window", "1s", "--rate", "20")

	nc, err := nats.Connect(p.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	windows := make(chan *events.AggregateEvent, 256)
	if _, err := nc.Subscribe(string(events.MetricAggregated)+".e2e", func(m *nats.Msg) {
		evs, _ := events.DecodeBatch(m.Data)
		for _, ev := range evs {
			if a, ok := ev.(*events.AggregateEvent); ok {
				windows <- a
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	fired := make(chan alerting.AlertRecord, 16)
	if _, err := nc.Subscribe("alerts.firing.>", func(m *nats.Msg) {
		var r alerting.AlertRecord
		if json.Unmarshal(m.Data, &r) == nil && r.Alert.Labels["source"] == "e2e" {
			fired <- r
		}
	}); err != nil {
		t.Fatal(err)
	}

	// Slow operations over HTTP, NDJSON, with one bad line that must be
	// rejected on its own.
	sent := 0
	for range 10 {
		var body bytes.Buffer
		for range 10 {
			fmt.Fprintf(&body, `{"event_type":"performance.operation.complete","source":"e2e","operation":"export","duration_ms":900,"status":"success"}`+"\n")
			sent++
		}
		body.WriteString(`{"event_type":"performance.operation.complete","source":"e2e"}` + "\n")
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+p.http+"/v1/events", &body)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r ingest.Response
		_ = json.NewDecoder(resp.Body).Decode(&r)
		_ = resp.Body.Close()
		if r.Accepted != 10 || len(r.Errors) != 1 {
			t.Fatalf("ingest: HTTP %d, %+v", resp.StatusCode, r)
		}
		time.Sleep(200 * time.Millisecond)
	}

	counted := uint64(0)
	deadline := time.After(20 * time.Second)
	for counted < uint64(sent) {
		select {
		case w := <-windows:
			if w.Operation != "export" || w.P95 < 800 || w.P95 > 1000 {
				t.Fatalf("window: %+v", w)
			}
			counted += w.Count
		case <-deadline:
			t.Fatalf("windows counted %d of %d events", counted, sent)
		}
	}
	// Once only: no later window may add more.
	for settle := time.After(3 * time.Second); settle != nil; {
		select {
		case w := <-windows:
			counted += w.Count
		case <-settle:
			settle = nil
		}
	}
	if counted != uint64(sent) {
		t.Fatalf("windows counted %d events, %d were sent", counted, sent)
	}
	select {
	case r := <-fired:
		if r.Alert.Rule != "OperationSlow" || r.Alert.Labels["operation"] != "export" || r.To != alerting.StateFiring {
			t.Fatalf("alert record: %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no alerts.firing record for the slow operation")
	}
	waitView := time.Now().Add(5 * time.Second)
	firingRow := regexp.MustCompile(`FIRING\s+OperationSlow\s+e2e/export p95 900 ms`)
	for !firingRow.MatchString(p.stdout.String()) {
		if time.Now().After(waitView) {
			t.Fatalf("the live view does not show the alert:\n%s", p.stdout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p.stdout.String(), "e2e") || !strings.Contains(p.stdout.String(), "LATEST 1s WINDOWS") {
		t.Errorf("the live view lacks the windows:\n%s", p.stdout.String())
	}
	// The operator commands, as the real binary, against the running
	// pipeline: the latest windows in wire form, and the dead letters.
	tctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(tctx, bin, "tail", "--nats-url", p.nats, "--since", "1m", "--count", "2", "--json",
		string(events.MetricAggregated)).Output()
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); err != nil || len(lines) != 2 {
		t.Errorf("jetmon tail: %v\n%s", err, out)
	} else {
		for _, line := range lines {
			if ev, err := events.Decode([]byte(line)); err != nil || ev.Metadata().Type != events.MetricAggregated {
				t.Errorf("jetmon tail printed %q: %v", line, err)
			}
		}
	}
	if out, err := exec.CommandContext(tctx, bin, "dlq", "list", "--nats-url", p.nats).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "no dead letters") {
		t.Errorf("jetmon dlq list: %v\n%s", err, out)
	}
	// Every daemon's metrics (aggregator, alert manager, breaker, ingest) in
	// the Prometheus text format, checked by promtool.
	resp, err := testutil.Get(t, "http://"+p.http+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{"jetmon_aggregator_windows_emitted_total", "jetmon_alertmanager_transitions_total", "jetmon_breaker_"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	testutil.CheckMetrics(t, metrics)
	p.stop(t)

	// The next start resumes the data dir: no stream is created again, and
	// the firing alert is restored.
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	writeRules := func(extra string) {
		if err := os.WriteFile(rulesFile, []byte("rules:\n  - alert: OperationSlow\n    field: p95\n    threshold: 250\n"+extra+"receivers: [{name: log, log: {}}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("")
	p2 := startUp(t, bin, dataDir, "--rate", "0", "--rules", rulesFile)
	if s := p2.stderr.String(); strings.Contains(s, "outcome=created") {
		t.Errorf("the second start re-created streams instead of resuming the data dir:\n%s", s)
	}
	if !strings.Contains(p2.stderr.String(), "restored_alerts=") || strings.Contains(p2.stderr.String(), "restored_alerts=0") {
		t.Errorf("the second start restored no alerts:\n%s", p2.stderr.String())
	}
	// SIGHUP reloads --rules.
	writeRules("  - alert: ComponentFailed\n    kind: health\n")
	if err := p2.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		var rs []json.RawMessage
		if resp, err := testutil.Get(t, "http://"+p2.http+"/api/v1/rules"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&rs)
			_ = resp.Body.Close()
		}
		return len(rs) == 2
	}, "the rules reloaded on SIGHUP")
	p2.stop(t)
}
