package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/history"
)

func httpJSON(t *testing.T, method, url string, body any, v any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

// TestConsoleEndToEnd runs `jetmon up` and a standalone `jetmon console`
// as real processes: events sent over HTTP come back, counted exactly, from
// the history API of both (the console keeps no state of its own); a
// silence made through the console is active in the alert manager's API;
// the slowest event's trace id comes back on the history API's point and
// leads to its trace, which only jetmon up's console says it serves; the
// standalone console stops cleanly on SIGTERM.
func TestConsoleEndToEnd(t *testing.T) {
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--window", "1s", "--rate", "0", "--trace-horizon", "300ms")

	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	stderr := &testutil.SyncBuffer{}
	cmd := exec.CommandContext(context.Background(), bin, "console", "--nats-url", p.nats, "--http", addr)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jetmon console stderr:\n%s", stderr.String())
		}
	})
	testutil.WaitFor(t, 20*time.Second, func() bool { return httpJSON(t, http.MethodGet, "http://"+addr+"/readyz", nil, nil) == http.StatusOK }, "the standalone console ready")

	start := time.Now()
	sent := 0
	slowest := events.NewTraceID() // the trace of the last, slowest event
	for range 5 {
		var body bytes.Buffer
		for range 20 {
			trace := ""
			if sent == 99 {
				trace = `,"trace_id":"` + slowest.String() + `"`
			}
			fmt.Fprintf(&body, `{"event_type":"performance.operation.complete","source":"e2e-console","operation":"<b>export</b>","duration_ms":%d,"status":"success"%s}`+"\n", 100+sent, trace)
			sent++
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+p.http+"/v1/events", &body)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingest: %v %v", err, resp)
		}
		_ = resp.Body.Close()
	}
	query := fmt.Sprintf("/api/v1/history/windows?source=e2e-console&type=performance.operation.complete&operation=%%3Cb%%3Eexport%%3C%%2Fb%%3E&from=%d&to=now&step=1h",
		start.Add(-time.Minute).Unix())
	counted := func(base string) uint64 {
		var res history.WindowResult
		if httpJSON(t, http.MethodGet, base+query, nil, &res) != http.StatusOK || len(res.Series) != 1 {
			return 0
		}
		var n uint64
		for _, pt := range res.Series[0].Points {
			n += pt.Count
		}
		return n
	}
	testutil.WaitFor(t, 30*time.Second, func() bool { return counted("http://"+p.http) == uint64(sent) }, "jetmon up's history counting every event")
	if got := counted("http://" + addr); got != uint64(sent) {
		t.Errorf("the standalone console counts %d events, jetmon up's %d", got, sent)
	}
	var res history.WindowResult
	httpJSON(t, http.MethodGet, "http://"+p.http+query, nil, &res)
	var ids []string
	for _, s := range res.Series {
		for _, pt := range s.Points {
			ids = append(ids, pt.SlowestTraceIDs...)
		}
	}
	if !slices.Contains(ids, slowest.String()) {
		t.Errorf("the history points name traces %v, not the slowest event's %s", ids, slowest)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		return httpJSON(t, http.MethodGet, "http://"+p.http+"/api/v1/traces/"+slowest.String(), nil, nil) == http.StatusOK
	}, "the slowest event's trace served by jetmon up")
	for base, want := range map[string]bool{p.http: true, addr: false} {
		var f console.Features
		if code := httpJSON(t, http.MethodGet, "http://"+base+"/api/v1/console/features", nil, &f); code != http.StatusOK || f.Traces != want {
			t.Errorf("%s: console features %d %+v, want traces %v", base, code, f, want)
		}
	}
	if code := httpJSON(t, http.MethodGet, "http://"+addr+"/console/series?source=x", nil, nil); code != http.StatusOK {
		t.Errorf("the series page: %d", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), `jetmon_console_request_seconds_count{route="GET /api/v1/history/windows"}`) {
			t.Errorf("/metrics lacks the history requests:\n%.2000s", body)
		}
		testutil.CheckMetrics(t, body)
	} else {
		t.Error(err)
	}

	// A silence made through the console reaches the alert manager.
	var sil alerting.Silence
	if code := httpJSON(t, http.MethodPost, "http://"+p.http+"/api/v1/console/silences",
		map[string]any{"matchers": map[string]string{"alertname": "OperationSlow"}, "duration": "1h", "comment": "e2e"}, &sil); code != http.StatusOK {
		t.Fatalf("create silence: %d", code)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		var list []alerting.Silence
		httpJSON(t, http.MethodGet, "http://"+p.http+"/api/v1/silences", nil, &list)
		for _, s := range list {
			if s.ID == sil.ID && s.EndsAt.After(time.Now()) {
				return true
			}
		}
		return false
	}, "the silence active in the alert manager's API")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), "stopped") {
			t.Fatalf("jetmon console exited with %v:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("jetmon console did not stop within 10 s of SIGTERM")
	}
	p.stop(t)
}

// jetmon console refuses bad flags before connecting anywhere.
func TestConsoleFlags(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		"help":              {[]string{"console", "--help"}, nil, 0, "Usage: jetmon console"},
		"exposed":           {[]string{"console", "--http", "0.0.0.0:9200"}, nil, 2, "needs a token"},
		"exposed by env":    {[]string{"console"}, map[string]string{"JETMON_HTTP": "0.0.0.0:9200"}, 2, "needs a token"},
		"max live":          {[]string{"console", "--max-live", "0"}, nil, 2, "--max-live 0"},
		"stray argument":    {[]string{"console", "extra"}, nil, 2, "unexpected arguments"},
		"bad stream config": {[]string{"console", "--stream-replicas", "9"}, nil, 2, "--stream-replicas 9"},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
			code := run(t.Context(), c.args, &stdout, &stderr, env)
			if code != c.code || !strings.Contains(stdout.String()+stderr.String(), c.want) {
				t.Errorf("%v: exit %d, output %q; want %d with %q", c.args, code, stdout.String()+stderr.String(), c.code, c.want)
			}
		})
	}
}
