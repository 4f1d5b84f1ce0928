package alerting_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// Two instances read the same raw events over JetStream; the absence rule
// fires on each for the same overdue keys, and each alert reaches the
// webhook exactly once, its transition stored once.
func TestPatternTwoInstancesNotifyExactlyOnce(t *testing.T) {
	srv := natstest.Start(t)
	hook := newWebhookReceiver(t)
	rules := fmt.Sprintf(`
rules:
  - alert: ValidationStuck
    kind: absence
    first: {types: [validation.started]}
    then: {types: [validation.completed, validation.failed]}
    within: 2s
route: {receiver: hook, group_by: ["..."], group_wait: 0s, group_interval: 1s}
receivers:
  - name: hook
    webhook: {url: %q}
`, hook.srv.URL)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := instanceWith(t, srv.ClientURL(), "a", rules, regA)
	b := instanceWith(t, srv.ClientURL(), "b", rules, regB)
	pub := natstest.Connect(t, srv.ClientURL())
	const n = 20
	for i := range n {
		id := fmt.Sprintf("ctx-%02d", i)
		if err := pub.Publish(t.Context(), events.NewValidationEvent(events.ValidationStarted, "checkout", id)); err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 0:
			err := pub.Publish(t.Context(), events.NewValidationEvent(events.ValidationCompleted, "checkout", id))
			if err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := pub.Publish(t.Context(), events.NewValidationEvent(events.ValidationFailed, "checkout", id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	const stuck = n / 2
	testutil.WaitFor(t, 15*time.Second, func() bool { got, _ := hook.counts("firing"); return got == stuck }, "10 firing alerts")
	testutil.WaitFor(t, 10*time.Second, func() bool {
		as, _ := a.Alerts(t.Context())
		bs, _ := b.Alerts(t.Context())
		return len(as) == stuck && len(bs) == stuck
	}, "both instances to fire every stuck key")
	// Every group has been decided on by both instances: sent by one,
	// skipped (already sent) by the other.
	decided := func() (sent, skipped float64) {
		for _, reg := range []*prometheus.Registry{regA, regB} {
			sent += notifications(t, reg, "sent")
			skipped += notifications(t, reg, "skipped")
		}
		return sent, skipped
	}
	testutil.WaitFor(t, 15*time.Second, func() bool { s, k := decided(); return s+k == 2*stuck }, "both instances to decide on every group")
	if s, _ := decided(); s != stuck {
		t.Fatalf("%v notifications sent, want %d", s, stuck)
	}
	if got, most := hook.counts("firing"); got != stuck || most != 1 {
		t.Fatalf("firing: %d alerts, one of them delivered %d times", got, most)
	}
	as, _ := a.Alerts(t.Context())
	for _, al := range as {
		var i int
		if _, err := fmt.Sscanf(al.Labels["context_id"], "ctx-%d", &i); err != nil || i%4 < 2 {
			t.Errorf("alert for a context that ended: %v", al.Labels)
		}
	}
	st, err := pub.JetStream().Stream(t.Context(), "ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(t.Context()); info.State.Msgs != stuck {
		t.Fatalf("ALERTS stream holds %d records, want %d (one per transition)", info.State.Msgs, stuck)
	}
}

// instanceWith is instance with the service's metrics in reg.
func instanceWith(t *testing.T, url, name, rules string, reg *prometheus.Registry) *alerting.Service {
	t.Helper()
	bus := natstest.Connect(t, url)
	cfg, err := alerting.Parse("ha.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	store, err := alerting.NewKVStore(t.Context(), bus.JetStream(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := alerting.New(alerting.Options{
		Config: cfg, Bus: bus, Store: store, Alerts: &alerting.JetStreamSink{JS: bus.JetStream()},
		Instance: name, Durable: "alertmanager-" + name, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := svc.Run(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testutil.WaitFor(t, 10*time.Second, svc.Ready, name+" ready")
	return svc
}

// The service publishes the open keys and the evictions of pattern rules.
func TestPatternMetrics(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("m.yaml", []byte(strings.Replace(absenceRules, "within: 30s", "within: 30s\n    max_keys: 2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t", Registerer: reg, Notify: map[string]alerting.NotifyFunc{"r": (&recorder{}).notify}})
	for i := range 3 {
		if err := svc.Observe(ctx, events.NewValidationEvent(events.ValidationStarted, "s", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "jetmon_alertmanager_pattern_keys":
				got["keys"] = m.GetGauge().GetValue()
			case "jetmon_alertmanager_pattern_evictions_total":
				got["evictions "+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if got["keys"] != 2 || got["evictions ValidationStuck"] != 1 || len(got) != 2 {
		t.Fatalf("metrics %v, want 2 keys and 1 eviction of ValidationStuck", got)
	}
}
