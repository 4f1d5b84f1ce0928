package jsbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// TestGroupMembersShareWork runs three members of one group, each on its own
// connection as separate processes would be, with the bus's default (large)
// pulls, and checks that every event reaches exactly one member and that each
// member handles at least a fifth of them.
func TestGroupMembersShareWork(t *testing.T) {
	srv := natstest.Start(t)
	pub := natstest.Connect(t, srv.ClientURL())
	const members, n = 3, 3000
	var mu sync.Mutex
	seen := map[string]int{} // event id -> deliveries within the group
	got := make([]int, members)
	for i := range members {
		bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) { c.Name = "member" })
		sub, err := bus.Subscribe(t.Context(), "performance.>", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			time.Sleep(50 * time.Microsecond) // some work, as a real member does
			mu.Lock()
			seen[ev.Metadata().ID]++
			got[i]++
			mu.Unlock()
			return nil
		}), events.Group("workers"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	for range n {
		ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
		ev.Operation, ev.DurationMS = "db.query", 1
		if err := pub.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		total := len(seen)
		mu.Unlock()
		if total == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group handled %d of %d events", total, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s handled %d times within the group", id, k)
		}
	}
	for i, k := range got {
		if k < n/5 {
			t.Errorf("member %d handled %d of %d events, want at least %d (a fifth); shares %v", i, k, n, n/5, got)
		}
	}
	t.Logf("shares of %d events: %v", n, got)
}
