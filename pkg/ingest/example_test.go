package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/ingest"
)

// Mount the ingest handler and post NDJSON: the good line is published, the
// bad one is reported by index and field. The in-memory bus is not an
// events.StoringPublisher, so the answer says "stored": false; in front of
// the JetStream bus it would be true (see package jsbus).
func ExampleNew() {
	bus := events.NewMemoryBus(events.MemoryOptions{})
	defer func() { _ = bus.Close() }()
	h, _ := ingest.New(ingest.Options{Publisher: bus})
	srv := httptest.NewServer(h)
	defer srv.Close()

	body := `{"event_type":"system.error","id":"e1","source":"svc","timestamp":"2026-11-27T10:00:00Z","error":"disk full"}
{"event_type":"system.error","id":"e2","source":"svc","timestamp":"2026-11-27T10:00:01Z"}
`
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(out))
	fmt.Println(len(bus.Published()))
	// Output:
	// 207 {"accepted":1,"rejected":1,"stored":false,"errors":[{"index":1,"field":"error","error":"invalid event: error: required field is missing","status":400}]}
	// 1
}
