package jsbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is the bus configuration for tests: a real server at url, fast
// redelivery so that failure paths finish quickly.
func testConfig(url string) jsbus.Config {
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.RedeliveryDelay = 50 * time.Millisecond
	cfg.CloseTimeout = 5 * time.Second
	return cfg
}

func connect(t *testing.T, cfg jsbus.Config) *jsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := jsbus.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return b
}

func harness(mutate func(*jsbus.Config)) eventstest.Harness {
	var mu sync.Mutex
	urls := map[events.Bus]string{}
	open := func(t *testing.T, url string) events.Bus {
		cfg := testConfig(url)
		if mutate != nil {
			mutate(&cfg)
		}
		b := connect(t, cfg)
		mu.Lock()
		urls[b] = url
		mu.Unlock()
		return b
	}
	return eventstest.Harness{
		NewBackend: func(t *testing.T) events.Bus {
			return open(t, natstest.Start(t).ClientURL())
		},
		Reconnect: func(t *testing.T, old events.Bus) events.Bus {
			mu.Lock()
			url := urls[old]
			mu.Unlock()
			return open(t, url)
		},
		Flush: func(ctx context.Context, bus events.Bus) error { return bus.(*jsbus.Bus).Flush(ctx) },
		Features: eventstest.Features{
			Replay: true, Durable: true, DurableAcrossRestart: true, Groups: true,
			OrderedPerSubject: true, Redelivery: true,
		},
	}
}

// TestConformance runs the suite with async publishing (the default):
// Publish returns once the event is handed to the connection.
func TestConformance(t *testing.T) {
	h := harness(nil)
	h.Features.AsyncPublish = true
	eventstest.Run(t, h)
}

// TestConformanceSyncPublish runs it with Publish waiting for the store, so
// the suite never flushes.
func TestConformanceSyncPublish(t *testing.T) {
	eventstest.Run(t, harness(func(c *jsbus.Config) { c.SyncPublish = true }))
}

// TestConformanceBatched runs it with batching: events share messages (and
// their sequence), and Publish returns before the batch is even sent.
func TestConformanceBatched(t *testing.T) {
	h := harness(func(c *jsbus.Config) { c.BatchMaxEvents = 50 })
	h.Features.SharedSequences = true
	h.Features.AsyncPublish = true
	h.Features.BatchedPublish = true
	eventstest.Run(t, h)
}
