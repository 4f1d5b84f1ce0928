package jsbus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// storedIDs returns the ids of every event in stream, with how many
// messages carried them.
func storedIDs(t *testing.T, bus *jsbus.Bus, stream string) (ids map[string]int, msgs int) {
	t.Helper()
	st, err := bus.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids = map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			continue // deleted
		}
		msgs++
		evs, err := events.DecodeBatch(raw.Data)
		if err != nil {
			t.Fatalf("stored message %d does not decode: %v", seq, err)
		}
		for _, ev := range evs {
			ids[ev.Metadata().ID]++
		}
	}
	return ids, msgs
}

// padded returns a system.error event from source whose wire form is
// exactly size bytes.
func padded(t *testing.T, source string, size int) events.Event {
	t.Helper()
	ev := events.NewSystemEvent(events.SystemError, source, "boom")
	ev.Attributes = map[string]string{}
	for i := 0; ; i++ {
		short := size - len(ev.AppendJSON(nil))
		if short == 0 {
			return ev
		}
		key := "p" + strconv.Itoa(i)
		if short < 1000 {
			ev.Attributes[key] = ""
			short = size - len(ev.AppendJSON(nil))
			if short < 0 {
				t.Fatalf("cannot pad to %d bytes", size)
			}
			ev.Attributes[key] = strings.Repeat("x", short)
			continue
		}
		ev.Attributes[key] = strings.Repeat("x", 900)
	}
}

func perfEvents(source string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		ev := events.NewPerformanceEvent(events.OperationComplete, source)
		ev.Operation, ev.DurationMS = "op", float64(i)
		out[i] = ev
	}
	return out
}

func TestPublishStored(t *testing.T) {
	for _, batch := range []int{1, 10} {
		t.Run(fmt.Sprintf("batch_%d", batch), func(t *testing.T) {
			srv := natstest.Start(t)
			var reported atomic.Int64
			bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) {
				c.BatchMaxEvents = batch
				c.BatchMaxDelay = time.Hour // a stored publish never waits for it
				c.OnPublishError = func(*nats.Msg, error) { reported.Add(1) }
			})
			evs := append(perfEvents("a", 25), perfEvents("b", 7)...)
			bad := events.NewPerformanceEvent(events.OperationComplete, "a") // no operation
			evs = append(evs[:3], append([]events.Event{bad}, evs[3:]...)...)
			start := time.Now()
			errs := bus.PublishStored(t.Context(), evs)
			if time.Since(start) > 5*time.Second {
				t.Errorf("PublishStored took %v", time.Since(start))
			}
			if len(errs) != len(evs) {
				t.Fatalf("%d results for %d events", len(errs), len(evs))
			}
			ids, msgs := storedIDs(t, bus, streams.Performance)
			for i, err := range errs {
				id := evs[i].Metadata().ID
				switch {
				case i == 3:
					if !errors.Is(err, events.ErrInvalid) || ids[id] != 0 {
						t.Errorf("invalid event: %v, stored %d times", err, ids[id])
					}
				case err != nil:
					t.Errorf("event %d: %v", i, err)
				case ids[id] != 1:
					t.Errorf("event %d answered stored, but it is in the stream %d times", i, ids[id])
				}
			}
			wantMsgs := 32 // one per event
			if batch > 1 {
				wantMsgs = 3 + 1 // a: 10+10+5, b: 7
			}
			if msgs != wantMsgs {
				t.Errorf("%d messages in the stream, want %d", msgs, wantMsgs)
			}

			// The same events again: stored once (batch ids are derived from
			// the events' ids), every one answered stored.
			for i, err := range bus.PublishStored(t.Context(), evs) {
				if (err != nil) != (i == 3) {
					t.Errorf("again: event %d: %v", i, err)
				}
			}
			if again, msgs2 := storedIDs(t, bus, streams.Performance); msgs2 != msgs || len(again) != len(ids) {
				t.Errorf("sent twice: %d messages (was %d), %d ids (was %d)", msgs2, msgs, len(again), len(ids))
			}
			if st := bus.Stats(); st.Duplicates != uint64(wantMsgs) {
				t.Errorf("duplicates %d, want %d", st.Duplicates, wantMsgs)
			}
			if reported.Load() != 0 {
				t.Errorf("OnPublishError called %d times", reported.Load())
			}
		})
	}
}

func TestBatchMsgIDIsDerivedFromEventIDs(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) { c.BatchMaxEvents = 3 })
	evs := perfEvents("ids", 3)
	// The async path: Publish fills and seals a batch of three.
	for _, ev := range evs {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, _ := bus.JetStream().Stream(t.Context(), streams.Performance)
	raw, err := st.GetLastMsgForSubject(t.Context(), "performance.operation.complete.ids")
	if err != nil {
		t.Fatal(err)
	}
	want := jsbus.BatchMsgID(evs[0].Metadata().ID, evs[1].Metadata().ID, evs[2].Metadata().ID)
	if got := raw.Header.Get(jsbus.HeaderMsgID); got != want || raw.Header.Get(jsbus.HeaderID) != want {
		t.Errorf("batch Nats-Msg-Id %q, want %q", got, want)
	}
	if !strings.HasPrefix(want, "batch-") || want == jsbus.BatchMsgID(evs[1].Metadata().ID, evs[0].Metadata().ID, evs[2].Metadata().ID) {
		t.Errorf("BatchMsgID %q: want a batch- prefix and order to matter", want)
	}
	// The same events published again (say, a client's retry) are dropped
	// by the server.
	for _, ev := range evs {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ids, msgs := storedIDs(t, bus, streams.Performance); msgs != 1 || len(ids) != 3 {
		t.Errorf("after a re-send: %d messages, %d ids; want 1 and 3", msgs, len(ids))
	}
}

func TestPublishStoredNeverClaimsUnstoredEvents(t *testing.T) {
	t.Run("no stream", func(t *testing.T) {
		srv := natstest.Start(t)
		var reported atomic.Int64
		bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) {
			c.SkipStreams = true
			c.BatchMaxEvents = 10
			c.OnPublishError = func(*nats.Msg, error) { reported.Add(1) }
		})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for i, err := range bus.PublishStored(ctx, perfEvents("nostream", 15)) {
			if err == nil || errors.Is(err, events.ErrInvalid) || errors.Is(err, events.ErrPayloadTooLarge) {
				t.Errorf("event %d: %v; want a transient error", i, err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		if reported.Load() != 0 {
			t.Errorf("OnPublishError called %d times for failures PublishStored reported", reported.Load())
		}
	})
	t.Run("server gone", func(t *testing.T) {
		srv := natstest.Start(t)
		bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) { c.BatchMaxEvents = 10 })
		srv.Stop()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		for i, err := range bus.PublishStored(ctx, perfEvents("gone", 3)) {
			if err == nil {
				t.Errorf("event %d answered stored with the server stopped", i)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		srv := natstest.Start(t)
		bus := natstest.Connect(t, srv.ClientURL())
		_ = bus.Close()
		if errs := bus.PublishStored(t.Context(), perfEvents("closed", 1)); !errors.Is(errs[0], events.ErrClosed) {
			t.Errorf("after Close: %v", errs[0])
		}
	})
}

// TestMaxPayloadCountsHeaders runs against a server whose max payload is
// 8 KiB: an event that fits without its headers is refused at Publish (it
// can never be stored), and batches are sealed before data and headers
// together pass the limit.
func TestMaxPayloadCountsHeaders(t *testing.T) {
	const limit = 8 << 10
	for _, batch := range []int{1, 10} {
		t.Run(fmt.Sprintf("batch_%d", batch), func(t *testing.T) {
			srv := natstest.Start(t, func(o *natsserver.Options) { o.MaxPayload = limit })
			var reported atomic.Int64
			bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) {
				c.BatchMaxEvents = batch
				c.PublishRetries = -1
				c.OnPublishError = func(*nats.Msg, error) { reported.Add(1) }
			})
			big := padded(t, "big", limit-100) // fits, but not with its headers
			err := bus.Publish(t.Context(), big)
			if !errors.Is(err, events.ErrPayloadTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(limit)) {
				t.Errorf("Publish of an event that cannot fit: %v; want ErrPayloadTooLarge naming %d", err, limit)
			}
			if errs := bus.PublishStored(t.Context(), []events.Event{big}); !errors.Is(errs[0], events.ErrPayloadTooLarge) {
				t.Errorf("PublishStored of an event that cannot fit: %v", errs[0])
			}
			// Three events whose data fit one message, but not with headers.
			var three []events.Event
			for range 3 {
				three = append(three, padded(t, "three", 2700))
			}
			for _, ev := range three {
				if err := bus.Publish(t.Context(), ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := bus.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			stored := []events.Event{padded(t, "stored", 2700), padded(t, "stored", 2700), padded(t, "stored", 2700)}
			for i, err := range bus.PublishStored(t.Context(), stored) {
				if err != nil {
					t.Errorf("PublishStored event %d: %v", i, err)
				}
			}
			if st := bus.Stats(); st.PublishFailed != 0 || reported.Load() != 0 {
				t.Errorf("%d publishes failed after Publish accepted them (%d reported)", st.PublishFailed, reported.Load())
			}
			ids, _ := storedIDs(t, bus, streams.System)
			for _, ev := range append(three, stored...) {
				if ids[ev.Metadata().ID] != 1 {
					t.Errorf("event %s stored %d times", ev.Metadata().ID, ids[ev.Metadata().ID])
				}
			}
			if ids[big.Metadata().ID] != 0 {
				t.Error("the oversized event was stored")
			}
		})
	}
}
