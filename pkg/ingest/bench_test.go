package ingest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/ingest"
)

// BenchmarkIngestNDJSON posts NDJSON requests of 1,000 events to the
// handler in front of a batching JetStream bus, each answered once every
// event is stored, against storing the same (already decoded) events on the
// same bus directly. One op is one request of 1,000 fresh events (fresh ids:
// repeats would be dropped as duplicates); ns/event is the cost per event.
func BenchmarkIngestNDJSON(b *testing.B) {
	srv := natstest.Start(b)
	cfg := jsbus.DefaultConfig()
	cfg.URLs = []string{srv.ClientURL()}
	cfg.BatchMaxEvents = 100
	bus, err := jsbus.Connect(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bus.Close() }()
	const perRequest = 1000
	evs := make([]events.Event, perRequest)
	var body bytes.Buffer
	fresh := func() {
		body.Reset()
		for i := range evs {
			ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
			ev.Operation, ev.DurationMS = "db.query", 12.5
			evs[i] = ev
			body.Write(ev.AppendJSON(nil))
			body.WriteByte('\n')
		}
	}
	perEvent := func(b *testing.B, ops int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*perRequest), "ns/event")
	}
	ctx := context.Background()
	b.Run("baseline_publish_stored", func(b *testing.B) {
		b.ReportAllocs()
		ops := 0
		for b.Loop() {
			b.StopTimer()
			fresh()
			b.StartTimer()
			for _, err := range bus.PublishStored(ctx, evs) {
				if err != nil {
					b.Fatal(err)
				}
			}
			ops++
		}
		perEvent(b, ops)
	})
	b.Run("http_ndjson", func(b *testing.B) {
		h, err := ingest.New(ingest.Options{Publisher: bus, MaxBody: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		web := httptest.NewServer(h)
		defer web.Close()
		b.ReportAllocs()
		ops := 0
		for b.Loop() {
			b.StopTimer()
			fresh()
			b.StartTimer()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, web.URL+"/v1/events", bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("status %d", resp.StatusCode)
			}
			ops++
		}
		perEvent(b, ops)
	})
}
