package alerting_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// TestGaugesFollowTheInput scrapes the registry after input that creates
// series but no transition: the gauges must already say so.
func TestGaugesFollowTheInput(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("g.yaml", []byte(`
rules:
  - alert: ErrorsPerDay
    kind: rate
    match: {type: system.error}
    window: 2h
    threshold: 1000
route: {receiver: r}
receivers: [{name: r, log: {}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "g", Registerer: reg})
	for _, src := range []string{"pod-1", "pod-2", "pod-3"} {
		if err := svc.Observe(ctx, events.NewSystemEvent(events.SystemError, src, "boom")); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "jetmon_alertmanager_series" {
			series = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if series != 3 {
		t.Errorf("jetmon_alertmanager_series = %v after three sources sent errors, want 3", series)
	}
	if n, err := testutil.GatherAndCount(reg, "jetmon_alertmanager_input_events_total"); err != nil || n != 1 {
		t.Errorf("input counter: %d series, %v", n, err)
	}
}
