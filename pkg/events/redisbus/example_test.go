package redisbus_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/redisbus"
)

// A production configuration on Redis: DefaultConfig with the server's
// host and port, and Connect give the same bus interface as the in-memory and JetStream
// buses. (The example starts its own redis-server when one is installed.)
func ExampleConnect() {
	host, port, stop := exampleRedis()
	defer stop()
	cfg := redisbus.DefaultConfig()
	cfg.Host, cfg.Port = host, port
	bus, err := redisbus.Connect(context.Background(), cfg)
	if err != nil {
		fmt.Println("no redis:", err)
		return
	}
	defer func() { _ = bus.Close() }()
	got := make(chan events.Event, 1)
	_, _ = bus.Subscribe(context.Background(), "health.component.*", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		got <- ev
		return nil
	}), events.Durable("health-dashboard"))
	_ = bus.Publish(context.Background(), events.NewHealthEvent(events.ComponentDegraded, "agent", "cache"))
	ev := (<-got).(*events.HealthEvent)
	fmt.Println(ev.Type, ev.Component, ev.Status)
	// Output: health.component.degraded cache degraded
}

func exampleRedis() (string, int, func()) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1", 6379, func() {}
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, _ := os.MkdirTemp("", "redis-example")
	cmd := exec.CommandContext(context.Background(), "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir)
	if cmd.Start() != nil {
		return "127.0.0.1", 6379, func() { _ = os.RemoveAll(dir) }
	}
	for range 200 {
		if c, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", l.Addr().String()); err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "127.0.0.1", port, func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
}
