package jsbus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// TestClusterLeaderFailover publishes events to R3 streams on a three-node
// cluster and shuts the stream leader down part-way. Then it sends again,
// with the same ids, every event whose publish failed and every event the old
// leader acknowledged — a publisher that lost its acks does exactly that —
// and reads the stream back: each event generated is stored exactly once and
// nothing else is stored. It fails when a failed write is lost, when the new
// leader stores a re-sent event again (its dedup state did not survive the
// leader change), or when the leader never changed.
func TestClusterLeaderFailover(t *testing.T) {
	const total, writers = 20_000, 32
	nodes := natstest.Cluster(t, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.ClientURL()
	}
	cfg := testConfig(urls[0])
	cfg.URLs = urls
	cfg.Streams.Replicas = 3
	cfg.SyncPublish = true
	cfg.PublishTimeout = 2 * time.Second
	cfg.ReconnectWait = 100 * time.Millisecond
	bus := connectRetrying(t, cfg, 60*time.Second)
	defer func() { _ = bus.Close() }()

	ctx := t.Context()
	stream, err := bus.JetStream().Stream(ctx, streams.Performance)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil || info.Config.Replicas != 3 {
		t.Fatalf("stream is not R3 in a cluster: %+v, %v", info, err)
	}
	var leader *natsserver.Server
	for _, n := range nodes {
		if n.Name() == info.Cluster.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is not one of the nodes", info.Cluster.Leader)
	}

	// The oracle: every event this test generates, by id.
	evs := make([]events.Event, total)
	want := make(map[string]bool, total)
	for i := range evs {
		evs[i] = eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i))
		want[evs[i].Metadata().ID] = true
	}
	var (
		mu          sync.Mutex
		failed      []events.Event // publish returned an error: outcome unknown
		beforeLeave []events.Event // acknowledged before the leader was gone
		sent        atomic.Int64
		wg          sync.WaitGroup
	)
	killed := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := w; i < total; i += writers {
				if n := sent.Add(1); n == total/4 {
					go func() { leader.Stop(); close(killed) }()
				}
				err := bus.Publish(ctx, evs[i])
				mu.Lock()
				switch {
				case err != nil:
					failed = append(failed, evs[i])
				case !isClosed(killed):
					beforeLeave = append(beforeLeave, evs[i])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-killed
	t.Logf("published %d: %d failed during the failover, %d acknowledged by the old leader", total, len(failed), len(beforeLeave))
	if len(beforeLeave) == 0 {
		t.Fatal("no event was acknowledged before the leader stopped: the leader change is not exercised")
	}
	newLeader := ""
	testutil.WaitFor(t, time.Minute, func() bool {
		info, err := stream.Info(ctx)
		if err == nil && info.Cluster != nil {
			newLeader = info.Cluster.Leader
		}
		return newLeader != "" && newLeader != leader.Name()
	}, "a new stream leader")

	// Send again: the failed events until each is acknowledged, and the ones
	// the old leader stored, which the new leader must recognise.
	resend := slices.Concat(failed, beforeLeave)
	deadline := time.Now().Add(time.Minute)
	for len(resend) > 0 {
		var again []events.Event
		for _, ev := range resend {
			if err := bus.Publish(ctx, ev); err != nil {
				again = append(again, ev)
			}
		}
		if len(again) > 0 && time.Now().After(deadline) {
			t.Fatalf("%d events still not acknowledged by leader %s after a minute of re-sending", len(again), newLeader)
		}
		resend = again
	}

	seen := make(map[string]int, total)
	readCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		clear(seen)
		_, err = bus.Replay(readCtx, "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
			seen[ev.Metadata().ID]++
			return nil
		}))
		if err == nil || readCtx.Err() != nil {
			break
		}
		t.Logf("replay during re-election: %v; retrying", err) // a new leader may still be settling
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	var missing, dups, unknown int
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	for id, n := range seen {
		switch {
		case !want[id]:
			unknown++
		case n > 1:
			dups++
		}
	}
	if missing > 0 || dups > 0 || unknown > 0 || len(seen) != total {
		t.Fatalf("of %d events generated: %d missing, %d stored more than once, %d stored that were never generated (%d distinct stored)",
			total, missing, dups, unknown, len(seen))
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func connectRetrying(t *testing.T, cfg jsbus.Config, within time.Duration) *jsbus.Bus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := jsbus.Connect(ctx, cfg)
		cancel()
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("Connect to the cluster: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // the cluster may still be electing its meta leader
	}
}
