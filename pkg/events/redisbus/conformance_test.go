package redisbus_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/redistest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/redisbus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(addr string) redisbus.Config {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := redisbus.DefaultConfig()
	cfg.Host, cfg.Port = host, p
	cfg.RedeliveryDelay = 20 * time.Millisecond
	cfg.BlockFor = 200 * time.Millisecond
	cfg.CloseTimeout = 5 * time.Second
	return cfg
}

func connect(t testing.TB, cfg redisbus.Config) *redisbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redisbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	addrs := map[events.Bus]string{}
	open := func(t *testing.T, addr string) events.Bus {
		b := connect(t, testConfig(addr))
		mu.Lock()
		addrs[b] = addr
		mu.Unlock()
		return b
	}
	eventstest.Run(t, eventstest.Harness{
		NewBackend: func(t *testing.T) events.Bus { return open(t, redistest.Start(t).Addr) },
		Reconnect: func(t *testing.T, old events.Bus) events.Bus {
			mu.Lock()
			addr := addrs[old]
			mu.Unlock()
			return open(t, addr)
		},
		Features: eventstest.Features{
			Replay: true, Durable: true, DurableAcrossRestart: true, Groups: true, OrderedPerSubject: true, Redelivery: true,
		},
	})
}
