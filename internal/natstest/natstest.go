// Package natstest starts real embedded nats-servers for tests: random
// ports, a temporary store directory, shutdown at the end of the test.
package natstest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

// Connect opens a JetStream bus to url with the default configuration
// (streams applied), adjusted by mutate, and closes it when the test ends.
func Connect(t testing.TB, url string, mutate ...func(*jsbus.Config)) *jsbus.Bus {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	for _, f := range mutate {
		f(&cfg)
	}
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	return bus
}

// Start runs a JetStream server listening on a random loopback port, with a
// store under t.TempDir(), stopped when the test ends. opts may adjust the
// options before start.
func Start(t testing.TB, opts ...func(*natsserver.Options)) *natsserver.Server {
	t.Helper()
	o := natsserver.Options{StoreDir: filepath.Join(t.TempDir(), "js"), Port: -1}
	for _, f := range opts {
		f(&o)
	}
	return StartWith(t, o)
}

// StartWith runs a server with exactly o, stopped when the test ends.
func StartWith(t testing.TB, o natsserver.Options) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(o)
	if err != nil {
		t.Fatalf("start nats server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Cluster runs an n-member JetStream cluster on loopback, each member with
// its own store directory. Members are stopped when the test ends.
func Cluster(t testing.TB, n int) []*natsserver.Server {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = testutil.FreePort(t)
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(ports[i])
	}
	dir := t.TempDir()
	servers := make([]*natsserver.Server, n)
	for i := range servers {
		o := natsserver.Options{
			StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Name:     fmt.Sprintf("n%d", i),
			Port:     -1,
			Cluster:  natsserver.ClusterOptions{Name: "jetmon-test", Port: ports[i], Routes: routes},
		}
		servers[i] = StartWith(t, o)
	}
	return servers
}
