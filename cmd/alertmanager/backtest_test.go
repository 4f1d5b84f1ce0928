package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
)

// backtest over stored windows of a known trend (p95 +1 ms per 10 s
// window) reports the linear predict rule firing exactly its 5-minute
// horizon before the threshold rule.
func TestBacktestCommand(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	t0 := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	for i := range 200 {
		end := t0.Add(time.Duration(i+1) * 10 * time.Second)
		w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", end.Add(-10*time.Second), end)
		w.Count, w.P95 = 100, 100+float64(i)
		if err := bus.Publish(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`
rules:
  - alert: SlowSoon
    kind: predict
    match: {operation: charge}
    field: p95
    threshold: 250
    predict: {method: linear, horizon: 5m}
receivers: [{name: l, log: {}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	code := run(t.Context(), []string{"backtest", "--nats-url", srv.ClientURL(), "--rules", rules, "--rule", "SlowSoon", "--since", "2h"}, out, out, noEnv)
	predicted := t0.Add(122 * 10 * time.Second).UTC().Format(time.RFC3339)
	crossed := t0.Add(152 * 10 * time.Second).UTC().Format(time.RFC3339)
	want := regexp.MustCompile(`source="checkout".*` + regexp.QuoteMeta(predicted) + `\s+251 in 4m50s\s+\S+\s+` + regexp.QuoteMeta(crossed) + `\s+5m0s`)
	if code != 0 || !want.MatchString(out.String()) {
		t.Fatalf("exit %d, output:\n%s\nwant a line matching %s", code, out.String(), want)
	}
	if code := run(t.Context(), []string{"backtest", "--nats-url", srv.ClientURL(), "--rules", rules, "--rule", "Nope"}, out, out, noEnv); code != 2 ||
		!strings.Contains(out.String(), `no predict rule named "Nope"`) {
		t.Fatalf("unknown rule: exit %d:\n%s", code, out.String())
	}
}

// suggest --apply writes the learned threshold into the rules file: for
// p95 100..299 the median is 199.5 and the MAD 50, so 199.5 + 3·1.4826·50.
func TestSuggestApply(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	t0 := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	for i := range 200 {
		end := t0.Add(time.Duration(i+1) * 10 * time.Second)
		w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", end.Add(-10*time.Second), end)
		w.Count, w.P95 = 100, 100+float64(i)
		if err := bus.Publish(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`# learned thresholds
rules:
  - alert: Slow
    match: {operation: charge}
    field: p95
    threshold: auto   # learned
    auto: {history: 2h}
receivers: [{name: l, log: {}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	if code := run(t.Context(), []string{"suggest", "--nats-url", srv.ClientURL(), "--apply", rules}, out, out, noEnv); code != 0 ||
		!strings.Contains(out.String(), "Slow: threshold 421.89 (learned over 1 series)") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	b, _ := os.ReadFile(rules)
	if !strings.Contains(string(b), "threshold: 421.89") || strings.Contains(string(b), "auto") || !strings.Contains(string(b), "# learned thresholds") {
		t.Fatalf("rules file:\n%s", b)
	}
	if code := run(t.Context(), []string{"check", rules}, out, out, noEnv); code != 0 {
		t.Fatalf("check after apply: %s", out.String())
	}
}
