package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// natsServerModule is the nats-server the harness builds: the version this
// module (and jetmon's go.mod) requires, so the broker under test is the one
// jetmon embeds.
const natsServerModule = "github.com/nats-io/nats-server/v2"

// server is a nats-server child process with JetStream on a file store in a
// temporary directory, listening on a free loopback port.
type server struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	done chan struct{} // closed when the process has exited
	exit error         // its exit status, once done is closed
}

// buildServer builds nats-server into dir and returns its path.
func buildServer(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, natsServerModule)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", natsServerModule, err)
	}
	return bin, nil
}

func freePort() (int, error) {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts bin and waits until it accepts connections with
// JetStream ready.
func startServer(ctx context.Context, bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "jetmon-peers-*")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, // stop ends it, not ctx: the store must be flushed
		"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // its log: not the harness's output
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, url: fmt.Sprintf("nats://127.0.0.1:%d", port), dir: dir, done: make(chan struct{})}
	go func() { defer close(s.done); s.exit = cmd.Wait() }() // owned: ends with the process, which stop ends
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(s.url)
		if err == nil {
			js, jerr := nc.JetStream()
			if jerr == nil {
				_, err = js.AccountInfo()
			} else {
				err = jerr
			}
			nc.Close()
			if err == nil {
				return s, nil
			}
		}
		select {
		case <-s.done:
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("nats-server exited before it was ready: %w", s.exit)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("nats-server not ready after 30 s: %w", err)
		}
	}
}

// cpu returns the CPU time (user and system) the process has used, from
// /proc (0 where there is none).
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the parenthesised command name; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 a second).
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s), waits for it and
// removes its store.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done: // ended by our signal: its exit status says nothing
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = os.RemoveAll(s.dir)
}
