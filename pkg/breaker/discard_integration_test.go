package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/breaker"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

// sizedEvent returns a performance event whose encoding is exactly size
// bytes, padded with attributes of at most 1000 bytes while the label limit
// allows (an event too big for that is invalid as well as too large).
func sizedEvent(t *testing.T, tag string, size int) events.Event {
	t.Helper()
	ev := eventstest.NewEvent(events.OperationComplete, tag)
	attrs := ev.Metadata().Attributes
	for i := 0; len(ev.AppendJSON(nil)) < size; i++ {
		key := fmt.Sprintf("pad%02d", i)
		attrs[key] = ""
		room := size - len(ev.AppendJSON(nil))
		if room <= 0 {
			delete(attrs, key)
			break
		}
		if len(attrs) < events.MaxLabels {
			room = min(room, 1000)
		}
		attrs[key] = strings.Repeat("x", room)
	}
	if n := len(ev.AppendJSON(nil)); n != size {
		t.Fatalf("event encodes to %d bytes, want %d", n, size)
	}
	return ev
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// TestOversizedEventOnRealBus is the adversarial finding: one event of
// 1,048,376 bytes (under 1 MiB, but not with its NATS headers) through the
// real JetStream bus. It is discarded and counted, the spool stays empty,
// memory stays flat, and the events after it are delivered.
func TestOversizedEventOnRealBus(t *testing.T) {
	srv := natstest.Start(t)
	reg := prometheus.NewRegistry()
	br, bus := breakerOnJetStream(t, srv.ClientURL(), breaker.Options{Registerer: reg, OpenTimeout: 200 * time.Millisecond})
	heap := heapMiB()
	big := sizedEvent(t, "big", 1_048_376)
	if err := br.Publish(t.Context(), big); !errors.Is(err, events.ErrPayloadTooLarge) {
		t.Errorf("Publish(1,048,376-byte event) = %v, want ErrPayloadTooLarge", err)
	}
	after := eventstest.NewEvent(events.OperationComplete, "after")
	if err := br.Publish(t.Context(), after); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	settle(t, br, bus) // a respool loop would show after this
	st := br.Stats()
	if st.Spooled != 0 || st.SpoolDepth != 0 || st.SpoolBytes != 0 || st.Permanent != 1 {
		t.Errorf("stats %+v; want the big event discarded once and nothing spooled", st)
	}
	if got := discarded(t, reg, "too_large"); got != 1 {
		t.Errorf("discarded{reason=too_large} = %v, want 1", got)
	}
	if grew := heapMiB() - heap; grew > 16 {
		t.Errorf("heap grew by %.1f MiB", grew)
	}
	seen := storedIDs(t, bus)
	if seen[after.Metadata().ID] != 1 || seen[big.Metadata().ID] != 0 || len(seen) != 2 {
		t.Errorf("stored %v; want the small event once and not the big one", seen)
	}
}

// TestAsyncRejectionOnRealBus: the server refuses an event only in its
// asynchronous ack (the stream's max_msg_size is smaller than the event);
// the failure comes back through jsbus.ReportFailedEvents and
// breaker.Failed, and the event is re-sent a bounded number of times, then
// discarded — no endless respool.
func TestAsyncRejectionOnRealBus(t *testing.T) {
	srv := natstest.Start(t)
	reg := prometheus.NewRegistry()
	br, bus := breakerOnJetStream(t, srv.ClientURL(), breaker.Options{Registerer: reg, MaxAsyncFailures: 3})
	js := bus.JetStream()
	stream, err := js.Stream(t.Context(), "PERFORMANCE")
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgSize = 4 << 10
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := br.Publish(t.Context(), sizedEvent(t, "refused", 16<<10)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, func() bool { return br.Stats().Permanent == 1 }, "the refused event to be discarded")
	settle(t, br, bus) // a respool loop would show after this
	st := br.Stats()
	if st.SpoolDepth != 0 || st.Permanent != 1 || st.Spooled > 3 {
		t.Errorf("stats %+v; want at most 3 re-sends, then one discard and an empty spool", st)
	}
	if discarded(t, reg, "retries_exhausted")+discarded(t, reg, "too_large") != 1 {
		t.Errorf("the discard is not counted under retries_exhausted or too_large")
	}
}

// settle proves that the breaker and the bus had their chance to misbehave
// after a discard: a marker event published now through the breaker is
// stored, and the spool and the acks have settled after it. A negative
// check (nothing re-spooled) that follows is then meaningful, without a
// sleep.
func settle(t *testing.T, br *breaker.Publisher, bus *jsbus.Bus) {
	t.Helper()
	marker := eventstest.NewEvent(events.OperationComplete, "marker")
	if err := br.Publish(t.Context(), marker); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := br.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if storedIDs(t, bus)[marker.Metadata().ID] != 1 {
		t.Fatal("the marker event was not stored once")
	}
}
