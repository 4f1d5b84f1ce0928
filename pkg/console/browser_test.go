package console_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/history"
	"github.com/jetmon/jetmon/streams"
)

// browser is a headless Chromium that records every console error,
// uncaught exception and error log entry (CSP violations, failed loads).
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	// netChanges counts the loads Chromium aborted because the host's
	// network interfaces changed (containers coming and going on the
	// machine): no fault of the page.
	netChanges atomic.Int64
}

// attempt runs fn, and again (at most three tries) only when Chromium saw
// the host's network change during the try; any other failure fails t.
func (b *browser) attempt(t *testing.T, what string, fn func() error) {
	t.Helper()
	for try := 1; ; try++ {
		before := b.netChanges.Load()
		err := fn()
		if err == nil {
			return
		}
		if err != nil && strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			b.netChanges.Add(1)
		}
		if b.netChanges.Load() != before && try < 3 {
			t.Logf("%s: %v, while the host's network changed; again", what, err)
			continue
		}
		t.Fatalf("%s: %v", what, err)
	}
}

// do runs actions within d.
func (b *browser) do(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := testutil.Tool(t, "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	b := &browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() { cancel(); cancelA() })
	b.ctx = ctx
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value))
			}
			b.errors = append(b.errors, "console."+string(e.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		b.errors = append(b.errors, "exception: "+(&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
	case *log.EventEntryAdded:
		if strings.Contains(e.Entry.Text, "ERR_NETWORK_CHANGED") {
			b.netChanges.Add(1)
			return
		}
		if e.Entry.Level == log.EntryLevelError {
			b.errors = append(b.errors, "log: "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		err := chromedp.Do(ctx, actions...)
		cancel()
		// Chromium aborts a load when the machine's network interfaces
		// change (containers coming and going beside the test): that is
		// no fault of the page, so the steps run again.
		if err != nil && strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") && attempt < 3 {
			b.netChanges.Add(1)
			t.Logf("%s: %v; again", what, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// screenshot writes docs/console/<name>.png when JETMON_SCREENSHOTS=1.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("JETMON_SCREENSHOTS") != "1" {
		return
	}
	png := get(t, b, chromedp.FullScreenshot(100))
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBrowser(t *testing.T) {
	f := start(t)
	now := time.Now()
	f.seed(t, now)
	b := newBrowser(t)
	ready := `body[data-ready="1"]`
	seriesQ := url.Values{"source": {"checkout"}, "type": {string(events.OperationComplete)}, "operation": {"db.query"}, "range": {"1h"}}

	// Every page loads with no console error, and nothing from the
	// events runs as markup.
	for _, p := range []struct{ name, path, wait string }{
		{"overview", "/console/", "#system-status"},
		{"performance", "/console/performance", "#series tbody tr"},
		{"series", "/console/series?" + seriesQ.Encode(), "#latency circle.pt"},
		{"health", "/console/health", "#components tbody tr"},
		{"alerts", "/console/alerts", "#alert-history tr"},
		{"deadletters", "/console/deadletters", "#deadletters tbody tr"},
	} {
		t.Run(p.name, func(t *testing.T) {
			b.run(t, p.path, chromedp.Navigate(f.srv.URL+p.path), chromedp.WaitVisible(chromedp.CSS(ready)), chromedp.WaitVisible(chromedp.CSS(p.wait)))
			xssRan := get(t, b, chromedp.Evaluate[bool](`window.__xss === 1`))
			text := get(t, b, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			if xssRan {
				t.Errorf("%s: markup from an event ran", p.path)
			}
			if p.name != "overview" && p.name != "series" && !strings.Contains(text, "<img src=x onerror=") {
				t.Errorf("%s: the hostile name is not shown as text", p.path)
			}
			if errs := b.takeErrors(); len(errs) > 0 {
				t.Errorf("%s: console errors: %v", p.path, errs)
			}
			b.screenshot(t, p.name)
		})
	}

	t.Run("series chart shows the API's points", func(t *testing.T) {
		b.run(t, "series", chromedp.Navigate(f.srv.URL+"/console/series?"+seriesQ.Encode()), chromedp.WaitVisible(chromedp.CSS("#latency circle.pt")))
		query := get(t, b, chromedp.Evaluate[string](`document.querySelector("[data-query]").getAttribute("data-query")`))
		starts := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#latency circle.pt")].map(c => c.dataset.start)`))
		p95s := get(t, b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#latency circle.pt")].map(c => c.dataset.p95)`))
		var res history.WindowResult
		if code := getJSON(t, f.srv.URL+"/api/v1/history/windows?"+query, &res); code != 200 || len(res.Series) != 1 {
			t.Fatalf("API for %s: %d %+v", query, code, res)
		}
		pts := res.Series[0].Points
		if len(pts) < 200 || len(pts) != len(starts) {
			t.Fatalf("chart has %d points, the API %d (want about 200: 50 min at 15 s)", len(starts), len(pts))
		}
		for i, p := range pts {
			ts, _ := time.Parse(time.RFC3339Nano, starts[i])
			v, _ := strconv.ParseFloat(p95s[i], 64)
			if !ts.Equal(p.Start) || v != p.P95 {
				t.Fatalf("point %d: chart %s %s, API %s %v", i, starts[i], p95s[i], p.Start, p.P95)
			}
		}
	})

	t.Run("silence created in the UI is active in the API", func(t *testing.T) {
		b.attempt(t, "create silence", func() error {
			return b.do(10*time.Second, chromedp.Navigate(f.srv.URL+"/console/alerts"), chromedp.WaitVisible(chromedp.CSS(ready)),
				chromedp.SendKeys(chromedp.CSS("#sil-matchers"), "alertname=Slow"), chromedp.SetValue(chromedp.CSS("#sil-duration"), "2h"),
				chromedp.SendKeys(chromedp.CSS("#sil-comment"), "from the browser"), chromedp.Click(chromedp.CSS(`#silence-form button[type=submit]`)),
				chromedp.WaitVisible(chromedp.CSS("#silences tbody tr")))
		})
		var list []struct {
			Matchers map[string]string `json:"matchers"`
			EndsAt   time.Time         `json:"ends_at"`
			Comment  string            `json:"comment"`
		}
		getJSON(t, f.srv.URL+"/api/v1/console/silences", &list)
		// One silence, or one per try when a try's answer was lost to a
		// network change after the server had it.
		if len(list) < 1 || len(list) > 3 {
			t.Fatalf("silences after the UI created one: %+v", list)
		}
		for _, s := range list {
			if s.Matchers["alertname"] != "Slow" || s.Comment != "from the browser" ||
				s.EndsAt.Before(time.Now().Add(119*time.Minute)) || s.EndsAt.After(time.Now().Add(121*time.Minute)) {
				t.Fatalf("silences after the UI created one: %+v", list)
			}
		}
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("live window appears within 2s", func(t *testing.T) {
		try := 0
		b.attempt(t, "live window", func() error {
			try++
			if err := b.do(20*time.Second, chromedp.Navigate(f.srv.URL+"/console/performance"), chromedp.WaitVisible(chromedp.CSS("#series tbody tr")),
				chromedp.WaitVisible(chromedp.CSS(`#live.on`))); err != nil {
				return err
			}
			src := fmt.Sprintf("live-svc-%d", try)
			w := window(src, "fresh.op", time.Now().Truncate(time.Second).Add(-time.Second), time.Second, 42)
			emitted := time.Now()
			f.storeWindow(t, w)
			if err := b.do(2*time.Second-time.Since(emitted), chromedp.WaitVisible(chromedp.CSS(`#series tr[data-key^="`+src+`"]`))); err != nil {
				return fmt.Errorf("the live window was not shown within 2 s of being stored: %w", err)
			}
			t.Logf("live window shown %s after it was stored", time.Since(emitted).Round(time.Millisecond))
			return nil
		})
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("health change shows live", func(t *testing.T) {
		try := 0
		b.attempt(t, "live health", func() error {
			try++
			if err := b.do(20*time.Second, chromedp.Navigate(f.srv.URL+"/console/health"), chromedp.WaitVisible(chromedp.CSS("#components tbody tr")),
				chromedp.WaitVisible(chromedp.CSS(`#live.on`))); err != nil {
				return err
			}
			comp := fmt.Sprintf("queue-%d", try)
			h := events.NewHealthEvent(events.ComponentFailed, "agent", comp)
			emitted := time.Now()
			if err := f.bus.Publish(t.Context(), h); err != nil {
				t.Fatal(err)
			}
			if err := b.do(2*time.Second, chromedp.WaitVisible(chromedp.CSS(`#components tr[data-component="`+comp+`"] td.status-failed`))); err != nil {
				return fmt.Errorf("the failed component was not shown within 2 s: %w", err)
			}
			t.Logf("health change shown %s after it was published", time.Since(emitted).Round(time.Millisecond))
			return nil
		})
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("pages left hold no live stream", func(t *testing.T) {
		for range 3 {
			for _, p := range []string{"/console/", "/console/performance", "/console/health", "/console/alerts"} {
				b.run(t, p, chromedp.Navigate(f.srv.URL+p), chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
			}
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
		testutil.WaitFor(t, 5*time.Second, func() bool { return clients() == 1 }, "one live stream, the open page's, after 12 navigations")
	})

	t.Run("keyboard", func(t *testing.T) {
		b.run(t, "overview", chromedp.Navigate(f.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS(ready)))
		// The first Tab reaches the skip link; g then h opens the health page.
		b.run(t, "keys", chromedp.KeyEvent("\t"))
		if got := get(t, b, chromedp.Evaluate[string](`document.activeElement.className`)); got != "skip" {
			t.Errorf("the first Tab focuses %q, want the skip link", got)
		}
		b.run(t, "keys", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.KeyEvent("g"), chromedp.KeyEvent("h"),
			chromedp.WaitVisible(chromedp.CSS(`body[data-view="health"]`)))
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("phone and dark theme", func(t *testing.T) {
		b.run(t, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.srv.URL+"/console/series?"+seriesQ.Encode()),
			chromedp.WaitVisible(chromedp.CSS("#latency circle.pt")), chromedp.Click(chromedp.CSS("#theme")))
		theme := get(t, b, chromedp.Evaluate[string](`document.documentElement.getAttribute("data-theme") || ""`))
		width := get(t, b, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
		if theme != "dark" && theme != "light" {
			t.Errorf("theme toggle set %q", theme)
		}
		if width > 390 {
			t.Errorf("the series page is %v px wide on a 390 px phone", width)
		}
		b.screenshot(t, "series-phone")
	})
}

// TestBrowserFirstPaint loads the performance page with 1,000 live series:
// first paint within 1 s, and the table of all 1,000 drawn.
func TestBrowserFirstPaint(t *testing.T) {
	f := start(t)
	now := time.Now().Truncate(10 * time.Second)
	var futs []jetstream.PubAckFuture
	for s := range 1000 {
		for i := range 6 {
			w := window(fmt.Sprintf("svc-%03d", s%50), fmt.Sprintf("op-%d", s/50), now.Add(time.Duration(i-6)*10*time.Second), 10*time.Second, float64(s), float64(s+i))
			m, err := jsbus.NewMsg(w)
			if err != nil {
				t.Fatal(err)
			}
			m.Subject = streams.WindowSubject(w.AggregatedType, w.Source, w.Name())
			fu, err := f.js.PublishMsgAsync(m)
			if err != nil {
				t.Fatal(err)
			}
			futs = append(futs, fu)
		}
		if len(futs) >= 1200 {
			waitAcks(t, futs)
			futs = futs[:0]
		}
	}
	waitAcks(t, futs)
	b := newBrowser(t)
	start := time.Now()
	b.run(t, "performance", chromedp.Navigate(f.srv.URL+"/console/performance"), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`)))
	rows := get(t, b, chromedp.Evaluate[int](`document.querySelectorAll("#series tbody tr").length`))
	drawn := time.Since(start)
	fcp := get(t, b, chromedp.Evaluate[float64](`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`))
	if rows != 1000 {
		t.Errorf("the table has %d rows, want 1000", rows)
	}
	if fcp < 0 || fcp > 1000 {
		t.Errorf("first contentful paint at %.0f ms, want within 1 s", fcp)
	}
	t.Logf("1,000 series: first contentful paint %.0f ms, table of all series drawn %s after navigation", fcp, drawn.Round(time.Millisecond))
	if errs := b.takeErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

func waitAcks(t *testing.T, futs []jetstream.PubAckFuture) {
	t.Helper()
	for _, fu := range futs {
		select {
		case <-fu.Ok():
		case err := <-fu.Err():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no ack within 10 s")
		}
	}
}
