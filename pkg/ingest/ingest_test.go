package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
	"github.com/jetmon/jetmon/pkg/ingest"
)

func server(t *testing.T, o ingest.Options) (*httptest.Server, *events.MemoryBus) {
	t.Helper()
	bus := events.NewMemoryBus(events.MemoryOptions{})
	t.Cleanup(func() { _ = bus.Close() })
	if o.Publisher == nil {
		o.Publisher = bus
	}
	h, err := ingest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, bus
}

func post(t *testing.T, url, contentType, body string, header ...string) (int, ingest.Response) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var r ingest.Response
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &r)
	return resp.StatusCode, r
}

func line(tag string) string {
	return string(eventstest.NewEvent(events.OperationComplete, tag).AppendJSON(nil))
}

func TestNDJSONKeepsGoodItems(t *testing.T) {
	srv, bus := server(t, ingest.Options{})
	bad := `{"event_type":"performance.operation.complete","id":"x","source":"s","timestamp":"2026-11-27T10:00:00Z","operation":"op","duration_ms":"fast"}`
	body := line("a") + "\n" + "{not json\n" + bad + "\n\n" + line("b") + "\n" + `{"event_type":"nope.nope","id":"y","source":"s","timestamp":"2026-11-27T10:00:00Z"}` + "\n"
	code, r := post(t, srv.URL, "application/x-ndjson", body)
	if code != http.StatusMultiStatus || r.Accepted != 2 || r.Rejected != 3 {
		t.Fatalf("status %d, %+v; want 207 with 2 accepted and 3 rejected", code, r)
	}
	if r.Errors[0].Index != 1 || r.Errors[1].Index != 2 || r.Errors[1].Field != "duration_ms" || r.Errors[2].Field != "event_type" {
		t.Errorf("errors %+v", r.Errors)
	}
	if got := bus.Published(); len(got) != 2 || eventstest.Tag(got[0]) != "a" || eventstest.Tag(got[1]) != "b" {
		t.Errorf("published %v", got)
	}
}

func TestArrayAndSingleEvent(t *testing.T) {
	srv, bus := server(t, ingest.Options{})
	code, r := post(t, srv.URL, "application/json", "["+line("a")+`,{"event_type":"system.error"},`+line("b")+"]")
	if code != http.StatusMultiStatus || r.Accepted != 2 || r.Errors[0].Index != 1 || r.Errors[0].Field != "id" {
		t.Errorf("array: %d %+v", code, r)
	}
	code, r = post(t, srv.URL, "application/json", line("c"))
	if code != http.StatusAccepted || r.Accepted != 1 || r.Rejected != 0 {
		t.Errorf("single: %d %+v", code, r)
	}
	if len(bus.Published()) != 3 {
		t.Errorf("published %d, want 3", len(bus.Published()))
	}
	code, r = post(t, srv.URL, "application/json", `{"event_type":"system.error","id":"1","source":"s","timestamp":"2026-11-27T10:00:00Z"}`)
	if code != http.StatusBadRequest || r.Errors[0].Field != "error" {
		t.Errorf("all rejected: %d %+v", code, r)
	}
	if code, _ := post(t, srv.URL, "application/json", "  "); code != http.StatusBadRequest {
		t.Errorf("empty body: %d", code)
	}
}

func TestBodyLimitAndToken(t *testing.T) {
	srv, _ := server(t, ingest.Options{MaxBody: 1000, Token: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}
	if code, _ := post(t, srv.URL, "application/x-ndjson", line("a")); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := post(t, srv.URL, "application/x-ndjson", line("a"), "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := post(t, srv.URL, "application/x-ndjson", line("a"), auth...); code != http.StatusAccepted {
		t.Errorf("right token: %d", code)
	}
	big := strings.Repeat(line("x")+"\n", 5)
	if code, _ := post(t, srv.URL, "application/x-ndjson", big, auth...); code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the limit: %d", code)
	}
	// Without a Content-Length the limit holds while reading.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/events", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer s3cret")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d", resp.StatusCode)
	}
}

type downBus struct{}

func (downBus) Publish(context.Context, events.Event) error { return errors.New("bus unavailable") }

func TestPublishFailureIsRetryable(t *testing.T) {
	srv, _ := server(t, ingest.Options{Publisher: downBus{}})
	code, r := post(t, srv.URL, "application/x-ndjson", line("a"))
	if code != http.StatusServiceUnavailable || !r.Errors[0].Retry {
		t.Errorf("bus down: %d %+v, want 503 with retry", code, r)
	}
}

func TestOpenAPI(t *testing.T) {
	srv, _ := server(t, ingest.Options{})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/openapi.json", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["paths"].(map[string]any)["/v1/events"] == nil {
		t.Errorf("openapi: %v %v", err, doc)
	}
	if _, err := ingest.New(ingest.Options{}); err == nil {
		t.Error("New without a Publisher succeeded")
	}
}

func TestAssignDefaults(t *testing.T) {
	const bare = `{"event_type":"performance.operation.complete","source":"curl","operation":"hello","duration_ms":900}`
	strict, _ := server(t, ingest.Options{})
	if code, r := post(t, strict.URL, "application/json", bare); code != http.StatusBadRequest || r.Errors[0].Field != "id" {
		t.Fatalf("strict: %d %+v", code, r)
	}
	lax, bus := server(t, ingest.Options{AssignDefaults: true})
	body := bare + "\n" + `[1]` + "\n" + `{"event_type":"performance.operation.complete","source":"curl"}` + "\n"
	code, r := post(t, lax.URL, "application/x-ndjson", body)
	if code != http.StatusMultiStatus || r.Accepted != 1 || r.Rejected != 2 {
		t.Fatalf("lax: %d %+v", code, r)
	}
	waitPublished(t, bus, 1)
	md := bus.Published()[0].Metadata()
	if md.ID == "" || md.Timestamp.IsZero() || time.Since(md.Timestamp) > time.Minute {
		t.Fatalf("defaults not assigned: %+v", md)
	}
}

func waitPublished(t *testing.T, bus *events.MemoryBus, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(bus.Published()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("published %d, want %d", len(bus.Published()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
