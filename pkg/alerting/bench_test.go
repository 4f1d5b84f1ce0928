package alerting_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// BenchmarkObserve measures evaluating one aggregated window against ten
// rules (1,000 series, about half of them firing), against the baseline of
// decoding that window from the wire, which any consumer of it pays. The
// flapping case gives ten series ten different values per round, so that
// alerts keep going pending and back (transitions, annotations, snapshots).
func BenchmarkObserve(b *testing.B) {
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for i := range 10 {
		fmt.Fprintf(&rules, "  - alert: R%d\n    match: {operation: \"op-%d*\"}\n    field: p95\n    threshold: %d\n    recover: %d\n    for: 30s\n    annotations: {summary: \"{{ .Value }}\"}\n", i, i, 250, 200)
	}
	rules.WriteString("receivers: [{name: r, log: {}}]\n")
	cfg, err := alerting.Parse("bench.yaml", []byte(rules.String()))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const series = 1000
	wins := make([]*events.AggregateEvent, series)
	wire := make([][]byte, series)
	for i := range wins {
		w := events.NewAggregateEvent(events.OperationComplete, fmt.Sprintf("svc-%d", i/100), fmt.Sprintf("op-%d", i%100), t0, t0.Add(10*time.Second))
		w.Count, w.P95, w.P50, w.P99 = 100, float64(100+i%300), 50, 400
		wins[i] = w
		wire[i], _ = events.Marshal(w)
	}
	b.Run("baseline_decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if _, err := events.Decode(wire[i%series]); err != nil {
				b.Fatal(err)
			}
		}
	})
	run := func(wins []*events.AggregateEvent) func(b *testing.B) {
		return func(b *testing.B) {
			e := alerting.NewEngine(cfg.Rules)
			b.ReportAllocs()
			now := t0
			for i := range b.N {
				w := wins[i%series]
				if i%series == 0 {
					now = now.Add(10 * time.Second)
				}
				w.WindowEnd = now
				e.Observe(w, now)
			}
		}
	}
	flapping := make([]*events.AggregateEvent, series)
	for i := range flapping {
		w := *wins[i]
		w.Source = fmt.Sprintf("svc-%d", i%10) // 100 series, each seen 10 times a round with other values
		flapping[i] = &w
	}
	b.Run("evaluate_10_rules", run(wins))
	b.Run("evaluate_10_rules_flapping", run(flapping))
}
