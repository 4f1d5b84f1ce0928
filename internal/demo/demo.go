// Package demo is the smallest whole jetmon: a publisher emitting a realistic
// mix of events onto a bus and subscribers that print them and a running
// summary. `jetmon up` runs it; later it grows into the full pipeline.
package demo

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/pkg/events"
)

// Options configures [Run].
type Options struct {
	// Rate is how many operations per second the demo publisher emits (default 20).
	Rate int
	// Duration stops the demo after this long; 0 runs until ctx ends.
	Duration time.Duration
	// SummaryEvery is the interval of the summary table (default 5 s).
	SummaryEvery time.Duration
	// Quiet prints only the summaries, not every event.
	Quiet bool
}

// DefaultOptions mirrors the flag defaults of `jetmon up`.
func DefaultOptions() Options {
	return Options{Rate: 20, SummaryEvery: 5 * time.Second}
}

// Validate reports the first bad option, naming it.
func (o Options) Validate() error {
	switch {
	case o.Rate < 1 || o.Rate > 100_000:
		return fmt.Errorf("rate %d: must be between 1 and 100000 operations per second", o.Rate)
	case o.Duration < 0:
		return fmt.Errorf("duration %s: must not be negative", o.Duration)
	case o.SummaryEvery <= 0:
		return fmt.Errorf("summary interval %s: must be positive", o.SummaryEvery)
	}
	return nil
}

// operation is one simulated operation with a log-normal latency.
type operation struct {
	name, source string
	medianMS     float64
	sigma        float64 // spread of the log-normal; larger means a slower tail
	failRate     float64
}

var workload = []operation{
	{"http.checkout", "checkout", 40, 0.4, 0.02},
	{"db.query", "orders", 8, 1.1, 0.01}, // the slow tail
	{"cache.lookup", "orders", 0.6, 0.3, 0.001},
	{"payment.authorize", "payments", 120, 0.5, 0.05},
}

// Run publishes the demo workload on bus and prints what its subscribers see
// to out until ctx ends or opts.Duration passes. It returns after every
// goroutine it started has stopped; it does not close bus.
func Run(ctx context.Context, bus events.Bus, opts Options, out io.Writer, log zerolog.Logger) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	sum := newSummary()
	var printMu sync.Mutex
	printer := events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		if !opts.Quiet {
			printMu.Lock()
			defer printMu.Unlock()
			_, err := fmt.Fprintln(out, describe(ev))
			return err
		}
		return nil
	})
	subs := []struct {
		pattern string
		h       events.Handler
	}{
		{">", printer},
		{"performance.operation.*", events.HandlerFunc(sum.onOperation)},
		{"health.component.*", events.HandlerFunc(sum.onHealth)},
	}
	for _, s := range subs {
		sub, err := bus.Subscribe(ctx, s.pattern, s.h)
		if err != nil {
			return fmt.Errorf("subscribe %q: %w", s.pattern, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	log.Info().Int("rate", opts.Rate).Str("duration", opts.Duration.String()).Msg("demo publisher started; Ctrl-C stops it")

	var wg sync.WaitGroup
	wg.Go(func() { publishLoop(ctx, bus, opts.Rate, log) })
	wg.Go(func() { healthLoop(ctx, bus, log) })
	t := time.NewTicker(opts.SummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			printMu.Lock()
			sum.print(out)
			printMu.Unlock()
		case <-ctx.Done():
			wg.Wait()
			printMu.Lock()
			sum.print(out)
			printMu.Unlock()
			return nil
		}
	}
}

func publishLoop(ctx context.Context, bus events.Bus, rate int, log zerolog.Logger) {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	failures := 0
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, ev := range simulateRequest(n) {
			if err := bus.Publish(ctx, ev); err != nil && ctx.Err() == nil {
				failures++
				if failures == 1 || failures%100 == 0 {
					log.Warn().Err(err).Int("failures", failures).Msg("publish failed")
				}
			}
		}
	}
}

// simulateRequest returns the events of one request: an operation and, every
// tenth request, a validation run with its phase.
func simulateRequest(n int) []events.Event {
	op := workload[n%len(workload)]
	root := events.NewRootTrace()
	dur := op.medianMS * math.Exp(op.sigma*rand.NormFloat64())
	typ, status := events.OperationComplete, events.StatusSuccess
	if rand.Float64() < op.failRate {
		typ, status = events.OperationFailed, events.StatusFailure
	}
	ev := events.NewPerformanceEvent(typ, op.source)
	ev.SetTrace(root)
	ev.Operation, ev.DurationMS, ev.Status = op.name, math.Round(dur*1000)/1000, status
	if typ == events.OperationFailed {
		ev.Error = "upstream timeout"
	}
	out := []events.Event{ev}
	if n%10 == 0 {
		ctxID := fmt.Sprintf("order-%d", n)
		start := events.NewValidationEvent(events.ValidationStarted, "orders", ctxID)
		start.FieldPath = "order.shipping.address"
		start.SetTrace(root.Child())
		done := events.NewValidationEvent(events.ValidationCompleted, "orders", ctxID)
		done.FieldPath, done.Status, done.DurationMS = start.FieldPath, events.StatusSuccess, math.Round(dur*100)/1000
		done.SetTrace(start.Trace())
		out = append(out, start, done)
	}
	return out
}

// healthLoop reports two components: "orders-db" is steady, "cache" flaps.
func healthLoop(ctx context.Context, bus events.Bus, log zerolog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cache := events.ComponentHealthy
		if tick%3 == 2 {
			cache = events.ComponentDegraded
		}
		for _, c := range []struct {
			name string
			typ  events.Type
		}{{"orders-db", events.ComponentHealthy}, {"cache", cache}} {
			ev := events.NewHealthEvent(c.typ, "health-agent", c.name)
			ev.LatencyMS = math.Round(rand.ExpFloat64()*200) / 100
			if c.typ == events.ComponentDegraded {
				ev.Message = "hit ratio below 80%"
			}
			if err := bus.Publish(ctx, ev); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("publish health event failed")
			}
		}
	}
}

// describe renders one event as a line for people.
func describe(ev events.Event) string {
	m := ev.Metadata()
	head := fmt.Sprintf("%s  %-32s %-12s", m.Timestamp.Local().Format("15:04:05.000"), m.Type, m.Source)
	switch e := ev.(type) {
	case *events.PerformanceEvent:
		return fmt.Sprintf("%s %-18s %9.3f ms  %s", head, e.Operation, e.DurationMS, e.Status)
	case *events.HealthEvent:
		return fmt.Sprintf("%s %-18s %s %s", head, e.Component, e.Status, e.Message)
	case *events.ValidationEvent:
		return fmt.Sprintf("%s %-18s %s", head, e.ContextID, e.FieldPath)
	}
	return head
}

// summary keeps per-operation statistics and the latest component health.
type summary struct {
	mu     sync.Mutex
	ops    map[string]*opStats
	health map[string]string
}

type opStats struct {
	count, errors int
	sumMS, maxMS  float64
}

func newSummary() *summary {
	return &summary{ops: map[string]*opStats{}, health: map[string]string{}}
}

func (s *summary) onOperation(_ context.Context, ev events.Event) error {
	e, ok := ev.(*events.PerformanceEvent)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.ops[e.Operation]
	if st == nil {
		st = &opStats{}
		s.ops[e.Operation] = st
	}
	st.count++
	if e.Type == events.OperationFailed {
		st.errors++
	}
	st.sumMS += e.DurationMS
	st.maxMS = max(st.maxMS, e.DurationMS)
	return nil
}

func (s *summary) onHealth(_ context.Context, ev events.Event) error {
	if e, ok := ev.(*events.HealthEvent); ok {
		s.mu.Lock()
		s.health[e.Component] = e.Status
		s.mu.Unlock()
	}
	return nil
}

func (s *summary) print(out io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\n== summary ==\nOPERATION\tCOUNT\tERRORS\tAVG ms\tMAX ms")
	for _, name := range slices.Sorted(maps.Keys(s.ops)) {
		st := s.ops[name]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\n", name, st.count, st.errors, st.sumMS/float64(st.count), st.maxMS)
	}
	for _, c := range slices.Sorted(maps.Keys(s.health)) {
		fmt.Fprintf(tw, "component %s\t%s\n", c, s.health[c])
	}
	_ = tw.Flush()
}
