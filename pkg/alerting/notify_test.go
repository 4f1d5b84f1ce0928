package alerting_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// A failing webhook is retried with backoff while the other target of the
// same receiver is notified at once; when the webhook recovers it gets the
// notification.
func TestFailingReceiverIsRetriedAndStallsNoOther(t *testing.T) {
	hook := newWebhookReceiver(t)
	hook.fail = true
	cfg, err := alerting.ParseEmbedded("n.yaml", []byte(fmt.Sprintf(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
    labels: {team: payments}
route: {receiver: both, group_by: [alertname], group_wait: 0s, group_interval: 1s}
receivers:
  - name: both
    webhook: {url: %q}
`, hook.srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t", RetryFor: 30 * time.Second, ExternalURL: "http://am.example", Notify: map[string]alerting.NotifyFunc{"both": rec.notify}})
	if err := svc.Observe(ctx, window("checkout", "charge", 400)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Observe(ctx, window("cart", "add", 500)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Second, func() bool { return rec.count() >= 1 }, "the healthy target")
	time.Sleep(time.Second) // the webhook keeps failing meanwhile
	hook.mu.Lock()
	hook.fail = false
	hook.mu.Unlock()
	testutil.WaitFor(t, 15*time.Second, func() bool { n, _ := hook.counts("firing"); return n == 2 }, "the webhook after it recovered")
	hook.mu.Lock()
	m := hook.msgs[len(hook.msgs)-1] // the group's latest state holds both alerts
	hook.mu.Unlock()
	if m.Version != "4" || m.Status != "firing" || m.Receiver != "both" || m.GroupLabels["alertname"] != "Slow" ||
		m.CommonLabels["team"] != "payments" || m.CommonLabels["source"] != "" || len(m.Alerts) != 2 ||
		m.Alerts[0].GeneratorURL == "" || m.Alerts[0].StartsAt.IsZero() || m.GroupKey == "" {
		t.Fatalf("webhook payload: %+v", m)
	}
}

func TestWebhookPayload(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	mk := func(src string, st alerting.State) *alerting.Alert {
		l := alerting.Labels{"alertname": "Slow", "source": src, "team": "payments"}
		a := &alerting.Alert{
			Fingerprint: l.Fingerprint(), Rule: "Slow", Labels: l, State: st, ActiveAt: at,
			Annotations: map[string]string{"runbook": "https://runbooks/slow", "summary": src},
		}
		if st == alerting.StateResolved {
			a.ResolvedAt = at.Add(time.Minute)
		}
		return a
	}
	n := &alerting.Notification{
		Receiver: "r", GroupKey: "r:{}", GroupLabels: alerting.Labels{"alertname": "Slow"},
		Firing: []*alerting.Alert{mk("a", alerting.StateFiring), mk("b", alerting.StateFiring)}, Resolved: []*alerting.Alert{mk("c", alerting.StateResolved)},
	}
	m := alerting.WebhookPayload(n, "r", "http://am", 2)
	if m.Version != "4" || m.Status != "firing" || m.TruncatedAlerts != 1 || len(m.Alerts) != 2 {
		t.Fatalf("payload: %+v", m)
	}
	if m.CommonLabels["team"] != "payments" || m.CommonLabels["source"] != "" || m.CommonAnnotations["runbook"] == "" || m.CommonAnnotations["summary"] != "" {
		t.Fatalf("common labels/annotations: %v %v", m.CommonLabels, m.CommonAnnotations)
	}
	r := alerting.WebhookPayload(&alerting.Notification{Receiver: "r", Resolved: []*alerting.Alert{mk("c", alerting.StateResolved)}}, "r", "", 0)
	if r.Status != "resolved" || r.Alerts[0].Status != "resolved" || !r.Alerts[0].EndsAt.Equal(at.Add(time.Minute)) || r.Alerts[0].GeneratorURL != "" {
		t.Fatalf("resolved payload: %+v", r)
	}
}
