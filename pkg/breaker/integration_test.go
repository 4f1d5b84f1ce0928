package breaker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
)

// restartable is a real nats-server that can be stopped and started again on
// the same port and store.
type restartable struct {
	t    *testing.T
	dir  string
	port int
	srv  *natsserver.Server
}

func newRestartable(t *testing.T) *restartable {
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &restartable{t: t, dir: filepath.Join(t.TempDir(), "js"), port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	s, err := natsserver.Start(natsserver.Options{StoreDir: r.dir, Port: r.port})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = s
}

func (r *restartable) stop() {
	if r.srv != nil {
		r.srv.Stop()
		r.srv = nil
	}
}

func (r *restartable) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", r.port) }

// breakerOnJetStream puts a breaker in front of a JetStream bus with no
// wiring at all: breaker.New registers itself for the bus's asynchronous ack
// failures, and the tests that use this fail if it did not (events whose ack
// never came would be lost instead of re-sent).
func breakerOnJetStream(t *testing.T, url string, o breaker.Options) (*breaker.Publisher, *jsbus.Bus) {
	t.Helper()
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.PublishTimeout = 2 * time.Second
	cfg.ReconnectWait = 100 * time.Millisecond
	cfg.CloseTimeout = 5 * time.Second
	bus, err := jsbus.Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	br, err := breaker.New(bus, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	return br, bus
}

// storedIDs reads every performance event back and counts each id.
func storedIDs(t *testing.T, bus *jsbus.Bus) map[string]int {
	t.Helper()
	seen := map[string]int{}
	_, err := bus.Replay(t.Context(), "performance.>", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		seen[ev.Metadata().ID]++
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

type sample struct {
	id      string
	latency time.Duration
	outage  bool
	err     error
}

// TestServerOutage stops the server while the application keeps publishing:
// the breaker opens, Publish keeps accepting (into the spool), nothing
// panics, and once the server is back every event Publish accepted is stored
// exactly once. Each phase ends on what the breaker reports, not on a timer:
// open with 500 events spooled, closed again with 500 more published
// straight through. How fast Publish is while open is measured by
// BenchmarkPublishOpen, not asserted here (wall-clock bounds under -race on a
// loaded machine only flake).
func TestServerOutage(t *testing.T) {
	srv := newRestartable(t)
	br, bus := breakerOnJetStream(t, srv.url(), breaker.Options{
		ConsecutiveFailures: 3, OpenTimeout: 500 * time.Millisecond, PublishBudget: 5 * time.Millisecond, SpoolMaxEvents: 100_000,
	})
	var outage atomic.Bool
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev := eventstest.NewEvent(events.OperationComplete, fmt.Sprint(i))
			start := time.Now()
			err := br.Publish(context.Background(), ev)
			s := sample{id: ev.Metadata().ID, latency: time.Since(start), outage: outage.Load(), err: err}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() {
		select {
		case <-done:
		default:
			close(stop)
			<-done
		}
	}()
	testutil.WaitFor(t, 30*time.Second, func() bool { return br.Stats().Published >= 500 }, "500 events published with the server up")
	outage.Store(true)
	srv.stop()
	testutil.WaitFor(t, 30*time.Second, func() bool { return br.State() == breaker.Open }, "the breaker to open")
	spooled := br.Stats().Spooled
	testutil.WaitFor(t, 30*time.Second, func() bool {
		st := br.Stats()
		return st.State == breaker.Open && st.Spooled >= spooled+500
	}, "500 more events spooled while open")
	srv.start()
	outage.Store(false)
	testutil.WaitFor(t, 30*time.Second, func() bool { return br.State() == breaker.Closed && bus.IsConnected() }, "the breaker to close on a reconnected bus")
	published := br.Stats().Published
	testutil.WaitFor(t, 30*time.Second, func() bool { return br.Stats().Published >= published+500 }, "500 events published after recovery")
	close(stop)
	<-done

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := br.WaitDrained(ctx); err != nil { // acks that failed during the flush were spooled again
		t.Fatal(err)
	}

	var during []time.Duration
	for _, s := range samples {
		if s.err != nil {
			t.Fatalf("Publish returned %v", s.err)
		}
		if s.outage {
			during = append(during, s.latency)
		}
	}
	slices.Sort(during)
	st := br.Stats()
	t.Logf("%d publishes, %d during the outage: p50 %s, p99 %s, max %s (informational); stats %+v",
		len(samples), len(during), during[len(during)/2], during[len(during)*99/100], during[len(during)-1], st)
	if st.Spooled == 0 || st.Drained != st.Spooled || st.Dropped != 0 || st.Permanent != 0 || st.SpoolDepth != 0 {
		t.Errorf("after recovery: %+v; want every spooled event drained, none dropped or discarded", st)
	}
	seen := storedIDs(t, bus)
	missing, dups := 0, 0
	for _, s := range samples {
		switch seen[s.id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	if missing > 0 || dups > 0 || len(seen) != len(samples) {
		t.Errorf("%d of %d accepted events missing, %d stored more than once, %d stored in all", missing, len(samples), dups, len(seen))
	}
	if br.State() != breaker.Closed {
		t.Errorf("after recovery the breaker is %s, want closed", br.State())
	}
}

// TestTinySpoolDropCountIsExact: with a spool of 50 events and the server
// down, the reported drops are exactly the published events that never
// arrived.
func TestTinySpoolDropCountIsExact(t *testing.T) {
	srv := newRestartable(t)
	br, bus := breakerOnJetStream(t, srv.url(), breaker.Options{
		ConsecutiveFailures: 2, OpenTimeout: 200 * time.Millisecond, PublishBudget: time.Millisecond, SpoolMaxEvents: 50,
	})
	publishN := func(n int, from int) {
		for i := range n {
			_ = br.Publish(t.Context(), eventstest.NewEvent(events.OperationComplete, fmt.Sprint(from+i)))
		}
	}
	publishN(100, 0)
	// Let the first acks arrive: an ack lost with the server leaves an event
	// whose fate is unknown (it may be stored), which a full spool would
	// count as dropped — this test is about the spool, not that ambiguity.
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	testutil.WaitFor(t, 20*time.Second, func() bool { return !bus.IsConnected() }, "the bus to go down")
	publishN(300, 100)
	srv.start()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	testutil.WaitFor(t, 20*time.Second, func() bool { return br.State() == breaker.Closed && bus.IsConnected() }, "the breaker to close on a reconnected bus")
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	delivered := len(storedIDs(t, bus))
	st := br.Stats()
	if st.Dropped == 0 || int(st.Dropped) != 400-delivered {
		t.Errorf("published 400, delivered %d, reported dropped %d; want dropped = %d", delivered, st.Dropped, 400-delivered)
	}
}

// TestDiskSpoolSurvivesKill: a process spools events to disk and is killed
// with SIGKILL; the next start on the same directory delivers them all,
// exactly once.
func TestDiskSpoolSurvivesKill(t *testing.T) {
	srv := newRestartable(t)
	bin := filepath.Join(t.TempDir(), "spoolfill")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../internal/tools/spoolfill").CombinedOutput(); err != nil {
		t.Fatalf("build spoolfill: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "spool")
	const n = 500
	cmd := exec.CommandContext(t.Context(), bin, "-dir", dir, "-n", fmt.Sprint(n), "-url", srv.url())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "READY" {
		ids = append(ids, sc.Text())
	}
	if len(ids) != n {
		_ = cmd.Process.Kill()
		t.Fatalf("spoolfill printed %d ids, want %d", len(ids), n)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	br, bus := breakerOnJetStream(t, srv.url(), breaker.Options{SpoolDir: dir})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := storedIDs(t, bus)
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("event %s stored %d times after the restart, want 1 (%d of %d stored)", id, seen[id], len(seen), n)
		}
	}
}
