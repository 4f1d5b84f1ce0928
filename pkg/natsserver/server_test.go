package natsserver_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/natsserver"
)

func TestStoreDirIsLockedUntilStop(t *testing.T) {
	dir := t.TempDir()
	s, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natsserver.Start(natsserver.Options{StoreDir: dir}); err == nil || !strings.Contains(err.Error(), "is in use by process") {
		s.Stop()
		t.Fatalf("second server on one store dir: %v", err)
	}
	s.Stop()
	s2, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("restart after Stop: %v", err)
	}
	s2.Stop()
}

func TestBusyClientPortFailsAtOnce(t *testing.T) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	start := time.Now()
	_, err = natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil || !strings.Contains(err.Error(), "client port 127.0.0.1:") || time.Since(start) > 5*time.Second {
		t.Fatalf("busy port: %v after %v", err, time.Since(start))
	}
}
