package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/pkg/natsserver"
	"github.com/jetmon/jetmon/streams"
)

// jetmonUpBus connects to srv the way `jetmon up` does: batches of 100, no
// retries by the bus. BatchMaxDelay is long, so that an answer which does
// not wait for the acks shows.
func jetmonUpBus(t *testing.T, srv *natsserver.Server, mutate ...func(*jsbus.Config)) *jsbus.Bus {
	t.Helper()
	return natstest.Connect(t, srv.ClientURL(), append([]func(*jsbus.Config){func(c *jsbus.Config) {
		c.BatchMaxEvents = 100
		c.BatchMaxDelay = time.Hour
		c.PublishRetries = -1
	}}, mutate...)...)
}

func serve(t *testing.T, o ingest.Options) *httptest.Server {
	t.Helper()
	h, err := ingest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// inStream returns how often each event id is in stream, and the number of
// messages.
func inStream(t *testing.T, bus *jsbus.Bus, stream string) (map[string]int, int) {
	t.Helper()
	st, err := bus.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids, msgs := map[string]int{}, 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			continue
		}
		msgs++
		evs, err := events.DecodeBatch(raw.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		for _, ev := range evs {
			ids[ev.Metadata().ID]++
		}
	}
	return ids, msgs
}

func ndjson(evs []events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.Write(ev.AppendJSON(nil))
		b.WriteByte('\n')
	}
	return b.String()
}

func operations(source string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		ev := events.NewPerformanceEvent(events.OperationComplete, source)
		ev.Operation, ev.DurationMS = "op"+strconv.Itoa(i%3), float64(i)
		out[i] = ev
	}
	return out
}

// TestAnsweredMeansStored: with the JetStream bus as its Publisher, every
// event the ingest answers 2xx for is in the stream when the answer comes.
func TestAnsweredMeansStored(t *testing.T) {
	srv := natstest.Start(t)
	bus := jetmonUpBus(t, srv)
	web := serve(t, ingest.Options{Publisher: bus})
	evs := append(operations("a", 250), operations("b", 30)...)
	code, r := post(t, web.URL, "application/x-ndjson", ndjson(evs))
	if code != http.StatusAccepted || r.Accepted != len(evs) || !r.Stored {
		t.Fatalf("status %d, %+v; want 202, %d accepted, stored", code, r, len(evs))
	}
	ids, msgs := inStream(t, bus, streams.Performance)
	for i, ev := range evs {
		if ids[ev.Metadata().ID] != 1 {
			t.Fatalf("event %d answered 202 but stored %d times", i, ids[ev.Metadata().ID])
		}
	}
	if msgs != 4 { // a: 100+100+50, b: 30
		t.Errorf("%d messages, want 4 batches", msgs)
	}

	// The same request sent again (a client that did not get the answer)
	// is stored once.
	for range 2 {
		if code, r := post(t, web.URL, "application/x-ndjson", ndjson(evs)); code != http.StatusAccepted || !r.Stored {
			t.Fatalf("re-send: %d %+v", code, r)
		}
	}
	if again, msgs2 := inStream(t, bus, streams.Performance); msgs2 != msgs || len(again) != len(ids) {
		t.Errorf("sent three times: %d messages and %d ids, want %d and %d", msgs2, len(again), msgs, len(ids))
	}
}

// TestNotStoredIsNeverAnswered2xx: when JetStream does not store the events
// (no stream for them, the server gone), the answer is 503 with a retry
// for every item.
func TestNotStoredIsNeverAnswered2xx(t *testing.T) {
	check := func(t *testing.T, web *httptest.Server) {
		t.Helper()
		code, r := post(t, web.URL, "application/x-ndjson", ndjson(operations("x", 5)))
		if code != http.StatusServiceUnavailable || r.Accepted != 0 || r.Rejected != 5 {
			t.Fatalf("status %d, %+v; want 503 with 5 rejected", code, r)
		}
		for _, e := range r.Errors {
			if !e.Retry || e.Status != http.StatusServiceUnavailable {
				t.Errorf("item %+v: want retry", e)
			}
		}
	}
	t.Run("no stream", func(t *testing.T) {
		srv := natstest.Start(t)
		bus := jetmonUpBus(t, srv, func(c *jsbus.Config) { c.SkipStreams = true })
		check(t, serve(t, ingest.Options{Publisher: bus, PublishTimeout: 5 * time.Second}))
	})
	t.Run("server stopped", func(t *testing.T) {
		srv := natstest.Start(t)
		bus := jetmonUpBus(t, srv)
		web := serve(t, ingest.Options{Publisher: bus, PublishTimeout: 2 * time.Second})
		srv.Stop()
		check(t, web)
	})
}

// TestUnstorableEventRefusedAtTheDoor: against a server whose max payload
// is 8 KiB, an event that fits only without its message headers is refused
// with 413 naming the limit, never accepted.
func TestUnstorableEventRefusedAtTheDoor(t *testing.T) {
	const limit = 8 << 10
	srv := natstest.Start(t, func(o *natsserver.Options) { o.MaxPayload = limit })
	for _, name := range []string{"stored", "breaker-like"} {
		t.Run(name, func(t *testing.T) {
			bus := jetmonUpBus(t, srv)
			var pub events.Publisher = bus
			if name != "stored" {
				pub = publisherOnly{bus} // not a StoringPublisher
			}
			web := serve(t, ingest.Options{Publisher: pub})
			big := events.NewSystemEvent(events.SystemError, "big", "boom")
			big.Attributes = map[string]string{}
			for i := range 9 {
				big.Attributes["k"+strconv.Itoa(i)] = strings.Repeat("x", 870)
			}
			if n := len(big.AppendJSON(nil)); n > limit-2 || n < limit-400 {
				t.Fatalf("test event is %d bytes", n)
			}
			code, r := post(t, web.URL, "application/json", string(big.AppendJSON(nil)))
			if code != http.StatusRequestEntityTooLarge || r.Accepted != 0 || len(r.Errors) != 1 ||
				!strings.Contains(r.Errors[0].Error, strconv.Itoa(limit)) || r.Errors[0].Retry {
				t.Fatalf("status %d, %+v; want 413 naming the limit %d", code, r, limit)
			}
			small := events.NewSystemEvent(events.SystemError, "small", "boom")
			code, r = post(t, web.URL, "application/json", "["+string(small.AppendJSON(nil))+","+string(big.AppendJSON(nil))+"]")
			if code != http.StatusMultiStatus || r.Accepted != 1 || r.Errors[0].Index != 1 || r.Errors[0].Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("mixed: %d %+v", code, r)
			}
			_ = bus.Flush(t.Context())
			if st := bus.Stats(); st.PublishFailed != 0 {
				t.Errorf("%d publishes failed after the answer", st.PublishFailed)
			}
		})
	}
}

// publisherOnly hides PublishStored: the ingest sees a plain Publisher, as
// in front of a circuit breaker.
type publisherOnly struct{ p events.Publisher }

func (p publisherOnly) Publish(ctx context.Context, ev events.Event) error {
	return p.p.Publish(ctx, ev)
}

func TestNotStoringPublisherSaysSo(t *testing.T) {
	srv, _ := server(t, ingest.Options{})
	code, r := post(t, srv.URL, "application/x-ndjson", line("a"))
	if code != http.StatusAccepted || r.Stored {
		t.Errorf("in front of the memory bus: %d %+v; want 202 with stored false", code, r)
	}
}

// TestErrorListIsBounded: a body of a million bad items answers with a
// small body: the first 100 errors, and the count of the rest.
func TestErrorListIsBounded(t *testing.T) {
	srv, bus := server(t, ingest.Options{})
	const n = 1 << 20
	body := "[" + strings.Repeat("1,", n-1) + "1]"
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	var r ingest.Response
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || r.Rejected != n || len(r.Errors) != ingest.DefaultMaxErrors || r.ErrorsOmitted != n-ingest.DefaultMaxErrors {
		t.Fatalf("status %d, rejected %d, %d errors listed, %d omitted", resp.StatusCode, r.Rejected, len(r.Errors), r.ErrorsOmitted)
	}
	if r.Errors[0].Index != 0 || r.Errors[99].Index != 99 {
		t.Errorf("listed errors %d..%d, want the first 100", r.Errors[0].Index, r.Errors[99].Index)
	}
	if len(data) > 32<<10 {
		t.Errorf("answer is %d bytes", len(data))
	}
	if len(bus.Published()) != 0 {
		t.Error("published something")
	}

	// Publish failures reported after later items were read still make the
	// list when their index is lower.
	srv2, _ := server(t, ingest.Options{Publisher: downBus{}, MaxErrors: 3})
	code, r := post(t, srv2.URL, "application/x-ndjson", line("a")+"\n{bad\n{bad\n{bad\n")
	if code != http.StatusServiceUnavailable || r.Rejected != 4 || len(r.Errors) != 3 || r.ErrorsOmitted != 1 ||
		r.Errors[0].Index != 0 || !r.Errors[0].Retry || r.Errors[2].Index != 2 {
		t.Errorf("mixed errors: %d %+v", code, r)
	}
}

func TestPipelineOnlyTypesNeedTheGrant(t *testing.T) {
	srv, bus := server(t, ingest.Options{Token: "tok", GrantToken: "grant"})
	ctl := events.NewControlEvent(events.MonitoringDisabled, "attacker")
	ctl.Scope = ">"
	agg := events.NewAggregateEvent(events.OperationComplete, "svc", "op", time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Truncate(time.Second))
	agg.Count = 1
	thr := events.NewHealthEvent(events.ThresholdExceeded, "svc", "")
	thr.Metric = "latency"
	forged := ndjson([]events.Event{ctl, agg, thr})
	code, r := post(t, srv.URL, "application/x-ndjson", forged, "Authorization", "Bearer tok")
	if code != http.StatusForbidden || r.Rejected != 3 {
		t.Fatalf("with the normal token: %d %+v; want 403", code, r)
	}
	for _, e := range r.Errors {
		if e.Status != http.StatusForbidden || e.Field != "event_type" || e.Retry {
			t.Errorf("item %+v", e)
		}
	}
	code, r = post(t, srv.URL, "application/x-ndjson", forged+line("ok"), "Authorization", "Bearer tok")
	if code != http.StatusMultiStatus || r.Accepted != 1 {
		t.Errorf("mixed: %d %+v", code, r)
	}
	code, r = post(t, srv.URL, "application/x-ndjson", forged, "Authorization", "Bearer grant")
	if code != http.StatusAccepted || r.Accepted != 3 {
		t.Errorf("with the grant: %d %+v", code, r)
	}
	if n := len(bus.Published()); n != 4 {
		t.Errorf("published %d, want 4", n)
	}
	open, _ := server(t, ingest.Options{}) // no grant configured: always refused
	if code, _ := post(t, open.URL, "application/json", string(ctl.AppendJSON(nil))); code != http.StatusForbidden {
		t.Errorf("without a grant token configured: %d", code)
	}
	if _, err := ingest.New(ingest.Options{Publisher: bus, Token: "same", GrantToken: "same"}); err == nil {
		t.Error("New accepted a grant token equal to the token")
	}
}

func TestWritesMustBeJSONFromThisOrigin(t *testing.T) {
	srv, _ := server(t, ingest.Options{})
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		name, contentType, origin string
		want                      int
	}{
		{"json", "application/json", "", 202},
		{"json charset", "application/json; charset=utf-8", "", 202},
		{"ndjson", "application/x-ndjson", "", 202},
		{"jsonl", "application/jsonl", "", 202},
		{"+json", "application/cloudevents-batch+json", "", 202},
		{"no content type", "", "", 202},
		{"text", "text/plain", "", 415},
		{"form", "application/x-www-form-urlencoded", "", 415},
		{"multipart", "multipart/form-data; boundary=x", "", 415},
		{"same origin", "application/json", "http://" + host, 202},
		{"foreign origin", "application/json", "http://evil.example", 403},
		{"foreign origin, no type", "", "https://evil.example", 403},
		{"null origin", "application/json", "null", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/events", strings.NewReader(line(tc.name)))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, data, tc.want)
			}
			if tc.want == 415 && !strings.Contains(string(data), "application/json") {
				t.Errorf("415 does not say what to send: %s", data)
			}
		})
	}
}

func TestParsing(t *testing.T) {
	srv, bus := server(t, ingest.Options{MaxEvent: 600})
	one := eventsLine("pretty")
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(one), "", "  ")
	code, r := post(t, srv.URL, "application/json", "\n"+pretty.String()+"\n")
	if code != http.StatusAccepted || r.Accepted != 1 {
		t.Errorf("pretty object: %d %+v", code, r)
	}
	var prettyArray bytes.Buffer
	_ = json.Indent(&prettyArray, []byte("["+eventsLine("p1")+","+eventsLine("p2")+"]"), "", "\t")
	code, r = post(t, srv.URL, "application/json", prettyArray.String())
	if code != http.StatusAccepted || r.Accepted != 2 {
		t.Errorf("pretty array: %d %+v", code, r)
	}
	long := events.NewSystemEvent(events.SystemError, "svc", strings.Repeat("x", 700))
	body := eventsLine("n0") + "\n" + string(long.AppendJSON(nil)) + "\n" + eventsLine("n2") + "\n" +
		`{"event_type":"system.error",` + "\n" + eventsLine("n4") + "\n"
	code, r = post(t, srv.URL, "application/x-ndjson", body)
	if code != http.StatusMultiStatus || r.Accepted != 3 || r.Rejected != 2 {
		t.Fatalf("NDJSON with a long and a broken line: %d %+v", code, r)
	}
	if e := r.Errors[0]; e.Index != 1 || e.Status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Error, "600") {
		t.Errorf("long line: %+v", e)
	}
	if e := r.Errors[1]; e.Index != 3 || e.Status != http.StatusBadRequest {
		t.Errorf("broken line: %+v", e)
	}
	if n := len(bus.Published()); n != 6 {
		t.Errorf("published %d, want 6", n)
	}
}

func eventsLine(tag string) string {
	ev := events.NewSystemEvent(events.SystemError, "svc", "boom")
	ev.Message = tag
	return string(ev.AppendJSON(nil))
}
