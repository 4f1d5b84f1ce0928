// Package testutil holds the small helpers the tests of several packages
// share: free loopback ports, a goroutine-safe buffer, polling, HTTP GET.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns 127.0.0.1:<FreePort>.
func FreeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers
// (a child process's output, a logger).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls cond every 10 ms and fails the test if it is not true
// within d.
func WaitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Get sends a GET bound to the test's context.
func Get(t testing.TB, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// SkipMissingEnv names the variable that lets tests skip when a server or
// tool they need is not installed: JETMON_SKIP_MISSING=1. Without it such a
// test fails, so that a plain `make test` never passes by skipping; under
// CI=true it fails even with it.
const SkipMissingEnv = "JETMON_SKIP_MISSING"

// SkipMissing reports whether a missing tool may skip a test rather than fail
// it: JETMON_SKIP_MISSING=1 and not CI=true.
func SkipMissing() bool {
	return os.Getenv(SkipMissingEnv) == "1" && os.Getenv("CI") != "true"
}

// LookTool returns the path of the first of names found on PATH. When none
// is, it fails the test with install (how to get the tool) — unless
// [SkipMissing], where it logs that and returns "".
func LookTool(t testing.TB, install string, names ...string) string {
	t.Helper()
	bin, missing := lookTool(t, install, names)
	if bin == "" {
		t.Log(missing)
	}
	return bin
}

// Tool is [LookTool] for a test that cannot run without the tool: with
// [SkipMissing] the test is skipped, otherwise it fails.
func Tool(t testing.TB, install string, names ...string) string {
	t.Helper()
	bin, missing := lookTool(t, install, names)
	if bin == "" {
		t.Skipf("%s (%s=1)", missing, SkipMissingEnv)
	}
	return bin
}

func lookTool(t testing.TB, install string, names []string) (bin, missing string) {
	t.Helper()
	for _, name := range names {
		if bin, err := exec.LookPath(name); err == nil {
			return bin, ""
		}
	}
	missing = fmt.Sprintf("%s is not installed (%s)", strings.Join(names, " or "), install)
	if !SkipMissing() {
		t.Fatalf("%s; %s=1 skips what needs it", missing, SkipMissingEnv)
	}
	return "", missing
}

// CheckMetrics runs `promtool check metrics` (Debian package prometheus) on
// a /metrics body: the Prometheus text format must parse and pass its lint.
// Without promtool the test fails; with [SkipMissing] the check is logged as
// not done and the test goes on.
func CheckMetrics(t testing.TB, body []byte) {
	t.Helper()
	bin := LookTool(t, "apt-get install prometheus", "promtool")
	if bin == "" {
		t.Log("the metrics format is not checked")
		return
	}
	cmd := exec.CommandContext(t.Context(), bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
