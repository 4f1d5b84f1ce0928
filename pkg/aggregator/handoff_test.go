package aggregator_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
)

// TestHandoffEmitsAndTheNextOwnerAmends: an instance that stops mid-window
// emits its open windows, acknowledges its input and records what it
// emitted; the next owner counts later events of those windows in
// amendments, and every event is counted exactly once.
func TestHandoffEmitsAndTheNextOwnerAmends(t *testing.T) {
	srv := natstest.Start(t)
	a := startInstance(t, srv.ClientURL(), "a")
	base := aggregateFirstPart(t, srv.ClientURL(), a)
	a.stop()
	if st := a.svc.Stats(); st.Pending != 0 || st.OpenWindows != 0 {
		t.Fatalf("after its handoff the first instance holds %d messages and %d open windows", st.Pending, st.OpenWindows)
	}
	kv, err := natstest.Connect(t, srv.ClientURL()).JetStream().KeyValue(t.Context(), aggregator.HandoffBucket)
	if err != nil {
		t.Fatal(err)
	}
	records, err := kv.Keys(t.Context())
	if err != nil || len(records) == 0 {
		t.Fatalf("handoff records: %v, %v", records, err)
	}
	for _, k := range records {
		rec := readHandoff(t, kv, k)
		if rec.Instance != "a" {
			t.Errorf("record %s: %+v", k, rec)
		}
		for src, through := range rec.ClosedThrough {
			if want := base.Add(3 * time.Second).Add(-500 * time.Millisecond); !through.Equal(want) {
				t.Errorf("record %s: source %s closed through %v, want %v", k, src, through, want)
			}
		}
	}

	b := startInstance(t, srv.ClientURL(), "b")
	waitSpread(t, []*instance{b}, 30*time.Second)
	publishDataset(t, srv.ClientURL(), base, 6000, 8000)
	collectWindows(t, srv, 8000, []*instance{b})
	if st := b.svc.Stats(); st.Late == 0 {
		t.Errorf("the next owner counted no event in an amendment: %+v", st)
	}
}

// TestHandoffWithoutItsRecordHandsTheInputBack: an instance that cannot
// write its handoff record when it stops emits nothing early and hands its
// input back, so that the next owner computes whole windows; every event is
// counted exactly once. Emitting the open windows without the record lost
// the events of each window that got events on both sides of the handoff:
// the next owner recomputed it under the same id from the later events, and
// the server dropped it as a duplicate.
func TestHandoffWithoutItsRecordHandsTheInputBack(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.ClientURL()).JetStream()
	a := startInstance(t, srv.ClientURL(), "a")
	base := aggregateFirstPart(t, srv.ClientURL(), a)
	// Every handoff record is now too large for the bucket's stream.
	st, err := js.Stream(t.Context(), "KV_"+aggregator.HandoffBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgSize = 8
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	a.stop()
	if n, e := aggregator.Handoffs(a.svc, "unrecorded"), aggregator.Handoffs(a.svc, "emitted"); n != partitions || e != 0 {
		t.Fatalf("handoffs: %v unrecorded, %v emitted; want every one of %d partitions unrecorded", n, e, partitions)
	}
	kv, err := js.KeyValue(t.Context(), aggregator.HandoffBucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(t.Context()); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatalf("handoff records %v (%v); the bucket was to refuse them", keys, err)
	}
	cfg.MaxMsgSize = -1
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}

	b := startInstance(t, srv.ClientURL(), "b")
	waitSpread(t, []*instance{b}, 30*time.Second)
	publishDataset(t, srv.ClientURL(), base, 6000, 8000)
	collectWindows(t, srv, 8000, []*instance{b})
	if st := b.svc.Stats(); st.Late != 0 {
		t.Errorf("the next owner counted %d events in amendments; with no record it was to compute whole windows", st.Late)
	}
}

// TestHandoffPartlyEmittedLosesNothing: when only some open windows of a
// handoff reach the server (those of one source cannot be published), the
// input of the stored ones is acknowledged, the rest goes back, the record
// stays, and the next owner counts what came back in amendments: every event
// exactly once. Taking the record back instead made the next owner
// recompute the stored windows under their ids, and the server dropped them
// with their later events.
func TestHandoffPartlyEmittedLosesNothing(t *testing.T) {
	srv := natstest.Start(t)
	var failing atomic.Bool
	a := startInstanceWith(t, srv.ClientURL(), "a", func(svc *aggregator.Service) {
		aggregator.SetPublishFault(svc, func(w *events.AggregateEvent) error {
			if failing.Load() && w.Source == "svc-3" {
				return errors.New("injected: the window of svc-3 was not stored")
			}
			return nil
		})
	})
	base := aggregateFirstPart(t, srv.ClientURL(), a)
	failing.Store(true)
	a.stop()
	if n, e := aggregator.Handoffs(a.svc, "partly_emitted"), aggregator.Handoffs(a.svc, "emitted"); n != 1 || e != partitions-1 {
		t.Fatalf("handoffs: %v partly emitted, %v emitted; want 1 and %d", n, e, partitions-1)
	}

	b := startInstance(t, srv.ClientURL(), "b")
	waitSpread(t, []*instance{b}, 30*time.Second)
	publishDataset(t, srv.ClientURL(), base, 6000, 8000)
	collectWindows(t, srv, 8000, []*instance{b})
}

// TestNextOwnerWaitsForTheHandoffRecord: a next owner that cannot read the
// handoff record at first (its watch fails) waits for it rather than
// consuming without it; every event is counted exactly once. Consuming
// without it recomputed the window the previous owner had emitted early,
// under its id, and the server dropped it with the later events.
func TestNextOwnerWaitsForTheHandoffRecord(t *testing.T) {
	srv := natstest.Start(t)
	a := startInstance(t, srv.ClientURL(), "a")
	base := aggregateFirstPart(t, srv.ClientURL(), a)
	a.stop()

	var failures atomic.Int32
	b := startInstanceWith(t, srv.ClientURL(), "b", func(svc *aggregator.Service) {
		aggregator.SetHandoffWatchFault(svc, func() error {
			if failures.Add(1) <= 3*partitions {
				return errors.New("injected: the watch failed")
			}
			return nil
		})
	})
	waitSpread(t, []*instance{b}, 30*time.Second)
	publishDataset(t, srv.ClientURL(), base, 6000, 8000)
	collectWindows(t, srv, 8000, []*instance{b})
	if n := failures.Load(); n <= 3*partitions {
		t.Fatalf("the watches were asked for %d times; the test was to make the first %d fail", n, 3*partitions)
	}
	if st := b.svc.Stats(); st.Late == 0 {
		t.Errorf("the next owner counted no event in an amendment: it did not adopt the record (%+v)", st)
	}
}

// TestHandoffRecordSurvivesABriefOwner: an owner that handles nothing keeps
// its predecessor's handoff record when it lets the partition go: what the
// predecessor emitted is still known to the next owner.
func TestHandoffRecordSurvivesABriefOwner(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.ClientURL()).JetStream()
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: aggregator.HandoffBucket, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	through := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	for p := range partitions {
		rec := fmt.Sprintf(`{"instance":"gone","at":%q,"closed_through":{"old-%d":%q}}`, time.Now().UTC().Format(time.RFC3339Nano), p, through.Format(time.RFC3339Nano))
		if _, err := kv.Put(t.Context(), fmt.Sprint("p", p), []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	b := startInstance(t, srv.ClientURL(), "b")
	waitSpread(t, []*instance{b}, 30*time.Second)
	b.stop()
	for p := range partitions {
		rec := readHandoff(t, kv, fmt.Sprint("p", p))
		if got := rec.ClosedThrough[fmt.Sprint("old-", p)]; rec.Instance != "b" || !got.Equal(through) {
			t.Errorf("partition %d: record %+v, want b's with old-%d closed through %v", p, rec, p, through)
		}
	}
}

// handoffRecord is a handoff record as stored (the wire form of the
// aggregator's record, read independently of its code).
type handoffRecord struct {
	Instance      string               `json:"instance"`
	ClosedThrough map[string]time.Time `json:"closed_through"`
}

func readHandoff(t *testing.T, kv jetstream.KeyValue, key string) handoffRecord {
	t.Helper()
	e, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	var rec handoffRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatalf("record %s: %s: %v", key, e.Value(), err)
	}
	return rec
}

// aggregateFirstPart waits for a to run every partition, publishes the
// first 6000 events of the dataset (T+0.5 s … T+3.5 s; the rest, up to
// T+4.5 s, is for after a handoff, so that the window [T+3 s, T+4 s) gets
// events on both sides of it) and waits until a aggregated them. It
// returns T+0.5 s.
func aggregateFirstPart(t *testing.T, url string, a *instance) time.Time {
	t.Helper()
	waitSpread(t, []*instance{a}, 30*time.Second)
	base := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
	publishDataset(t, url, base, 0, 6000)
	waitFor(t, 30*time.Second, "the first instance to aggregate the first part", func() bool { return a.svc.Stats().Events == 6000 })
	return base
}
