package aggregator_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/pkg/windowing"
)

const partitions = 8

type instance struct {
	svc    *aggregator.Service
	bus    *jsbus.Bus
	cancel context.CancelFunc
	done   chan struct{}
}

func (in *instance) stop() { in.cancel(); <-in.done }

func startInstance(t *testing.T, url, name string) *instance {
	t.Helper()
	return startInstanceWith(t, url, name, nil)
}

// startInstanceWith starts an instance after setup (if any) has seen its
// service.
func startInstanceWith(t *testing.T, url, name string, setup func(*aggregator.Service)) *instance {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	if os.Getenv("AGG_DEBUG") == "" {
		log = zerolog.Nop()
	}
	svc, err := aggregator.New(aggregator.Options{
		Logger: &log, Bus: bus, Partitions: partitions, Instance: name, Window: time.Second, Lateness: 2 * time.Second,
		// The dataset is history (fixed timestamps, so that every run has the
		// same windows): idling closes its windows by the wall clock, so the
		// idle time must outlast any pause in the input under a loaded CI.
		// Membership must not expire while a loaded, race-instrumented
		// machine stalls an instance for a second or two: a live instance
		// taken for dead loses its partitions mid-window (a lease without
		// fencing; see the README).
		IdleAfter: 5 * time.Second, MemberTTL: 4 * time.Second, PinnedTTL: 5 * time.Second, AckWait: 8 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(svc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, bus: bus, cancel: cancel, done: make(chan struct{})}
	go func() { _ = svc.Run(ctx); _ = bus.Close(); close(in.done) }()
	t.Cleanup(func() {
		select {
		case <-in.done:
		default:
			in.stop()
		}
	})
	return in
}

// waitSpread waits until the instances own every partition between them,
// each at least one.
func waitSpread(t *testing.T, ins []*instance, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		owned, ok := 0, true
		for _, in := range ins {
			n := len(in.svc.Stats().Partitions)
			owned += n
			ok = ok && n > 0
		}
		if ok && owned == partitions {
			return time.Since(start)
		}
		if time.Since(start) > within {
			var got [][]int
			for _, in := range ins {
				got = append(got, in.svc.Stats().Partitions)
			}
			t.Fatalf("partitions not spread within %s: %v", within, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitConsuming waits until in has aggregated some of the input, so that
// stopping it happens mid-stream rather than before it started.
func waitConsuming(t *testing.T, in *instance) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() bool { return in.svc.Stats().Events > 0 }, "the instance to aggregate its first events")
}

// liveBase is the base time at which event i of the dataset is stamped now:
// live input resumes at the wall clock however long the takeover took. (With
// the first half's base, a takeover slowed down by a loaded machine would
// stamp the second half behind windows the idle sources rightly closed by
// the clock meanwhile, and count them late.)
func liveBase(i int) time.Time { return time.Now().Add(-time.Duration(i) * 500 * time.Microsecond) }

// dataset publishes a fixed workload: 24 sources × 4 operations, 24,000
// events over 12 s of event time; durations are a function of the index.
func publishDataset(t *testing.T, url string, base time.Time, from, to int) {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.BatchMaxEvents = 50
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	for i := from; i < to; i++ {
		ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprint("svc-", i%24))
		ev.Operation = fmt.Sprint("op-", (i/24)%4)
		ev.DurationMS = math.Round(math.Exp(float64(i%97)/30)*1000) / 1000
		ev.Timestamp = base.Add(time.Duration(i) * 500 * time.Microsecond)
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// collectWindows subscribes to the aggregates on srv until they count want
// events.
func collectWindows(t *testing.T, srv *natsserver.Server, want uint64, ins []*instance) map[string]*events.AggregateEvent {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	var mu sync.Mutex
	ws := map[string]*events.AggregateEvent{}
	_, err = bus.Subscribe(t.Context(), "performance.metric.aggregated", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		mu.Lock()
		ws[ev.Metadata().ID] = ev.(*events.AggregateEvent)
		mu.Unlock()
		return nil
	}), events.DeliverAll())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		var n uint64
		for _, w := range ws {
			n += w.Count
		}
		mu.Unlock()
		if n == want {
			break
		}
		if n > want || time.Now().After(deadline) {
			var sts []aggregator.Stats
			for _, in := range ins {
				sts = append(sts, in.svc.Stats())
			}
			t.Fatalf("windows count %d events, want %d; instances: %+v", n, want, sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	return bySeriesWindow(t, ws)
}

// bySeriesWindow merges the windows stored for each series and window
// (a first window and its amendments) under their series-window key.
func bySeriesWindow(t *testing.T, ws map[string]*events.AggregateEvent) map[string]*events.AggregateEvent {
	t.Helper()
	parts := map[string][]*events.AggregateEvent{}
	for _, w := range ws {
		parts[w.SeriesWindowKey()] = append(parts[w.SeriesWindowKey()], w)
	}
	out := make(map[string]*events.AggregateEvent, len(parts))
	for key, p := range parts {
		if len(p) == 1 {
			out[key] = p[0]
			continue
		}
		m, err := windowing.Merge(p)
		if err != nil {
			t.Fatalf("merge the windows of %s: %v", key, err)
		}
		out[key] = m
	}
	return out
}

// expectedWindows computes the windows of publishDataset's events [0, total)
// from base (whole seconds): count, min and max per series and 1 s window.
func expectedWindows(base time.Time, total int) map[string]*events.AggregateEvent {
	out := map[string]*events.AggregateEvent{}
	for i := range total {
		src, op := fmt.Sprint("svc-", i%24), fmt.Sprint("op-", (i/24)%4)
		d := math.Round(math.Exp(float64(i%97)/30)*1000) / 1000
		start := base.Add(time.Duration(i) * 500 * time.Microsecond).Truncate(time.Second)
		id := events.AggregateID(events.OperationComplete, src, op, start)
		w := out[id]
		if w == nil {
			w = &events.AggregateEvent{Min: d, Max: d}
			out[id] = w
		}
		w.Count++
		w.Min, w.Max = min(w.Min, d), max(w.Max, d)
	}
	return out
}

// TestScaleOutGivesIdenticalAggregates runs the same workload through 1, 2
// and 3 instances: every window has exactly the count, min and max the data
// gives, the quantiles agree between runs, and with more than one instance
// every instance aggregates a share.
func TestScaleOutGivesIdenticalAggregates(t *testing.T) {
	const total = 24_000
	base := time.Now().Add(-time.Minute).Truncate(time.Second) // the same windows in every run
	want := expectedWindows(base, total)
	var first map[string]*events.AggregateEvent
	for _, n := range []int{1, 2, 3} {
		srv := natstest.Start(t)
		var ins []*instance
		for i := range n {
			ins = append(ins, startInstance(t, srv.ClientURL(), fmt.Sprint("i", i)))
		}
		waitSpread(t, ins, 30*time.Second)
		publishDataset(t, srv.ClientURL(), base, 0, total)
		got := collectWindows(t, srv, total, ins)
		for i, in := range ins {
			if st := in.svc.Stats(); st.Events == 0 || st.Emitted == 0 {
				t.Errorf("%d instances: instance %d had no work: %+v", n, i, st)
			}
			in.stop()
		}
		if len(got) != len(want) {
			t.Fatalf("%d instances emitted %d windows, want %d", n, len(got), len(want))
		}
		for id, w := range want {
			o := got[id]
			if o == nil || o.Count != w.Count || o.Min != w.Min || o.Max != w.Max {
				t.Fatalf("%d instances: window %s is %+v, want count %d, min %v, max %v", n, id, o, w.Count, w.Min, w.Max)
			}
			if first != nil && (math.Abs(o.P95-first[id].P95) > 0.01*o.P95 || math.Abs(o.P50-first[id].P50) > 0.01*o.P50) {
				t.Fatalf("%d instances: window %s quantiles %+v, with one instance %+v", n, id, o, first[id])
			}
		}
		if first == nil {
			first = got
		}
	}
}

// TestTakeoverAfterAnInstanceStops stops one of three instances mid-stream:
// its partitions are taken over within 30 s and no event is lost.
func TestTakeoverAfterAnInstanceStops(t *testing.T) {
	const total = 24_000
	srv := natstest.Start(t)
	ins := []*instance{startInstance(t, srv.ClientURL(), "a"), startInstance(t, srv.ClientURL(), "b"), startInstance(t, srv.ClientURL(), "c")}
	waitSpread(t, ins, 30*time.Second)
	base := time.Now() // live: event time runs with the clock
	publishDataset(t, srv.ClientURL(), base, 0, total/2)
	waitConsuming(t, ins[1]) // mid-stream: it holds work when it goes
	ins[1].stop()
	took := waitSpread(t, []*instance{ins[0], ins[2]}, 30*time.Second)
	t.Logf("partitions of the stopped instance taken over in %s", took)
	publishDataset(t, srv.ClientURL(), liveBase(total/2), total/2, total)
	ws := collectWindows(t, srv, total, ins)
	if len(ws) == 0 {
		t.Fatal("no windows")
	}
}

func TestAssignSpreadsAndMovesLittle(t *testing.T) {
	members := []string{"a", "b", "c"}
	counts := map[string]int{}
	owner := map[int]string{}
	for _, m := range members {
		for p := range aggregator.Assign(64, members, m) {
			counts[m]++
			if owner[p] != "" {
				t.Fatalf("partition %d owned by %s and %s", p, owner[p], m)
			}
			owner[p] = m
		}
	}
	if len(owner) != 64 || counts["a"] < 10 || counts["b"] < 10 || counts["c"] < 10 {
		t.Fatalf("64 partitions over 3 members: %v", counts)
	}
	moved := 0
	for _, m := range []string{"a", "c"} {
		for p := range aggregator.Assign(64, []string{"a", "c"}, m) {
			if owner[p] != m && owner[p] != "b" {
				moved++
			}
		}
	}
	if moved != 0 {
		t.Errorf("%d partitions moved between the members that stayed", moved)
	}
}

// TestTakeoverAfterAnInstanceCrashes cuts one of three instances off NATS
// mid-stream, the way a kill -9 does: nothing is handed back, its held
// messages stay unacknowledged and its membership key stays until it
// expires. The others take its partitions over, the held messages come back
// after AckWait, and every event is counted exactly once.
func TestTakeoverAfterAnInstanceCrashes(t *testing.T) {
	const total = 24_000
	srv := natstest.Start(t)
	ins := []*instance{startInstance(t, srv.ClientURL(), "a"), startInstance(t, srv.ClientURL(), "b"), startInstance(t, srv.ClientURL(), "c")}
	waitSpread(t, ins, 30*time.Second)
	base := time.Now()
	publishDataset(t, srv.ClientURL(), base, 0, total/2)
	waitConsuming(t, ins[1])  // mid-stream: it holds work when it goes
	ins[1].bus.Conn().Close() // the crash: no goodbye of any kind
	took := waitSpread(t, []*instance{ins[0], ins[2]}, 30*time.Second)
	t.Logf("partitions of the crashed instance taken over in %s", took)
	publishDataset(t, srv.ClientURL(), liveBase(total/2), total/2, total)
	ws := collectWindows(t, srv, total, ins)
	if len(ws) == 0 {
		t.Fatal("no windows")
	}
}
