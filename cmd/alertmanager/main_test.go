package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

func noEnv(string) (string, bool) { return "", false }

func TestFlagsHelpAndCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - alert: X\n    field: p42\n    threshold: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "ALERTMANAGER_RULES"},
		{[]string{"--rules", bad}, 2, bad + `:3: rules[0].field: "p42"`},
		{[]string{"--rules", filepath.Join(dir, "missing.yaml")}, 2, "missing.yaml"},
		{[]string{"--rules", "../../examples/rules.yaml", "--http", "0.0.0.0:9103"}, 2, "http 0.0.0.0:9103: listening beyond loopback needs a token"},
		{[]string{"--rules", "../../examples/rules.yaml", "--http-token-file", filepath.Join(dir, "missing-token")}, 2, "--http-token-file"},
		{[]string{"check", "../../examples/rules.yaml"}, 0, "SUCCESS ../../examples/rules.yaml: 7 rules"},
		{[]string{"check", "../../examples/receivers.yaml"}, 0, "SUCCESS ../../examples/receivers.yaml: 1 rules, 2 receivers"},
		{[]string{"check", bad}, 1, "FAILED " + bad},
		{[]string{"check"}, 2, "at least one rules file"},
		{[]string{"silence"}, 2, "silence add"},
		{[]string{"silence", "add"}, 2, "--matcher is required"},
		{[]string{"silence", "add", "--matcher", "nope"}, 2, `matcher "nope"`},
		{[]string{"suggest", "--field", "p42"}, 2, `--field "p42"`},
		{[]string{"suggest", "--help"}, 0, "SUGGESTED"[:0] + "median"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if code := run(context.Background(), c.args, &out, &out, noEnv); code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("alertmanager %v: exit %d, output:\n%s\nwant exit %d and %q", c.args, code, out.String(), c.code, c.want)
		}
	}
}

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// daemon starts a binary and waits until url answers 200.
func daemon(t *testing.T, url string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), name, args...)
	logs := &testutil.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logs:\n%s", filepath.Base(name), logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := testutil.Get(t, url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready:\n%s", name, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The real pipeline: events → aggregator → alertmanager → an HTTP webhook.
// The window that crosses the threshold reaches the webhook (the latency is
// logged, not bounded: a wall-clock bound across three processes only
// measures the machine's load); SIGHUP reloads the rules; the silence CLI talks to the API; SIGTERM stops
// cleanly.
func TestEndToEndWindowToWebhook(t *testing.T) {
	srv := natstest.Start(t)
	dir := t.TempDir()
	aggBin := build(t, dir, "../aggregator")
	amBin := build(t, dir, "../alertmanager")

	type hit struct {
		at  time.Time
		msg alerting.WebhookMessage
	}
	hits := make(chan hit, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m alerting.WebhookMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		hits <- hit{time.Now(), m}
	}))
	defer hook.Close()
	rules := filepath.Join(dir, "rules.yaml")
	writeRules := func(extra string) {
		if err := os.WriteFile(rules, fmt.Appendf(nil, `
rules:
  - alert: CheckoutSlow
    match: {type: performance.operation.complete, source: checkout, operation: charge}
    field: p95
    threshold: 250
    annotations: {summary: "p95 {{ .Value }}"}
%s
route: {receiver: hook, group_wait: 0s, group_interval: 1s}
receivers:
  - name: hook
    webhook: {url: %q}
`, extra, hook.URL), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("")

	// Record when each aggregated window of the slow series is published.
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	windows := make(chan time.Time, 64)
	sub, err := nc.Subscribe(string(events.MetricAggregated)+".>", func(m *nats.Msg) {
		evs, _ := events.DecodeBatch(m.Data)
		for _, ev := range evs {
			if a, ok := ev.(*events.AggregateEvent); ok && a.P95 > 250 {
				windows <- time.Now()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	aggHTTP, amHTTP := testutil.FreeAddr(t), testutil.FreeAddr(t)
	daemon(t, "http://"+aggHTTP+"/readyz", aggBin, "--nats-url", srv.ClientURL(), "--window", "1s", "--lateness", "100ms", "--http", aggHTTP)
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	amArgs := []string{"--nats-url", srv.ClientURL(), "--rules", rules, "--http", amHTTP, "--instance", "e2e", "--log-json", "--api-token-file", tokenFile}
	am := daemon(t, "http://"+amHTTP+"/readyz", amBin, amArgs...)

	bus := natstest.Connect(t, srv.ClientURL())
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
				ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
				ev.Operation, ev.DurationMS, ev.Status = "charge", 400, events.StatusSuccess
				_ = bus.Publish(context.Background(), ev)
			}
		}
	}()
	var h hit
	select {
	case h = <-hits:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook call")
	}
	first := <-windows // the first window over the threshold
	latency := h.at.Sub(first)
	// The latency is a figure, not a check (three processes on a shared
	// machine): what must hold is that the webhook follows the window.
	t.Logf("aggregated window → webhook: %v", latency)
	if latency < 0 {
		t.Errorf("the webhook came %v before the first window over the threshold", -latency)
	}
	if h.msg.Version != "4" || h.msg.Status != "firing" || len(h.msg.Alerts) != 1 || h.msg.Alerts[0].Labels["alertname"] != "CheckoutSlow" {
		t.Fatalf("webhook payload: %+v", h.msg)
	}

	// kill -9 and restart: the firing alert is restored from KV and not
	// notified again (group_wait 0 flushes its group at once). The kill
	// comes a moment after the webhook answered: a crash between a send
	// and its record in the notification log may repeat that notification
	// (docs/alerting.md), which is not what this checks.
	time.Sleep(500 * time.Millisecond)
	_ = am.Process.Kill()
	_ = am.Wait()
	am = daemon(t, "http://"+amHTTP+"/readyz", amBin, amArgs...)
	select {
	case h := <-hits:
		t.Fatalf("the restarted instance notified again: %+v", h.msg)
	case <-time.After(2500 * time.Millisecond):
	}
	var active []alerting.AlertStatus
	if resp, err := testutil.Get(t, "http://"+amHTTP+"/api/v1/alerts"); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&active)
		_ = resp.Body.Close()
	}
	if len(active) != 1 || active[0].State != alerting.StateFiring {
		t.Fatalf("after kill -9 and restart: %+v", active)
	}

	// Threshold suggestions from the stored windows (a few more of them).
	close(stopLoad)
	<-loadDone
	sug := &testutil.SyncBuffer{}
	if code := run(t.Context(), []string{"suggest", "--nats-url", srv.ClientURL(), "--field", "p95", "--since", "1h"}, sug, sug, noEnv); code != 0 ||
		!regexp.MustCompile(`performance\.operation\.complete\s+checkout\s+charge\s+\d+\s+40\d`).MatchString(sug.String()) {
		t.Errorf("suggest: exit %d:\n%s", code, sug.String())
	}

	// SIGHUP reloads the rules file.
	writeRules("  - alert: ComponentFailed\n    kind: health\n")
	if err := am.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rs []json.RawMessage
		if resp, err := testutil.Get(t, "http://"+amHTTP+"/api/v1/rules"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&rs)
			_ = resp.Body.Close()
		}
		if len(rs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload: %d rules", len(rs))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The silence CLI against the running instance.
	var out bytes.Buffer
	url := "http://" + amHTTP
	if code := run(t.Context(), []string{"silence", "add", "--url", url, "--matcher", "alertname=CheckoutSlow"}, &out, &out, noEnv); code != 1 || !strings.Contains(out.String(), "bearer token") {
		t.Fatalf("silence add without the API token: %d %s", code, out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"silence", "add", "--url", url, "--token-file", tokenFile, "--matcher", "alertname=CheckoutSlow", "--duration", "1h", "--comment", "e2e"}, &out, &out, noEnv); code != 0 {
		t.Fatalf("silence add: %d %s", code, out.String())
	}
	id := strings.TrimSpace(out.String())
	out.Reset()
	if code := run(t.Context(), []string{"silence", "list", "--url", url}, &out, &out, noEnv); code != 0 || !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "active") {
		t.Fatalf("silence list: %d %s", code, out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"silence", "expire", "--url", url, "--token-file", tokenFile, id}, &out, &out, noEnv); code != 0 {
		t.Fatalf("silence expire: %d %s", code, out.String())
	}

	if err := am.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- am.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}
