package alerting_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// A monitoring.config.changed event with config.component=alertmanager
// reloads the rules file; one from another component (the breaker reports
// its state that way) does not; a broken file keeps the running rules.
func TestReloadOnConfigChangedEvent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const one = "rules:\n  - alert: A\n    field: p95\n    threshold: 1\nreceivers: [{name: r, log: {}}]\n"
	write(one)
	cfg, err := alerting.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	bus := events.NewMemoryBus(events.MemoryOptions{})
	t.Cleanup(func() { _ = bus.Close() })
	reg := prometheus.NewRegistry()
	svc, ctx := runService(t, alerting.Options{Config: cfg, RulesFile: file, Bus: bus, Instance: "t", Registerer: reg})
	reloads := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "jetmon_alertmanager_reloads_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "success" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	rules := func() int {
		rs, err := svc.RuleSummaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	changed := func(component string) {
		ev := events.NewControlEvent(events.ConfigChanged, "ops")
		ev.Config = map[string]string{"component": component}
		if err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - alert: A\n    field: p95\n    threshold: 1\n  - alert: B\n    kind: health\nreceivers: [{name: r, log: {}}]\n")
	changed("breaker")
	if n := rules(); n != 1 {
		t.Fatalf("a breaker config.changed reloaded the rules (%d rules)", n)
	}
	// The service handles config.changed events one at a time, in order: once
	// the alertmanager one has reloaded, the breaker one was handled, and a
	// reload it started would have been queued before the next one, made
	// here directly. Two reloads in all, not three.
	changed(alerting.ReloadComponent)
	testutil.WaitFor(t, 5*time.Second, func() bool { return rules() == 2 && reloads() == 1 }, "reload on config.changed")
	if err := svc.ReloadFile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := reloads(); n != 2 {
		t.Fatalf("%v successful reloads, want 2 (the alertmanager event and ReloadFile): the breaker event reloaded too", n)
	}

	write("rules:\n  - alert: A\n    field: nope\n")
	if err := svc.ReloadFile(ctx); err == nil {
		t.Fatal("a broken rules file reloaded")
	}
	if n := rules(); n != 2 {
		t.Fatalf("a failed reload changed the rules (%d)", n)
	}
}

// Rules reading overlapping patterns (health.> and health.component.*) see
// each event once.
func TestOverlappingInputsCountOnce(t *testing.T) {
	cfg, err := alerting.Parse("o.yaml", []byte(`
rules:
  - alert: HealthChurn
    kind: rate
    match: {type: "health.>"}
    window: 1h
    threshold: 3
  - alert: Down
    kind: health
receivers: [{name: r, log: {}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	bus := events.NewMemoryBus(events.MemoryOptions{})
	t.Cleanup(func() { _ = bus.Close() })
	svc, ctx := runService(t, alerting.Options{Config: cfg, Bus: bus, Instance: "t"})
	churn := func() float64 {
		as, err := svc.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Rule == "HealthChurn" {
				return a.Value
			}
		}
		return 0
	}
	for range 4 {
		if err := bus.Publish(ctx, health("checkout", "cache", "degraded")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { return churn() >= 4 }, "4 events counted")
	// A fifth event, published after the four, reaches each of the two
	// overlapping subscriptions after their copies of the four: when it is
	// counted, a copy counted twice would show as more than 5.
	if err := bus.Publish(ctx, health("checkout", "cache", "degraded")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { return churn() >= 5 }, "the fifth event counted")
	if n := churn(); n != 5 {
		t.Fatalf("5 events counted as %v", n)
	}
}
