package aggregator_test

import (
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// TestLateEventsGoOutInAmendments: an event that comes after its window was
// published is not lost: it goes out in an amendment window of its own id,
// its message is acknowledged once that is stored, and both windows reach
// the history stream.
func TestLateEventsGoOutInAmendments(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, IdleAfter: 300 * time.Millisecond})
	col := collectAggregates(t, bus)
	at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	pubRaw(t, bus, "svc", rawOp("e1", "svc", at, "5"))
	pubRaw(t, bus, "svc", rawOp("e2", "svc", at.Add(100*time.Millisecond), "6"))
	waitFor(t, 15*time.Second, "the first window", func() bool { return col.bySource()["svc"] == 2 })
	pubRaw(t, bus, "svc", rawOp("e3", "svc", at.Add(200*time.Millisecond), "70")) // its window is out
	waitFor(t, 15*time.Second, "the amendment", func() bool { return col.bySource()["svc"] == 3 })
	waitFor(t, 5*time.Second, "all input acknowledged", func() bool { return svc.Stats().Pending == 0 })

	col.mu.Lock()
	var first, amendment *events.AggregateEvent
	for _, w := range col.ws {
		if w.Amendment {
			amendment = w
		} else {
			first = w
		}
	}
	n := len(col.ws)
	col.mu.Unlock()
	if n != 2 || first == nil || amendment == nil {
		t.Fatalf("%d windows (first %v, amendment %v), want a first window and an amendment", n, first, amendment)
	}
	if first.Count != 2 || amendment.Count != 1 || amendment.Max != 70 || first.ID == amendment.ID ||
		first.SeriesWindowKey() != amendment.SeriesWindowKey() || !amendment.WindowStart.Equal(at) {
		t.Errorf("first %+v\namendment %+v", first, amendment)
	}
	if st := svc.Stats(); st.Late != 1 || st.Events != 3 {
		t.Errorf("stats: late %d, events %d; want 1 and 3", st.Late, st.Events)
	}
	st, err := bus.JetStream().Stream(t.Context(), streams.Windows)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both windows in the history stream", func() bool {
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs == 2
	})
}
