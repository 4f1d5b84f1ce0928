package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/chromedp/chromedp.(*Browser).run"))
}

// xss is a name no page may interpret as markup.
const xss = `<img src=x onerror="window.__xss=1">`

type fixture struct {
	srv     *httptest.Server
	bus     *jsbus.Bus
	js      jetstream.JetStream
	console *console.Console
	reg     *prometheus.Registry
}

func start(t *testing.T) *fixture {
	t.Helper()
	ns := natstest.Start(t)
	bus := natstest.Connect(t, ns.ClientURL())
	o := console.DefaultOptions()
	o.Bus, o.Registerer = bus, prometheus.NewRegistry()
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		c.Close() // ends live streams first, so that Close of the server does not wait for them
		srv.Close()
	})
	return &fixture{srv: srv, bus: bus, js: bus.JetStream(), console: c, reg: o.Registerer.(*prometheus.Registry)}
}

// window is a stored window of values, with its own sketch.
func window(source, op string, start time.Time, d time.Duration, values ...float64) *events.AggregateEvent {
	w := events.NewAggregateEvent(events.OperationComplete, source, op, start, start.Add(d))
	sk, _ := ddsketch.NewDefaultDDSketch(0.01)
	for i, v := range values {
		_ = sk.Add(v)
		w.Sum += v
		if i == 0 || v < w.Min {
			w.Min = v
		}
		w.Max = max(w.Max, v)
	}
	w.Count = uint64(len(values))
	if w.Count > 0 {
		w.Avg = w.Sum / float64(w.Count)
		qs, _ := sk.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99})
		w.P50, w.P90, w.P95, w.P99 = qs[0], qs[1], qs[2], qs[3]
	}
	sk.Encode(&w.Sketch, false)
	return w
}

// storeWindow stores w as the aggregator does: on PERFORMANCE and on
// WINDOWS under its series' subject.
func (f *fixture) storeWindow(t testing.TB, w *events.AggregateEvent) {
	t.Helper()
	m, err := jsbus.NewMsg(w)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	m2 := &nats.Msg{Subject: streams.WindowSubject(w.AggregatedType, w.Source, w.Name()), Header: m.Header, Data: m.Data}
	if _, err := f.js.PublishMsg(t.Context(), m2); err != nil {
		t.Fatal(err)
	}
}

// seed stores an hour of windows of two series (one named to attack the
// page), health changes, an alert and its transition, and a dead letter.
func (f *fixture) seed(t *testing.T, now time.Time) {
	t.Helper()
	ctx := t.Context()
	base := now.Add(-50 * time.Minute).Truncate(10 * time.Second)
	for i := range 300 {
		st := base.Add(time.Duration(i) * 10 * time.Second)
		v := float64(10 + i%17)
		f.storeWindow(t, window("checkout", "db.query", st, 10*time.Second, v, v*2, v*3, v*10))
		if i%10 == 0 {
			f.storeWindow(t, window(xss, xss, st, 10*time.Second, 5))
		}
	}
	for i, typ := range []events.Type{events.ComponentHealthy, events.ComponentDegraded, events.ComponentFailed, events.ComponentHealthy} {
		h := events.NewHealthEvent(typ, "agent", "db")
		h.Timestamp, h.Message = now.Add(time.Duration(i-4)*10*time.Minute), xss
		if err := f.bus.Publish(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	sys := events.NewHealthEvent(events.SystemStatus, "agent", "")
	sys.Status, sys.Timestamp = events.StatusDegraded, now.Add(-time.Minute)
	if err := f.bus.Publish(ctx, sys); err != nil {
		t.Fatal(err)
	}
	store, err := alerting.NewKVStore(ctx, f.js, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := &alerting.Alert{Fingerprint: "fp1", Rule: "Slow", Labels: alerting.Labels{"alertname": "Slow", "operation": xss}, State: alerting.StateFiring, Value: 312, Threshold: 250, ActiveAt: now.Add(-5 * time.Minute), FiredAt: now.Add(-4 * time.Minute)}
	if err := store.SaveAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(alerting.AlertRecord{ID: "t1", From: alerting.StatePending, To: alerting.StateFiring, At: now.Add(-4 * time.Minute), Alert: a})
	if _, err := f.js.Publish(ctx, "alerts.firing.Slow", rec); err != nil {
		t.Fatal(err)
	}
	dl := nats.NewMsg(streams.DeadLetterPrefix + "performance.operation.complete.checkout")
	dl.Data = []byte(`{"event_type":"performance.operation.complete","oops":"` + strings.ReplaceAll(xss, `"`, `\"`) + `"}`)
	dl.Header.Set(jsbus.HeaderDeadReason, "invalid_duration_ms")
	dl.Header.Set(jsbus.HeaderOriginalSubject, "performance.operation.complete.checkout")
	dl.Header.Set(jsbus.HeaderOriginalStream, streams.Performance)
	dl.Header.Set(jsbus.HeaderOriginalSeq, "7")
	if _, err := f.js.PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode
}

func post(t *testing.T, url, ctype, origin, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	f := start(t)
	now := time.Now()
	f.seed(t, now)
	var ov console.Overview
	if code := getJSON(t, f.srv.URL+"/api/v1/console/overview", &ov); code != 200 {
		t.Fatalf("overview: %d", code)
	}
	if ov.Firing != 1 || ov.System == nil || ov.System.Status != events.StatusDegraded {
		t.Errorf("overview: firing %d, system %+v", ov.Firing, ov.System)
	}
	var perf *console.StreamStat
	for i := range ov.Streams {
		if ov.Streams[i].Stream == streams.Performance {
			perf = &ov.Streams[i]
		}
	}
	// 330 windows stored on PERFORMANCE within the last minute.
	if perf == nil || perf.Messages != 330 || perf.PerSecond != 330.0/60 {
		t.Errorf("PERFORMANCE: %+v, want 330 messages at 5.5/s", perf)
	}
	var dls []console.DeadLetter
	if code := getJSON(t, f.srv.URL+"/api/v1/console/deadletters?type=performance.>", &dls); code != 200 || len(dls) != 1 || dls[0].Reason != "invalid_duration_ms" || dls[0].Type != "performance.operation.complete" {
		t.Errorf("dead letters: %d %+v", code, dls)
	}

	// Writes: JSON only, same origin only, bounded silences.
	silences := f.srv.URL + "/api/v1/console/silences"
	for name, c := range map[string]struct {
		ctype, origin, body string
		code                int
	}{
		"form post":     {"application/x-www-form-urlencoded", "", `{"matchers":{"a":"b"},"duration":"1h"}`, 415},
		"no type":       {"", "", `{"matchers":{"a":"b"},"duration":"1h"}`, 415},
		"other origin":  {"application/json", "https://evil.example", `{"matchers":{"a":"b"},"duration":"1h"}`, 403},
		"no matchers":   {"application/json", "", `{"matchers":{},"duration":"1h"}`, 400},
		"too long":      {"application/json", "", `{"matchers":{"a":"b"},"duration":"10000h"}`, 400},
		"unknown field": {"application/json", "", `{"matchers":{"a":"b"},"duration":"1h","x":1}`, 400},
		"bad regexp":    {"application/json", "", `{"matchers":{"a":"=~("},"duration":"1h"}`, 400},
		"huge body":     {"application/json", "", `{"comment":"` + strings.Repeat("x", 100<<10) + `"}`, 400},
		"good":          {"application/json", f.srv.URL, `{"matchers":{"alertname":"Slow"},"duration":"1h","comment":"deploy"}`, 200},
	} {
		if code, body := post(t, silences, c.ctype, c.origin, c.body); code != c.code {
			t.Errorf("%s: %d %s, want %d", name, code, body, c.code)
		}
	}
	var list []alerting.Silence
	getJSON(t, silences, &list)
	if len(list) != 1 || list[0].Matchers["alertname"] != "Slow" || !list[0].EndsAt.After(now.Add(59*time.Minute)) {
		t.Fatalf("silences: %+v", list)
	}
	if code, body := post(t, silences+"/"+list[0].ID+"/expire", "", "", ""); code != 200 {
		t.Errorf("expire: %d %s", code, body)
	}
	getJSON(t, silences, &list)
	if len(list) != 1 || list[0].EndsAt.After(time.Now()) {
		t.Errorf("expired silence still active: %+v", list)
	}
	if code, _ := post(t, silences+"/nope/expire", "", "", ""); code != 400 {
		t.Errorf("expire unknown: %d", code)
	}
	for _, u := range []string{"/api/v1/console/deadletters?limit=100000", "/api/v1/console/deadletters?type=a..b", "/api/v1/console/deadletters?limit=x"} {
		if code := getJSON(t, f.srv.URL+u, nil); code != 400 {
			t.Errorf("%s: %d, want 400", u, code)
		}
	}
	if code, _ := post(t, f.srv.URL+"/api/v1/console/deadletters/abc/retry", "", "", ""); code != 400 {
		t.Errorf("retry of a bad seq: %d", code)
	}
	if code, body := post(t, fmt.Sprintf("%s/api/v1/console/deadletters/%d/drop", f.srv.URL, dls[0].Seq), "", "https://evil.example", ""); code != http.StatusForbidden {
		t.Errorf("drop from another origin: %d %s", code, body)
	}
	if code, body := post(t, fmt.Sprintf("%s/api/v1/console/deadletters/%d/drop", f.srv.URL, dls[0].Seq), "", "", ""); code != http.StatusOK {
		t.Errorf("drop: %d %s", code, body)
	}
	if code := getJSON(t, f.srv.URL+"/api/v1/console/deadletters", &dls); code != 200 || len(dls) != 0 {
		t.Errorf("after the drop: %d %+v", code, dls)
	}
	// Every API request was timed under its route.
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "jetmon_console_request_seconds" {
			for _, m := range mf.GetMetric() {
				routes[m.GetLabel()[0].GetValue()] = true
			}
		}
	}
	for _, r := range []string{"GET /api/v1/console/overview", "POST /api/v1/console/silences", "GET /api/v1/console/deadletters"} {
		if !routes[r] {
			t.Errorf("no request time for %s: %v", r, routes)
		}
	}
}

// A live client that does not read is cut off once LiveBuffer updates are
// waiting, instead of holding memory; the number of live clients is bounded.
func TestLiveIsBounded(t *testing.T) {
	ns := natstest.Start(t)
	bus := natstest.Connect(t, ns.ClientURL())
	o := console.DefaultOptions()
	o.Bus, o.MaxLive, o.LiveBuffer = bus, 2, 4
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer c.Close()

	open := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/console/live", nil)
		return http.DefaultClient.Do(req)
	}
	slow, err := open()
	if err != nil || slow.StatusCode != http.StatusOK {
		t.Fatalf("live: %v %v", err, slow)
	}
	defer func() { _ = slow.Body.Close() }()
	second, err := open()
	if err != nil || second.StatusCode != http.StatusOK {
		t.Fatalf("second live: %v", err)
	}
	third, err := open()
	if err != nil || third.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third live client over MaxLive 2: %v %v", err, third.StatusCode)
	}
	_ = third.Body.Close()
	_ = second.Body.Close()
	// The slow client reads nothing while many windows are stored: the
	// server cuts it off with an overflow event.
	big := window("s", "op", time.Now().Add(-time.Minute), time.Second, 1)
	big.Unit = strings.Repeat("u", 200) // bigger frames fill the socket buffers sooner
	for i := range 20000 {
		big.ID = fmt.Sprintf("w%d", i)
		data := big.AppendJSON(nil)
		if err := bus.Conn().Publish(streams.WindowSubject(big.AggregatedType, big.Source, big.Name()), data); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(slow.Body)
		done <- string(b)
	}()
	select {
	case body := <-done:
		if !strings.Contains(body, "event: overflow") {
			t.Errorf("the slow client's stream ended without an overflow event (%d bytes)", len(body))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the slow client was not cut off")
	}
	for _, q := range []string{"?source=a&source=b", "?x=1", "?source=" + strings.Repeat("s", 300)} {
		if code := getJSON(t, srv.URL+"/api/v1/console/live"+q, nil); code != 400 {
			t.Errorf("live%s: %d, want 400", q[:min(len(q), 20)], code)
		}
	}
	_ = errors.New
}

// The whole console (page, script, style, icon) stays under 300 KB.
func TestPageWeight(t *testing.T) {
	f := start(t)
	total := 0
	for _, p := range append([]string{"/console/"}, console.Assets...) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) == 0 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		total += len(b)
	}
	if total > 300<<10 {
		t.Errorf("the console weighs %d bytes, more than 300 KB", total)
	}
	t.Logf("page weight: %d bytes", total)
}

// A live stream outlives the server's ReadTimeout (internal/httpd sets
// 30 s): the stream must last minutes.
func TestLiveOutlivesReadTimeout(t *testing.T) {
	ns := natstest.Start(t)
	bus := natstest.Connect(t, ns.ClientURL())
	o := console.DefaultOptions()
	o.Bus = bus
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Mount(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = 500 * time.Millisecond
	srv.Start()
	defer srv.Close()
	defer c.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/console/live?source=late", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				lines <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	// Well past the ReadTimeout, a window still arrives on the same stream.
	deadline := time.After(1500 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case _, ok := <-lines:
			if !ok {
				t.Fatal("the live stream ended within the server's ReadTimeout")
			}
		case <-deadline:
			waiting = false
		}
	}
	w := window("late", "op", time.Now().Add(-time.Second), time.Second, 3)
	if err := bus.Conn().Publish(streams.WindowSubject(w.AggregatedType, w.Source, w.Name()), w.AppendJSON(nil)); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s, ok := <-lines:
			if !ok {
				t.Fatal("the live stream ended")
			}
			if strings.Contains(s, "event: window") && strings.Contains(s, `"source":"late"`) {
				return
			}
		case <-timeout:
			t.Fatal("no window on the live stream after the ReadTimeout")
		}
	}
}

// Close ends every live stream and returns once their handlers have; a live
// request afterwards is refused.
func TestCloseEndsLiveStreams(t *testing.T) {
	f := start(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/api/v1/console/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	closed := make(chan struct{})
	go func() {
		f.console.Close()
		close(closed)
	}()
	for _, ch := range []chan struct{}{closed, ended} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the live stream within 5 s")
		}
	}
	if code := getJSON(t, f.srv.URL+"/api/v1/console/live", nil); code != http.StatusServiceUnavailable {
		t.Errorf("live after Close: %d, want 503", code)
	}
}

// A live client that goes away frees its slot.
func TestLiveClientGoneFreesSlot(t *testing.T) {
	f := start(t)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/api/v1/console/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %v", err)
	}
	clients := func() float64 {
		mfs, _ := f.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "jetmon_console_live_clients" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	if n := clients(); n != 1 {
		t.Fatalf("%v live clients, want 1", n)
	}
	cancel()
	_ = resp.Body.Close()
	testutil.WaitFor(t, 5*time.Second, func() bool { return clients() == 0 }, "the slot freed")
}
