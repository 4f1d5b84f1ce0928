package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/console"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/history"
	"github.com/jetmon/jetmon/pkg/trace"
	"github.com/jetmon/jetmon/pkg/tracing"
)

// startTraces is the console as `jetmon up` serves it: with the trace
// runtime on the same bus and its API on the same mux.
func startTraces(t *testing.T) (*fixture, *tracing.Service) {
	t.Helper()
	ns := natstest.Start(t)
	bus := natstest.Connect(t, ns.ClientURL())
	to := tracing.DefaultOptions()
	to.Bus = bus
	to.Assembly.Horizon = 300 * time.Millisecond
	svc, err := tracing.New(to)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, svc.Ready, "trace service ready")
	o := console.DefaultOptions()
	o.Bus, o.Registerer, o.Traces = bus, prometheus.NewRegistry(), true
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux, tm := http.NewServeMux(), http.NewServeMux()
	svc.Mount(tm)
	for _, p := range []string{"/api/v1/traces", "/api/v1/traces/", "/api/v1/dependencies", "/api/v1/bottlenecks"} {
		mux.Handle(p, tm)
	}
	c.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tracing Run: %v", err)
		}
	})
	return &fixture{srv: srv, bus: bus, js: bus.JetStream(), console: c, reg: o.Registerer.(*prometheus.Registry)}, svc
}

// publishTrace publishes a trace of four spans with known ids through the
// bus, as services would: a gateway call, two calls it makes (one failing)
// and one whose service and operation are named to attack the page.
func publishTrace(t *testing.T, f *fixture, svc *tracing.Service) (events.TraceID, []events.SpanID) {
	t.Helper()
	id := events.NewTraceID()
	spans := []events.SpanID{events.NewSpanID(), events.NewSpanID(), events.NewSpanID(), events.NewSpanID()}
	now := time.Now().UTC().Add(-time.Second)
	for _, sp := range []struct {
		svc, op      string
		span, parent events.SpanID
		end          time.Duration
		durationMS   float64
		failed       bool
	}{
		{"gateway", "GET /checkout", spans[0], events.SpanID{}, 0, 120, false},
		{"orders", "db.query", spans[1], spans[0], -30 * time.Millisecond, 60, true},
		{"billing", "charge", spans[2], spans[0], -5 * time.Millisecond, 20, false},
		{xss, xss, spans[3], spans[1], -40 * time.Millisecond, 10, false},
	} {
		typ := events.OperationComplete
		if sp.failed {
			typ = events.OperationFailed
		}
		ev := events.NewPerformanceEvent(typ, sp.svc)
		ev.TraceID, ev.SpanID, ev.ParentSpanID = id, sp.span, sp.parent
		ev.Timestamp, ev.Operation, ev.DurationMS = now.Add(sp.end), sp.op, sp.durationMS
		if err := f.bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		tr, err := svc.Get(t.Context(), id)
		return err == nil && len(tr.Nodes) == len(spans)
	}, "trace stored with its spans")
	return id, spans
}

func TestFeatures(t *testing.T) {
	f := start(t)
	var v console.Features
	if code := getJSON(t, f.srv.URL+"/api/v1/console/features", &v); code != http.StatusOK || v.Traces {
		t.Fatalf("standalone console: features %d %+v, want traces false", code, v)
	}
}

func TestBrowserTraces(t *testing.T) {
	f, svc := startTraces(t)
	id, spans := publishTrace(t, f, svc)
	// A series whose windows name their slowest traces, the known one
	// among them.
	base := time.Now().Add(-20 * time.Minute).Truncate(10 * time.Second)
	for i := range 60 {
		w := window("checkout", "db.query", base.Add(time.Duration(i)*10*time.Second), 10*time.Second, float64(10+i%7), float64(20+i%5))
		if i%3 == 0 {
			w.SlowestTraceIDs = []events.TraceID{id, events.NewTraceID()}
		}
		f.storeWindow(t, w)
	}
	b := newBrowser(t)
	ready := `body[data-ready="1"]`
	noErrors := func(t *testing.T, what string) {
		t.Helper()
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("%s: console errors: %v", what, errs)
		}
	}

	t.Run("series links its windows' slowest traces", func(t *testing.T) {
		q := url.Values{"source": {"checkout"}, "type": {string(events.OperationComplete)}, "operation": {"db.query"}, "range": {"1h"}}
		b.run(t, "series", chromedp.Navigate(f.srv.URL+"/console/series?"+q.Encode()), chromedp.WaitVisible(chromedp.CSS("#latency")))
		b.run(t, "series", chromedp.WaitVisible(chromedp.CSS("#exemplars a.trace-id")))
		query := get(t, b, chromedp.Evaluate[string](`document.querySelector("[data-query]").getAttribute("data-query")`))
		hrefs := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#exemplars a.trace-id")].map(a => a.getAttribute("href"))`))
		var res history.WindowResult
		if code := getJSON(t, f.srv.URL+"/api/v1/history/windows?"+query, &res); code != 200 || len(res.Series) != 1 {
			t.Fatalf("API for %s: %d %+v", query, code, res)
		}
		var want []string
		for _, p := range slices.Backward(res.Series[0].Points) { // the page lists the newest first
			for _, tid := range p.SlowestTraceIDs {
				want = append(want, "/console/trace?id="+tid)
			}
		}
		if len(want) == 0 || !slices.Equal(hrefs, want) {
			t.Fatalf("links on the page %v\nids from the API %v", hrefs, want)
		}
		if !slices.Contains(want, "/console/trace?id="+id.String()) {
			t.Errorf("the known trace %s is not among the links", id)
		}
		// Following a link opens that trace's page.
		b.run(t, "follow", chromedp.Click(chromedp.CSS(`#exemplars a[data-trace="`+id.String()+`"]`)), chromedp.WaitVisible(chromedp.CSS("#waterfall g.row")))
		if got := get(t, b, chromedp.Evaluate[string](`location.pathname + location.search`)); got != "/console/trace?id="+id.String() {
			t.Errorf("the link led to %s", got)
		}
		noErrors(t, "series")
	})

	t.Run("trace page shows exactly the trace's spans", func(t *testing.T) {
		b.run(t, "trace", chromedp.Navigate(f.srv.URL+"/console/trace?id="+id.String()), chromedp.WaitVisible(chromedp.CSS(ready)), chromedp.WaitVisible(chromedp.CSS("#waterfall g.row")))
		type row struct {
			SpanID   string `json:"span"`
			Service  string `json:"svc"`
			Op       string `json:"op"`
			Error    bool   `json:"error"`
			Critical bool   `json:"critical"`
			Tab      int    `json:"tab"`
		}
		rows := get(t, b, chromedp.Evaluate[[]row](`[...document.querySelectorAll("#waterfall g.row")].map(g => ({span: g.dataset.spanId,
			svc: g.querySelector("text.svc").textContent, op: g.querySelector("text.op").textContent, error: g.classList.contains("error"),
			critical: g.classList.contains("critical"), tab: g.tabIndex}))`))
		var v trace.View
		if code := getJSON(t, f.srv.URL+"/api/v1/traces/"+id.String(), &v); code != 200 || len(v.Spans) != len(spans) {
			t.Fatalf("trace API: %d %+v", code, v)
		}
		if len(rows) != len(v.Spans) {
			t.Fatalf("the waterfall has %d rows, the trace %d spans", len(rows), len(v.Spans))
		}
		onPath := map[int]bool{}
		for _, seg := range v.CriticalPath {
			onPath[seg.Index] = seg.Index >= 0
		}
		for i, sp := range v.Spans {
			r := rows[i]
			op := sp.Name
			if sp.Error {
				op = "✕ " + op
			}
			if r.SpanID != sp.SpanID || !strings.HasPrefix(sp.Service, strings.TrimSuffix(r.Service, "…")) || !strings.HasPrefix(op, strings.TrimSuffix(r.Op, "…")) ||
				r.Error != sp.Error || r.Critical != onPath[i] || r.Tab != 0 {
				t.Errorf("row %d: %+v, span %+v (critical %v)", i, r, sp, onPath[i])
			}
		}
		var shown []string
		for _, r := range rows {
			shown = append(shown, r.SpanID)
		}
		for _, sp := range spans {
			if !slices.Contains(shown, sp.String()) {
				t.Errorf("span %s is not on the page", sp)
			}
		}
		if !rows[1].Error || rows[0].Error || !rows[0].Critical {
			t.Errorf("the failing db.query must be marked, the gateway on the critical path: %+v", rows)
		}
		// Keyboard: a row takes the focus and Enter shows its details,
		// the hostile names as text.
		b.run(t, "select", chromedp.Evaluate[chromedp.Void](`document.querySelector('#waterfall g.row[data-span-id="`+spans[3].String()+`"]').focus()`), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(chromedp.CSS("#span-detail table")))
		detail := get(t, b, chromedp.Evaluate[string](`document.getElementById("span-detail").innerText`))
		if !strings.Contains(detail, spans[3].String()) || !strings.Contains(detail, xss) {
			t.Errorf("details of the selected span: %q", detail)
		}
		if get(t, b, chromedp.Evaluate[bool](`window.__xss === 1`)) {
			t.Error("markup from a span name ran")
		}
		noErrors(t, "trace")
		b.screenshot(t, "trace")
		// On a phone the waterfall scales to the width; the page does not
		// scroll sideways.
		b.run(t, "phone", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#waterfall g.row")))
		if w := get(t, b, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`)); w > 390 {
			t.Errorf("the trace page is %v px wide on a 390 px phone", w)
		}
		b.run(t, "desktop", chromedp.EmulateViewport(1280, 900))
		noErrors(t, "trace on a phone")
	})

	t.Run("unknown and malformed trace ids are said plainly", func(t *testing.T) {
		for _, tid := range []string{events.NewTraceID().String(), "not-a-trace"} {
			b.run(t, tid, chromedp.Navigate(f.srv.URL+"/console/trace?id="+tid), chromedp.WaitVisible(chromedp.CSS(ready)), chromedp.WaitVisible(chromedp.CSS("#trace .err-msg")))
		}
		b.takeErrors() // the 404 of the unknown trace is logged by Chromium as a failed load
	})

	t.Run("recent traces", func(t *testing.T) {
		b.run(t, "traces", chromedp.Navigate(f.srv.URL+"/console/trace"), chromedp.WaitVisible(chromedp.CSS(`#traces a[data-trace="`+id.String()+`"]`)))
		noErrors(t, "recent traces")
	})

	t.Run("dependencies and bottlenecks", func(t *testing.T) {
		b.run(t, "dependencies", chromedp.Navigate(f.srv.URL+"/console/dependencies"), chromedp.WaitVisible(chromedp.CSS("#edges tbody tr")),
			chromedp.WaitVisible(chromedp.CSS("#depmap")), chromedp.WaitVisible(chromedp.CSS("#bottlenecks tbody tr")))
		edges := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#edges tbody tr")].map(r => r.dataset.edge).sort()`))
		drawn := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#depmap path.edge")].map(p => p.dataset.edge).sort()`))
		want := []string{"gateway → billing", "gateway → orders", "orders → " + xss}
		slices.Sort(want)
		if !slices.Equal(edges, want) || !slices.Equal(drawn, want) {
			t.Errorf("edges in the table %q, on the map %q, want %q", edges, drawn, want)
		}
		if get(t, b, chromedp.Evaluate[bool](`window.__xss === 1`)) {
			t.Error("markup from a service name ran")
		}
		// The table sorts by a header: by caller, ascending.
		b.run(t, "sort", chromedp.Click(chromedp.CSS(`#edges th:first-child button`)), chromedp.WaitVisible(chromedp.CSS(`#edges th[aria-sort="ascending"]`)))
		callers := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#edges tbody tr td:first-child")].map(td => td.textContent)`))
		if !slices.IsSorted(callers) {
			t.Errorf("sorted by caller: %q", callers)
		}
		noErrors(t, "dependencies")
		b.screenshot(t, "dependencies")
	})

	t.Run("a huge trace draws its first 2,000 spans and says so", func(t *testing.T) {
		big := events.NewTraceID()
		root := events.NewSpanID()
		now := time.Now().UTC()
		for i := range 2500 {
			ev := events.NewPerformanceEvent(events.OperationComplete, "fan-out")
			ev.TraceID, ev.SpanID, ev.Operation, ev.DurationMS, ev.Timestamp = big, events.NewSpanID(), "call", 1, now.Add(time.Duration(i)*time.Millisecond)
			if i == 0 {
				ev.SpanID, ev.DurationMS, ev.Timestamp = root, 3000, now.Add(2500*time.Millisecond)
			} else {
				ev.ParentSpanID = root
			}
			if err := f.bus.Publish(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, 30*time.Second, func() bool {
			tr, err := svc.Get(t.Context(), big)
			return err == nil && len(tr.Nodes) == 2500
		}, "the huge trace stored")
		start := time.Now()
		b.run(t, "huge", chromedp.Navigate(f.srv.URL+"/console/trace?id="+big.String()), chromedp.WaitVisible(chromedp.CSS("#rows-cut")))
		t.Logf("2,500-span trace drawn %s after navigation", time.Since(start).Round(time.Millisecond))
		if n := get(t, b, chromedp.Evaluate[int](`document.querySelectorAll("#waterfall g.row").length`)); n != 2000 {
			t.Errorf("%d rows drawn, want 2,000", n)
		}
		noErrors(t, "huge trace")
	})
}

// Without the trace API (a standalone jetmon console) the trace pages say
// so instead of failing.
func TestBrowserWithoutTraces(t *testing.T) {
	f := start(t)
	b := newBrowser(t)
	for _, p := range []string{"/console/trace?id=" + events.NewTraceID().String(), "/console/dependencies", "/console/trace"} {
		b.run(t, p, chromedp.Navigate(f.srv.URL+p), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)), chromedp.WaitVisible(chromedp.CSS("#no-traces")))
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("%s: console errors: %v", p, errs)
		}
	}
	// g then m opens the map, g then t the trace page.
	for key, view := range map[string]string{"m": "dependencies", "t": "trace"} {
		b.run(t, "keys", chromedp.Navigate(f.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)),
			chromedp.KeyEvent("g"), chromedp.KeyEvent(key), chromedp.WaitVisible(chromedp.CSS(`body[data-view="`+view+`"] #no-traces`)))
	}
}
