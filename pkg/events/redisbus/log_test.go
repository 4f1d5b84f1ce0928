package redisbus_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/redistest"
	"github.com/jetmon/jetmon/internal/testutil"
)

// goRedisWarning makes go-redis log a message of its own: it truncates an
// expiry under a millisecond and says so through its process-wide logger.
func goRedisWarning(t *testing.T, addr string, logger *zerolog.Logger) {
	t.Helper()
	cfg := testConfig(addr)
	cfg.Logger = logger
	bus := connect(t, cfg)
	defer func() { _ = bus.Close() }()
	if err := bus.Client().Set(t.Context(), "logtest", "v", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestGoRedisLogsGoToTheLogger: go-redis's own messages reach the
// configured logger.
func TestGoRedisLogsGoToTheLogger(t *testing.T) {
	srv := redistest.Start(t)
	var logs testutil.SyncBuffer
	logger := zerolog.New(&logs)
	goRedisWarning(t, srv.Addr, &logger)
	if out := logs.String(); !strings.Contains(out, "truncating to 1ms") || !strings.Contains(out, `"source":"go-redis"`) {
		t.Errorf("go-redis's message did not reach the logger; logged %q", out)
	}
}

// TestGoRedisLogsNotOnStderr: with a nil Logger nothing of go-redis reaches
// stderr. The bus runs in a child process (go-redis's default logger holds
// the stderr it found at start), whose stderr is captured.
func TestGoRedisLogsNotOnStderr(t *testing.T) {
	if addr := os.Getenv("JETMON_REDISBUS_STDERR_CHILD"); addr != "" {
		goRedisWarning(t, addr, nil)
		return
	}
	srv := redistest.Start(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestGoRedisLogsNotOnStderr$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JETMON_REDISBUS_STDERR_CHILD="+srv.Addr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "PASS") {
		t.Fatalf("the child did not run the test:\n%s", stdout.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("go-redis wrote to stderr with a nil Logger: %q", stderr.String())
	}
}
