package aggregator_test

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

func startService(t *testing.T, cfg aggregator.Options) (*jsbus.Bus, *aggregator.Service) {
	t.Helper()
	srv := natstest.Start(t)
	bcfg := jsbus.DefaultConfig()
	bcfg.URLs = []string{srv.ClientURL()}
	bcfg.BatchMaxEvents = 100
	bus, err := jsbus.Connect(t.Context(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bus = bus
	svc, err := aggregator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = bus.Close() })
	testutil.WaitFor(t, 30*time.Second, svc.Ready, "the aggregator to be ready")
	return bus, svc
}

type collected struct {
	mu sync.Mutex
	ws map[string]*events.AggregateEvent
}

func collectAggregates(t *testing.T, bus *jsbus.Bus) *collected {
	c := &collected{ws: map[string]*events.AggregateEvent{}}
	_, err := bus.Subscribe(t.Context(), "performance.metric.aggregated", events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		c.mu.Lock()
		c.ws[ev.Metadata().ID] = ev.(*events.AggregateEvent)
		c.mu.Unlock()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collected) total() (n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.ws {
		n += w.Count
	}
	return n
}

// TestAggregatesMatchExactValues publishes known durations and compares the
// published aggregates with the exact statistics.
func TestAggregatesMatchExactValues(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Minute, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	r := rand.New(rand.NewPCG(7, 8))
	base := time.Now().Truncate(time.Minute).Add(-2 * time.Minute) // one whole past window
	var ds []float64
	errs := 0
	for i := range 20_000 {
		typ := events.OperationComplete
		if i%25 == 0 {
			typ, errs = events.OperationFailed, errs+1
		}
		ev := events.NewPerformanceEvent(typ, "checkout")
		ev.Operation, ev.DurationMS = "db.query", math.Round(math.Exp(r.NormFloat64())*20*1000)/1000
		ev.Timestamp = base.Add(time.Duration(i) * time.Millisecond)
		ds = append(ds, ev.DurationMS)
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for col.total() < 20_000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	col.mu.Lock()
	n := len(col.ws)
	var w *events.AggregateEvent
	for _, x := range col.ws {
		w = x
	}
	col.mu.Unlock()
	if col.total() != 20_000 || n != 1 {
		t.Fatalf("aggregates count %d events in %d windows, want 20000 in 1 (stats %+v)", col.total(), n, svc.Stats())
	}
	sort.Float64s(ds)
	exact := func(q float64) float64 { return ds[int(math.Ceil(q*float64(len(ds))))-1] }
	var sum float64
	for _, d := range ds { // ascending: the rounding error stays far below the tolerance
		sum += d
	}
	if w.ErrorCount != uint64(errs) || w.Min != ds[0] || w.Max != ds[len(ds)-1] || w.Source != "checkout" || w.Operation != "db.query" {
		t.Errorf("aggregate %+v", w)
	}
	if math.Abs(w.Sum-sum) > 1e-9*sum || math.Abs(w.Avg-sum/20_000) > 1e-9*sum/20_000 {
		t.Errorf("sum %v avg %v; exact %v and %v", w.Sum, w.Avg, sum, sum/20_000)
	}
	for _, q := range []struct {
		name   string
		got, q float64
	}{{"p50", w.P50, 0.5}, {"p90", w.P90, 0.9}, {"p95", w.P95, 0.95}, {"p99", w.P99, 0.99}} {
		if rel := math.Abs(q.got-exact(q.q)) / exact(q.q); rel > 0.01 {
			t.Errorf("%s %.4f vs exact %.4f: %.2f%% off", q.name, q.got, exact(q.q), rel*100)
		}
	}
	if st := svc.Stats(); st.Pending != 0 {
		t.Errorf("input left unacknowledged after the window was published: %+v", st)
	}
}

// TestBadInputIsCountedAndDeadLettered: undecodable messages, unknown types,
// negative durations and absurd timestamps are counted per reason and
// dead-lettered; aggregation goes on.
func TestBadInputIsCountedAndDeadLettered(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	js := bus.JetStream()
	now := time.Now().UTC()
	ts := now.Format(time.RFC3339Nano)
	future := now.Add(48 * time.Hour).Format(time.RFC3339Nano)
	for _, m := range []struct{ subject, data string }{
		{"performance.operation.complete.bad", "{not json"},
		{"performance.operation.complete.bad", `{"event_type":"performance.operation.exploded","id":"u1","source":"bad","timestamp":"` + ts + `"}`},
		{"performance.operation.complete.bad", `{"event_type":"performance.operation.complete","id":"n1","source":"bad","timestamp":"` + ts + `","operation":"op","duration_ms":-3}`},
		{"performance.operation.complete.bad", `{"event_type":"performance.operation.complete","id":"f1","source":"bad","timestamp":"` + future + `","operation":"op","duration_ms":3}`},
	} {
		if _, err := js.Publish(t.Context(), m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	good := events.NewPerformanceEvent(events.OperationComplete, "good")
	good.Operation, good.DurationMS = "op", 5
	if err := bus.Publish(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	_ = bus.Flush(t.Context())
	deadline := time.Now().Add(20 * time.Second)
	for col.total() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if col.total() != 1 {
		t.Fatalf("the good event was not aggregated next to the bad ones: %+v", svc.Stats())
	}
	bad := svc.Stats().BadInput
	for _, reason := range []string{"undecodable", "unknown_type", "invalid_duration_ms", "invalid_timestamp"} {
		if bad[reason] != 1 {
			t.Errorf("bad input by reason %v: want 1 %s", bad, reason)
		}
	}
	dl, _ := js.Stream(t.Context(), streams.DeadLetter)
	if info, _ := dl.Info(t.Context()); info.State.Msgs != 4 {
		t.Errorf("%d dead letters, want 4", info.State.Msgs)
	}
	m, _ := dl.GetMsg(t.Context(), 3)
	if m == nil || !strings.Contains(m.Header.Get(jsbus.HeaderDeadReason), "duration_ms") {
		t.Errorf("dead letter reason: %v", m)
	}
}
