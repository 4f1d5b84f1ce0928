package alerting_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
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
	a, _ := instance(t, srv.ClientURL(), "a", rules)
	b, _ := instance(t, srv.ClientURL(), "b", rules)
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
	time.Sleep(2 * time.Second) // room for a duplicate to show up, as in TestTwoInstancesNotifyExactlyOnce
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
