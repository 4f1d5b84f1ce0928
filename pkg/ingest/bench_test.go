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
// handler in front of a batching JetStream bus, against publishing the same
// (already decoded) events on the same bus directly. ns/op is per event.
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
	var evs []events.Event
	var body bytes.Buffer
	for range perRequest {
		ev := events.NewPerformanceEvent(events.OperationComplete, "checkout")
		ev.Operation, ev.DurationMS = "db.query", 12.5
		evs = append(evs, ev)
		body.Write(ev.AppendJSON(nil))
		body.WriteByte('\n')
	}
	ctx := context.Background()
	b.Run("baseline_direct_publish", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := bus.Publish(ctx, evs[i%perRequest]); err != nil {
				b.Fatal(err)
			}
		}
		_ = bus.Flush(ctx)
	})
	b.Run("http_ndjson", func(b *testing.B) {
		h, err := ingest.New(ingest.Options{Publisher: bus, MaxBody: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		web := httptest.NewServer(h)
		defer web.Close()
		payload := body.Bytes()
		b.ReportAllocs()
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += perRequest {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, web.URL+"/v1/events", bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		_ = bus.Flush(ctx)
	})
}
