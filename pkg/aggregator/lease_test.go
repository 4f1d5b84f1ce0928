package aggregator_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
)

// watchOwnership samples which partitions each instance runs until stop is
// closed, and reports every moment two instances ran one partition.
func watchOwnership(ins []*instance, stop <-chan struct{}) (overlaps func() []string) {
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			owner := map[int]int{}
			for i, in := range ins {
				for _, p := range in.svc.Stats().Partitions {
					if o, ok := owner[p]; ok {
						mu.Lock()
						seen = append(seen, fmt.Sprintf("partition %d run by instances %d and %d", p, o, i))
						mu.Unlock()
					}
					owner[p] = i
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// TestOnlyTheLeaseHolderRunsAPartition gives two instances views of the
// membership that disagree — each sees only itself, as a live instance
// its peers took for dead does — so that both claim every partition. The
// partition leases let only one run each partition at any moment (without
// them both ran all eight, and windows computed twice under one id lost
// the events only the second held); when the holder stops, the other takes
// every partition over, and every event is counted exactly once.
func TestOnlyTheLeaseHolderRunsAPartition(t *testing.T) {
	const total = 24_000
	srv := natstest.Start(t)
	alone := func(name string) func(*aggregator.Service) {
		return func(s *aggregator.Service) { aggregator.SetMembersView(s, func() []string { return []string{name} }) }
	}
	ins := []*instance{
		startInstanceWith(t, srv.ClientURL(), "a", alone("a")),
		startInstanceWith(t, srv.ClientURL(), "b", alone("b")),
	}
	stop := make(chan struct{})
	overlaps := watchOwnership(ins, stop)
	// Between them they run every partition (each wants all eight, and
	// the leases split them by who came first).
	waitSpreadAny(t, ins, 30*time.Second)
	base := time.Now()
	publishDataset(t, srv.ClientURL(), base, 0, total/2)
	holder := 0
	if len(ins[1].svc.Stats().Partitions) > len(ins[0].svc.Stats().Partitions) {
		holder = 1
	}
	waitConsuming(t, ins[holder])
	ins[holder].stop()
	other := ins[1-holder]
	took := waitSpreadAny(t, []*instance{other}, 30*time.Second)
	t.Logf("every partition run by the other instance %s after the holder stopped", took)
	publishDataset(t, srv.ClientURL(), liveBase(total/2), total/2, total)
	collectWindows(t, srv, total, ins)
	close(stop)
	if o := overlaps(); len(o) > 0 {
		t.Fatalf("%d samples had a partition run twice, first: %s", len(o), o[0])
	}
}

// waitSpreadAny waits until the instances run every partition between them
// (one instance may run none).
func waitSpreadAny(t *testing.T, ins []*instance, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		run := map[int]bool{}
		for _, in := range ins {
			for _, p := range in.svc.Stats().Partitions {
				run[p] = true
			}
		}
		if len(run) == partitions {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("partitions run within %s: %v", within, run)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAPartitionWhoseLeaseIsTakenStops writes another instance's name into
// a partition's lease, as a peer that took the key over would: the owner
// stops running the partition at its next renewal, without emitting, and
// takes it back once the forged lease has expired; every event is still
// counted exactly once.
func TestAPartitionWhoseLeaseIsTakenStops(t *testing.T) {
	const total = 24_000
	srv := natstest.Start(t)
	in := startInstance(t, srv.ClientURL(), "a")
	waitSpreadAny(t, []*instance{in}, 30*time.Second)
	publishDataset(t, srv.ClientURL(), time.Now(), 0, total/2)
	waitConsuming(t, in)

	bus := natstest.Connect(t, srv.ClientURL())
	kv, err := bus.JetStream().KeyValue(t.Context(), aggregator.OwnersBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "p0", []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	runs0 := func() bool { return slices.Contains(in.svc.Stats().Partitions, 0) }
	testutil.WaitFor(t, 30*time.Second, func() bool { return !runs0() }, "the owner to let partition 0 go")
	testutil.WaitFor(t, 30*time.Second, runs0, "the owner to take partition 0 back once the forged lease expired")
	publishDataset(t, srv.ClientURL(), liveBase(total/2), total/2, total)
	collectWindows(t, srv, total, []*instance{in})
}
