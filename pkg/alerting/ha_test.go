package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// webhookReceiver is a real HTTP receiver counting alerts by status.
type webhookReceiver struct {
	mu       sync.Mutex
	byStatus map[string]map[string]int // status → fingerprint → deliveries
	msgs     []alerting.WebhookMessage
	srv      *httptest.Server
	fail     bool
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{byStatus: map[string]map[string]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m alerting.WebhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fail {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		w.msgs = append(w.msgs, m)
		for _, a := range m.Alerts {
			if w.byStatus[a.Status] == nil {
				w.byStatus[a.Status] = map[string]int{}
			}
			w.byStatus[a.Status][a.Fingerprint]++
		}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// counts returns how many alerts were delivered with status, and the
// largest number of deliveries of any one of them.
func (w *webhookReceiver) counts(status string) (alerts, maxPerAlert int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.byStatus[status] {
		alerts++
		maxPerAlert = max(maxPerAlert, n)
	}
	return alerts, maxPerAlert
}

// instance runs one alert manager on its own connection, with state in
// JetStream KV. stop ends it and waits.
func instance(t *testing.T, url, name, rules string) (svc *alerting.Service, stop func()) {
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
	svc, err = alerting.New(alerting.Options{
		Config: cfg, Bus: bus, Store: store, Alerts: &alerting.JetStreamSink{JS: bus.JetStream()},
		Instance: name, Durable: "alertmanager-" + name,
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
	testutil.WaitFor(t, 10*time.Second, svc.Ready, name+" ready")
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return svc, stop
}

func haRules(webhook string) string {
	return fmt.Sprintf(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
route:
  receiver: hook
  group_by: ["..."]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook: {url: %q}
`, webhook)
}

func publishWindows(t *testing.T, bus *jsbus.Bus, n int, p95 float64) {
	t.Helper()
	now := time.Now()
	for i := range n {
		a := events.NewAggregateEvent(events.OperationComplete, fmt.Sprintf("svc%02d", i), "op", now.Add(-time.Second), now)
		a.Count, a.P95 = 10, p95
		if err := bus.Publish(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Two instances see the same input; each alert reaches the webhook exactly
// once, its transition is stored once, and a restarted instance resumes the
// firing alerts without notifying them again.
func TestTwoInstancesNotifyExactlyOnce(t *testing.T) {
	srv := natstest.Start(t)
	hook := newWebhookReceiver(t)
	rules := haRules(hook.srv.URL)
	_, stopA := instance(t, srv.ClientURL(), "a", rules)
	b, _ := instance(t, srv.ClientURL(), "b", rules)
	pub := natstest.Connect(t, srv.ClientURL())

	const n = 20
	publishWindows(t, pub, n, 400)
	testutil.WaitFor(t, 10*time.Second, func() bool { got, _ := hook.counts("firing"); return got == n }, "20 firing alerts")
	time.Sleep(2 * time.Second) // room for a duplicate to show up
	if got, most := hook.counts("firing"); got != n || most != 1 {
		t.Fatalf("firing: %d alerts, one of them delivered %d times", got, most)
	}
	info, err := pub.JetStream().Stream(t.Context(), "ALERTS")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := info.Info(t.Context()); st.State.Msgs != n {
		t.Fatalf("ALERTS stream holds %d records, want %d (one per transition)", st.State.Msgs, n)
	}

	// A restarted instance loads the firing alerts and does not re-notify.
	stopA()
	a2, _ := instance(t, srv.ClientURL(), "a", rules)
	as, err := a2.Alerts(t.Context())
	if err != nil || len(as) != n || as[0].State != alerting.StateFiring {
		t.Fatalf("restarted instance has %d alerts (%v)", len(as), err)
	}
	time.Sleep(2 * time.Second)
	if got, most := hook.counts("firing"); got != n || most != 1 {
		t.Fatalf("after restart: %d alerts, one delivered %d times", got, most)
	}

	publishWindows(t, pub, n, 100)
	testutil.WaitFor(t, 10*time.Second, func() bool { got, _ := hook.counts("resolved"); return got == n }, "20 resolved alerts")
	time.Sleep(2 * time.Second)
	if got, most := hook.counts("resolved"); got != n || most != 1 {
		t.Fatalf("resolved: %d alerts, one delivered %d times", got, most)
	}
	if bs, _ := b.Alerts(t.Context()); len(bs) != n || bs[0].State != alerting.StateResolved {
		t.Fatalf("instance b: %+v", bs)
	}
}
