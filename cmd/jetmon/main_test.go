package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
		{"bad rate", []string{"up", "--rate", "0"}, 2, "rate 0"},
		{"bad level", []string{"up", "--log-level", "loud"}, 2, `"loud"`},
		{"bad transport", []string{"up", "--transport", "carrier-pigeon", "--data-dir", "x"}, 1, `transport "carrier-pigeon"`},
		{"bad port", []string{"up", "--nats-port", "70000"}, 2, "nats-port 70000"},
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

// TestUpBinary builds the real binary, runs `jetmon up` on the embedded
// JetStream server twice on one data dir, and stops it with SIGTERM each
// time: it must print events and a summary, exit 0, and resume its store.
func TestUpBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "jetmon")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	runUp(t, bin, dataDir)
	stderr := runUp(t, bin, dataDir)
	if strings.Contains(stderr, `"outcome":"created"`) || strings.Contains(stderr, "outcome=created") {
		t.Errorf("the second start re-created streams instead of resuming the data dir:\n%s", stderr)
	}
}

func runUp(t *testing.T, bin, dataDir string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, "up", "--summary-every", "500ms", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "JETMON_RATE=100")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("jetmon up exited with %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("jetmon up did not stop within 15 s of SIGTERM")
	}
	for _, want := range []string{"performance.operation.", "== summary =="} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("stderr lacks the shutdown line:\n%s", stderr.String())
	}
	return stderr.String()
}
