package jsbus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natsserver"
	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

// TestClusterLeaderFailover publishes 100,000 events to R3 streams on a
// three-node cluster, shuts the stream leader down part-way, and then finds
// every acknowledged event exactly once (and no event twice).
func TestClusterLeaderFailover(t *testing.T) {
	const total, writers = 100_000, 32
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

	var acked sync.Map
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := w; i < total; i += writers {
				ev := eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i))
				if n := sent.Add(1); n == total/4 {
					go func() { leader.Stop(); close(killed) }()
				}
				if err := bus.Publish(ctx, ev); err != nil {
					failed.Add(1)
					continue
				}
				acked.Store(ev.Metadata().ID, true)
			}
		})
	}
	wg.Wait()
	<-killed
	nAcked := 0
	acked.Range(func(any, any) bool { nAcked++; return true })
	t.Logf("published %d: %d acknowledged, %d failed during the failover", total, nAcked, failed.Load())
	if nAcked < total/2 {
		t.Fatalf("only %d of %d publishes were acknowledged", nAcked, total)
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
	missing := 0
	acked.Range(func(k, _ any) bool {
		if seen[k.(string)] == 0 {
			missing++
		}
		return true
	})
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if missing > 0 || dups > 0 {
		t.Fatalf("%d acknowledged events missing, %d events stored more than once (of %d stored)", missing, dups, len(seen))
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
