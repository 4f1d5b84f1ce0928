// Package redistest starts a real redis-server for tests: a random loopback
// port, a temporary directory, no persistence unless asked, stopped when the
// test ends. Without the redis-server binary the test fails, or is skipped
// with JETMON_SKIP_MISSING=1 (see [testutil.SkipMissingEnv]).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/testutil"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	Dir  string
	Port int
	args []string
	cmd  *exec.Cmd
	t    testing.TB
}

// Start runs redis-server with extra arguments (e.g. "--requirepass", "pw").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := testutil.Tool(t, "apt-get install -y redis-server", "redis-server")
	s := &Server{Dir: t.TempDir(), Port: testutil.FreePort(t), t: t}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	s.args = append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes",
	}, extra...)
	s.start(bin)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	s.cmd = exec.CommandContext(context.Background(), bin, s.args...) // outlives any one call
	s.cmd.Dir = s.Dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.ping() {
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server on %s not ready after 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops the server (SIGKILL when kill is set, else SIGTERM) and
// starts it again on the same port and directory.
func (s *Server) Restart(kill bool) {
	s.t.Helper()
	bin := s.cmd.Path
	if kill {
		_ = s.cmd.Process.Kill()
	} else {
		_ = s.cmd.Process.Signal(os.Interrupt)
	}
	_ = s.cmd.Wait()
	s.cmd = nil
	s.start(bin)
}

// Stop stops the server. It is idempotent.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *Server) ping() bool {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	// A password-protected server answers NOAUTH: it is up all the same.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}
