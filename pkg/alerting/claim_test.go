package alerting

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// A live claim by another instance defers the notification; once the claim
// expires (its holder died) the notification goes out, once.
func TestPeerClaimDefersUntilItExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := ParseEmbedded("c.yaml", []byte(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
    stale_after: 1h
route: {receiver: r, group_by: [alertname], group_wait: 0s, group_interval: 1m}
receivers: [{name: r}]
`))
		if err != nil {
			t.Fatal(err)
		}
		store := NewMemoryStore()
		groupKey := `r:{alertname="Slow"}`
		if _, err := store.PutNflog(context.Background(), nflogKey("r", 0, groupKey), NflogEntry{ClaimedBy: "ghost", ClaimExpires: time.Now().Add(10 * time.Second)}, 0); err != nil {
			t.Fatal(err)
		}
		var sent atomic.Int32
		svc, err := New(Options{Config: cfg, Store: store, Instance: "me", Notify: map[string]NotifyFunc{"r": func(context.Context, *Notification) error {
			sent.Add(1)
			return nil
		}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = svc.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		now := time.Now()
		w := events.NewAggregateEvent(events.OperationComplete, "checkout", "charge", now.Add(-time.Second), now)
		w.Count, w.P95 = 10, 400
		if err := svc.Observe(ctx, w); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := sent.Load(); n != 0 {
			t.Fatalf("sent %d while a peer held the claim", n)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := sent.Load(); n != 1 {
			t.Fatalf("sent %d after the claim expired, want 1", n)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := sent.Load(); n != 1 {
			t.Fatalf("sent %d in all, want 1", n)
		}
		e, _, _ := store.Nflog(ctx, nflogKey("r", 0, groupKey))
		if e.ClaimedBy != "" || len(e.Firing) != 1 || e.SentAt.IsZero() {
			t.Fatalf("log entry after sending: %+v", e)
		}
	})
}
