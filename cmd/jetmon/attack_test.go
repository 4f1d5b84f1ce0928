package main

// The adversarial suite (`make attack`; part of `make test`): every way a
// hostile or careless client was once able to stop, fool or open up
// `jetmon up`, replayed against the real binary, each with the behaviour it
// must show now. docs/security.md is the threat model these rows check.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/ingest"
	"github.com/jetmon/jetmon/streams"
)

// answer is one HTTP answer.
type answer struct {
	code int
	body []byte
	resp ingest.Response
}

// send posts body to url with the headers (name, value pairs).
func send(t *testing.T, method, url string, body []byte, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	a := answer{code: resp.StatusCode}
	a.body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(a.body, &a.resp)
	return a
}

func (p *upProcess) events(t *testing.T, body []byte, headers ...string) answer {
	return send(t, http.MethodPost, "http://"+p.http+"/v1/events", body, headers...)
}

// rss returns the resident memory of the process in bytes.
func (p *upProcess) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// metric returns the sum of the samples of a metric in /metrics.
func (p *upProcess) metric(t *testing.T, name string, headers ...string) (float64, int) {
	t.Helper()
	a := send(t, http.MethodGet, "http://"+p.http+"/metrics", nil, headers...)
	sum := 0.0
	for line := range strings.SplitSeq(string(a.body), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				sum += v
			}
		}
	}
	return sum, len(a.body)
}

// hasMetric reports whether /metrics has a sample of name, so that a check
// of its value cannot pass for a metric that is not there.
func (p *upProcess) hasMetric(t *testing.T, name string) bool {
	t.Helper()
	a := send(t, http.MethodGet, "http://"+p.http+"/metrics", nil)
	return bytes.Contains(a.body, []byte("\n"+name+" ")) || bytes.Contains(a.body, []byte("\n"+name+"{"))
}

func perfLine(source, op string, ms float64, extra string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`{"event_type":"performance.operation.complete","source":%s,"operation":%s,"duration_ms":%v,"status":"success"%s}`, q(source), q(op), ms, extra)
}

// windowCounter adds up the aggregated windows of one source as they are
// published.
type windowCounter struct {
	mu    sync.Mutex
	count uint64
}

func countWindows(t *testing.T, nc *nats.Conn, source string) *windowCounter {
	t.Helper()
	w := &windowCounter{}
	if _, err := nc.Subscribe(string(events.MetricAggregated)+"."+source, func(m *nats.Msg) {
		evs, _ := events.DecodeBatch(m.Data)
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, ev := range evs {
			if a, ok := ev.(*events.AggregateEvent); ok {
				w.count += a.Count
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// expect waits until the windows counted want events, then a while longer
// to see that no more come (over-counting fails too).
func (w *windowCounter) expect(t *testing.T, want uint64, within time.Duration) {
	t.Helper()
	get := func() uint64 { w.mu.Lock(); defer w.mu.Unlock(); return w.count }
	deadline := time.Now().Add(within)
	for get() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if got := get(); got != want {
		t.Fatalf("windows counted %d events, want exactly %d", got, want)
	}
}

func natsConnect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Values that overflow, and an event from a clock an hour ahead, neither
// reach a window nor stop aggregation: not over HTTP (refused at the door)
// and not straight over NATS (dead-lettered by the aggregator), also after a
// restart.
func TestAttackPoisonCannotStopAggregation(t *testing.T) {
	bin := buildJetmon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, bin, dataDir, "--rate", "0", "--window", "1s", "--quiet")
	nc := natsConnect(t, p.nats)

	huge := []byte(perfLine("evil", "op", 1.7e308, "") + "\n" + perfLine("evil", "op", 1.7e308, "") + "\n")
	if a := p.events(t, huge, "Content-Type", "application/x-ndjson"); a.code != http.StatusBadRequest || a.resp.Accepted != 0 || a.resp.Rejected != 2 {
		t.Fatalf("two events of 1.7e308 ms: HTTP %d %s, want 400 with both rejected", a.code, a.body)
	}
	ahead := time.Now().Add(55 * time.Minute).UTC().Format(time.RFC3339Nano)
	if a := p.events(t, []byte(perfLine("skewed", "op", 5, `,"timestamp":"`+ahead+`"`))); a.code != http.StatusBadRequest {
		t.Fatalf("an event 55 min ahead: HTTP %d %s, want 400", a.code, a.body)
	}
	// Past the door: a NATS client publishes the same straight onto the bus.
	for i, raw := range []string{
		perfLine("evil", "op", 1.7e308, `,"id":"evil-1","timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"`),
		perfLine("evil", "op", 1.7e308, `,"id":"evil-2","timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"`),
		perfLine("skewed", "op", 5, `,"id":"skewed-1","timestamp":"`+ahead+`"`),
	} {
		subject := "performance.operation.complete.evil"
		if i == 2 {
			subject = "performance.operation.complete.skewed"
		}
		if err := nc.Publish(subject, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	good := countWindows(t, nc, "good")
	for range 4 {
		var body strings.Builder
		for range 10 {
			body.WriteString(perfLine("good", "op", 20, "") + "\n")
		}
		if a := p.events(t, []byte(body.String()), "Content-Type", "application/x-ndjson"); a.code != http.StatusOK && a.code != http.StatusAccepted {
			t.Fatalf("good events: HTTP %d %s", a.code, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	good.expect(t, 40, 20*time.Second)
	if !p.hasMetric(t, "jetmon_aggregator_events_total") {
		t.Error("/metrics lacks jetmon_aggregator_events_total")
	}
	if late, _ := p.metric(t, `jetmon_aggregator_events_total{outcome="late"}`); late != 0 {
		t.Errorf("%v good events counted late after one source's clock ran an hour ahead", late)
	}
	if a := send(t, http.MethodGet, "http://"+p.http+"/readyz", nil); a.code != http.StatusOK {
		t.Errorf("/readyz %d while aggregation makes progress", a.code)
	}
	tctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := runBin(tctx, bin, "dlq", "list", "--nats-url", p.nats)
	if err != nil || !strings.Contains(out, "evil") {
		t.Errorf("the poisoned events are not among the dead letters: %v\n%s", err, out)
	}

	// The restart resumes and goes on aggregating.
	p.stop(t)
	p2 := startUp(t, bin, dataDir, "--rate", "0", "--window", "1s", "--quiet")
	nc2 := natsConnect(t, p2.nats)
	good2 := countWindows(t, nc2, "good")
	var body strings.Builder
	for range 10 {
		body.WriteString(perfLine("good", "op", 20, "") + "\n")
	}
	if a := p2.events(t, []byte(body.String()), "Content-Type", "application/x-ndjson"); a.code/100 != 2 {
		t.Fatalf("after restart: HTTP %d %s", a.code, a.body)
	}
	good2.expect(t, 10, 20*time.Second)
}

// Oversized input is refused at the door with the limit named, never
// accepted and lost; a huge array of junk gets a small answer; memory stays
// bounded.
func TestAttackSizes(t *testing.T) {
	t.Parallel() // mostly waiting for memory to come back
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--quiet")
	before := p.rss(t)

	// One event that fills the NATS payload limit but for its headers: it
	// is refused at the door, naming the limit; never answered 2xx and lost.
	const size = 1_048_376
	head := `{"event_type":"performance.operation.failed","source":"big","operation":"op","duration_ms":1,"error":"`
	big := head + strings.Repeat("x", size-len(head)-2) + `"}`
	a := p.events(t, []byte(big))
	if a.code/100 == 2 || a.resp.Accepted != 0 {
		t.Fatalf("an event of %d bytes: HTTP %d %.300s, want it refused", len(big), a.code, a.body)
	}
	if !bytes.Contains(a.body, []byte("limit")) && !bytes.Contains(a.body, []byte("longer than")) {
		t.Errorf("the refusal does not name the limit: %.300s", a.body)
	}
	if !p.hasMetric(t, "jetmon_spooled_events_total") {
		t.Error("/metrics lacks jetmon_spooled_events_total")
	} else if spooled, _ := p.metric(t, "jetmon_spooled_events_total"); spooled != 0 {
		t.Errorf("the breaker spooled %v events", spooled)
	}

	// A body over the limit: 413 before it is read.
	if a := p.events(t, bytes.Repeat([]byte(" "), 5<<20)); a.code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB body: HTTP %d, want 413", a.code)
	}

	// 2 M junk items, four requests at once: small answers, memory back.
	junk := make([]byte, 0, 4<<20)
	junk = append(junk, '[')
	for i := range 2_000_000 - 1 {
		if i > 0 {
			junk = append(junk, ',')
		}
		junk = append(junk, '1')
	}
	junk = append(junk, ']')
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			a := p.events(t, junk)
			if a.code != http.StatusBadRequest || len(a.body) > 64<<10 || a.resp.Rejected < 1_000_000 {
				t.Errorf("2 M junk items: HTTP %d, %d-byte answer, %d rejected; want 400, under 64 KiB, all rejected", a.code, len(a.body), a.resp.Rejected)
			}
		})
	}
	wg.Wait()
	t.Logf("RSS %d MB before the storms, %d MB after", before>>20, p.rss(t)>>20)
	// The runtime gives the garbage of the storm back after its next
	// collection, which an idle process makes at the latest 2 min later.
	testutil.WaitFor(t, 150*time.Second, func() bool { return p.rss(t) < 2*before }, fmt.Sprintf("RSS back within 2× of %d MB", before>>20))
}

// Slow clients are cut off instead of holding connections.
func TestAttackSlowClients(t *testing.T) {
	t.Parallel() // mostly waiting for the server to cut the clients off
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--quiet")
	const conns = 200
	var held atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(t.Context(), "tcp", p.http)
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = c.Close() }()
			held.Add(1)
			defer held.Add(-1)
			_, _ = io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
			for start := time.Now(); time.Since(start) < 50*time.Second; {
				if _, err := c.Write([]byte{' '}); err != nil {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, err := c.Read(make([]byte, 512)); n > 0 || (err != nil && !isTimeout(err)) {
					return // answered or closed by the server
				}
			}
			t.Error("a slow connection was still held after 50 s")
		})
	}
	// Meanwhile, an ordinary client is served.
	time.Sleep(time.Second)
	if a := p.events(t, []byte(perfLine("ok", "op", 1, ""))); a.code/100 != 2 {
		t.Errorf("a normal request during the slow storm: HTTP %d %s", a.code, a.body)
	}
	wg.Wait()
	if n := held.Load(); n != 0 {
		t.Fatalf("%d connections still held", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// kill -9 under load: every event answered 2xx is in the stream after the
// restart, none of them twice.
func TestAttackKillNineLosesNoAcknowledgedEvent(t *testing.T) {
	bin := buildJetmon(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, bin, dataDir, "--rate", "0", "--quiet")

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var body bytes.Buffer
				ids := make([]string, 100)
				for i := range ids {
					ids[i] = fmt.Sprintf("k9-%d-%d-%d", c, n, i)
					body.WriteString(perfLine(fmt.Sprintf("svc%d", i%3), "op", 10, `,"id":"`+ids[i]+`"`) + "\n")
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+p.http+"/v1/events", &body)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var r ingest.Response
				_ = json.NewDecoder(resp.Body).Decode(&r)
				_ = resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					if !r.Stored || r.Accepted != len(ids) {
						t.Errorf("2xx without every event stored: HTTP %d %+v", resp.StatusCode, r)
					}
					mu.Lock()
					for _, id := range ids {
						acked[id] = true
					}
					mu.Unlock()
				}
			}
		})
	}
	testutil.WaitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 20_000 }, "20,000 acknowledged events")
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	close(stop)
	wg.Wait()

	p2 := startUp(t, bin, dataDir, "--rate", "0", "--quiet")
	stored := readIDs(t, p2.nats, streams.Performance)
	mu.Lock()
	defer mu.Unlock()
	lost, twice := 0, 0
	for id := range acked {
		switch stored[id] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	t.Logf("%d events answered 2xx before kill -9; %d stored in all", len(acked), len(stored))
	if lost != 0 || twice != 0 {
		t.Fatalf("of %d events answered 2xx: %d lost, %d stored more than once", len(acked), lost, twice)
	}
}

// readIDs counts the event ids stored in stream (batches unpacked).
func readIDs(t *testing.T, url, stream string) map[string]int {
	t.Helper()
	nc := natsConnect(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	if info.State.Msgs == 0 {
		return ids
	}
	cons, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for seen := uint64(0); seen < info.State.Msgs; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			_ = (events.Decoder{MaxPayload: -1}).EachInBatch(m.Data(), func(it events.BatchItem) {
				if it.Err == nil {
					ids[it.Event.Metadata().ID]++
				}
			})
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages of %s", seen, info.State.Msgs, stream)
		}
		seen += uint64(n)
	}
	return ids
}

// The same request with ids, sent three times (a client retrying), is
// stored once and counted once.
func TestAttackRepeatedRequestCountedOnce(t *testing.T) {
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--window", "1s", "--quiet")
	nc := natsConnect(t, p.nats)
	w := countWindows(t, nc, "retry")
	var body strings.Builder
	for i := range 10 {
		body.WriteString(perfLine("retry", "op", 10, fmt.Sprintf(`,"id":"retry-%d"`, i)) + "\n")
	}
	for range 3 {
		if a := p.events(t, []byte(body.String()), "Content-Type", "application/x-ndjson"); a.code/100 != 2 {
			t.Fatalf("HTTP %d %s", a.code, a.body)
		}
	}
	// The same events once more, one at a time (other messages, other
	// batches): still counted once.
	for i := range 10 {
		if a := p.events(t, []byte(perfLine("retry", "op", 10, fmt.Sprintf(`,"id":"retry-%d"`, i)))); a.code/100 != 2 {
			t.Fatalf("HTTP %d %s", a.code, a.body)
		}
	}
	w.expect(t, 10, 20*time.Second)
	ids := readIDs(t, p.nats, streams.Performance)
	for i := range 10 {
		if n := ids[fmt.Sprintf("retry-%d", i)]; n < 1 {
			t.Errorf("retry-%d stored %d times", i, n)
		}
	}
}

// 120 k distinct sources cannot grow memory or /metrics without bound.
func TestAttackCardinality(t *testing.T) {
	bin := buildJetmon(t)
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--window", "1s", "--quiet")
	var body bytes.Buffer
	for i := range 120_000 {
		body.WriteString(perfLine(fmt.Sprintf("src-%06d", i), "op", 10, "") + "\n")
		if body.Len() > 3<<20 || i == 119_999 {
			if a := p.events(t, body.Bytes(), "Content-Type", "application/x-ndjson"); a.code/100 != 2 {
				t.Fatalf("HTTP %d %.300s", a.code, a.body)
			}
			body.Reset()
		}
	}
	testutil.WaitFor(t, 60*time.Second, func() bool {
		added, _ := p.metric(t, `jetmon_aggregator_events_total{outcome="added"}`)
		return added >= 120_000
	}, "120,000 events aggregated")
	series, size := p.metric(t, "jetmon_aggregator_series")
	if series <= 0 || series > 10_000+1 { // the limit, and the overflow series
		t.Errorf("jetmon_aggregator_series = %v, want between 1 and the 10,000 limit (+ overflow)", series)
	}
	if size > 4<<20 {
		t.Errorf("/metrics is %d bytes after 120 k sources", size)
	}
	// Measured on the 2-core CI machine: heap in use 335–344 MB, RSS
	// 428–548 MB (the same before and after the amendments and handoff of
	// 2026-12-02). A bound of 512 MB failed one clean-clone run of five at
	// 548 MB; 768 MB still catches memory that grows with the sources.
	heap, _ := p.metric(t, "go_memstats_heap_inuse_bytes")
	rss := p.rss(t)
	t.Logf("after 120 k sources: heap in use %d MB, RSS %d MB", int64(heap)>>20, rss>>20)
	if rss > 768<<20 {
		t.Errorf("RSS %d MB after 120 k sources", rss>>20)
	}
}

// Nothing is open by default where it matters.
func TestAttackClosedByDefault(t *testing.T) {
	bin := buildJetmon(t)
	dir := t.TempDir()
	tokenFile, grantFile := filepath.Join(dir, "token"), filepath.Join(dir, "grant")
	if err := os.WriteFile(tokenFile, []byte("tok-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(grantFile, []byte("grant-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("http beyond loopback needs a token", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := runBin(ctx, bin, "up", "--http", "0.0.0.0:"+strconv.Itoa(testutil.FreePort(t)), "--nats-port", "0", "--data-dir", filepath.Join(dir, "d0"))
		if err == nil || !strings.Contains(out, "0.0.0.0") || !strings.Contains(out, "token") {
			t.Fatalf("jetmon up --http 0.0.0.0: %v\n%s", err, out)
		}
		out, err = runBin(ctx, bin, "up", "--nats-host", "0.0.0.0", "--nats-port", strconv.Itoa(testutil.FreePort(t)), "--data-dir", filepath.Join(dir, "d1"))
		if err == nil || !strings.Contains(out, "guests") {
			t.Fatalf("jetmon up --nats-host 0.0.0.0: %v\n%s", err, out)
		}
	})

	p := startUp(t, bin, filepath.Join(dir, "data"), "--rate", "0", "--quiet")
	silence := []byte(`{"matchers":[{"name":"alertname","value":".*","isRegex":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2036-01-01T00:00:00Z","createdBy":"x","comment":"x"}`)
	t.Run("no cross-site writes", func(t *testing.T) {
		if a := send(t, http.MethodPost, "http://"+p.http+"/api/v1/silences", silence, "Content-Type", "text/plain"); a.code != http.StatusUnsupportedMediaType {
			t.Errorf("silence as text/plain: HTTP %d %s, want 415", a.code, a.body)
		}
		if a := send(t, http.MethodPost, "http://"+p.http+"/api/v1/silences", silence, "Origin", "http://evil.example"); a.code != http.StatusForbidden {
			t.Errorf("silence from a foreign Origin: HTTP %d %s, want 403", a.code, a.body)
		}
		if a := p.events(t, []byte(perfLine("x", "op", 1, "")), "Content-Type", "application/x-www-form-urlencoded"); a.code != http.StatusUnsupportedMediaType {
			t.Errorf("events as a form: HTTP %d %s, want 415", a.code, a.body)
		}
	})
	t.Run("forged pipeline events need the grant", func(t *testing.T) {
		now := time.Now().UTC()
		forged := fmt.Sprintf(`{"event_type":"performance.metric.aggregated","source":"x","aggregated_type":"performance.operation.complete","operation":"op","window_start":%q,"window_end":%q,"count":1}`+"\n"+
			`{"event_type":"monitoring.disabled","source":"x","scope":">"}`+"\n", now.Add(-time.Second).Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
		if a := p.events(t, []byte(forged), "Content-Type", "application/x-ndjson"); a.resp.Accepted != 0 || a.code/100 == 2 {
			t.Errorf("forged window and monitoring.disabled: HTTP %d %s, want both refused", a.code, a.body)
		}
	})
	t.Run("guests cannot manage streams", func(t *testing.T) {
		nc := natsConnect(t, p.nats)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, streams.Alerts); err == nil {
			t.Fatal("an anonymous NATS client deleted the ALERTS stream")
		}
		if _, err := js.Stream(t.Context(), streams.Alerts); err != nil {
			t.Fatalf("ALERTS: %v", err)
		}
	})
	p.stop(t)

	// With tokens: reads and writes need the token; the grant admits the
	// pipeline's types; probes stay open.
	p2 := startUp(t, bin, filepath.Join(dir, "data2"), "--rate", "0", "--quiet", "--token-file", tokenFile, "--grant-token-file", grantFile)
	auth := []string{"Authorization", "Bearer tok-0123456789"}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/windows", "/metrics"} {
		if a := send(t, http.MethodGet, "http://"+p2.http+path, nil); a.code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: HTTP %d", path, a.code)
		}
		if a := send(t, http.MethodGet, "http://"+p2.http+path, nil, auth...); a.code != http.StatusOK {
			t.Errorf("GET %s with the token: HTTP %d %s", path, a.code, a.body)
		}
	}
	if a := p2.events(t, []byte(perfLine("x", "op", 1, ""))); a.code != http.StatusUnauthorized {
		t.Errorf("POST /v1/events without the token: HTTP %d", a.code)
	}
	if a := p2.events(t, []byte(perfLine("x", "op", 1, "")), auth...); a.code/100 != 2 {
		t.Errorf("POST /v1/events with the token: HTTP %d %s", a.code, a.body)
	}
	off := []byte(`{"event_type":"monitoring.disabled","source":"ops","scope":"performance.>"}`)
	if a := p2.events(t, off, auth...); a.code/100 == 2 {
		t.Errorf("monitoring.disabled with the plain token: HTTP %d %s, want refused", a.code, a.body)
	}
	if a := p2.events(t, off, "Authorization", "Bearer grant-0123456789"); a.code/100 != 2 {
		t.Errorf("monitoring.disabled with the grant: HTTP %d %s, want accepted", a.code, a.body)
	}
	if a := send(t, http.MethodGet, "http://"+p2.http+"/healthz", nil); a.code != http.StatusOK {
		t.Errorf("/healthz with a token set: HTTP %d", a.code)
	}
	// The console's pages hold no data and load without the token; its
	// API does not, and its writes refuse other origins even with it.
	for _, path := range []string{"/console/", "/console/series", "/console/assets/app.js"} {
		if a := send(t, http.MethodGet, "http://"+p2.http+path, nil); a.code != http.StatusOK {
			t.Errorf("GET %s without the token: HTTP %d, want the page", path, a.code)
		}
	}
	for _, path := range []string{"/api/v1/history/windows", "/api/v1/history/health", "/api/v1/console/overview", "/api/v1/console/live", "/api/v1/console/silences", "/api/v1/console/deadletters"} {
		if a := send(t, http.MethodGet, "http://"+p2.http+path, nil); a.code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: HTTP %d", path, a.code)
		}
	}
	sil := []byte(`{"matchers":{"alertname":"OperationSlow"},"duration":"1h"}`)
	if a := send(t, http.MethodPost, "http://"+p2.http+"/api/v1/console/silences", sil, "Content-Type", "application/json"); a.code != http.StatusUnauthorized {
		t.Errorf("POST a silence without the token: HTTP %d", a.code)
	}
	if a := send(t, http.MethodPost, "http://"+p2.http+"/api/v1/console/silences", sil, "Content-Type", "application/json", "Origin", "http://evil.example", auth[0], auth[1]); a.code != http.StatusForbidden {
		t.Errorf("POST a silence from another origin: HTTP %d", a.code)
	}
	if a := send(t, http.MethodPost, "http://"+p2.http+"/api/v1/console/silences", sil, "Content-Type", "application/json", auth[0], auth[1]); a.code != http.StatusOK {
		t.Errorf("POST a silence with the token: HTTP %d %s", a.code, a.body)
	}
}

// Secrets never reach the logs; control bytes never reach the terminal;
// pretty JSON is accepted; one bad NDJSON line spoils nothing else; gauges
// tell the truth when scraped.
func TestAttackLogsTerminalAndParsing(t *testing.T) {
	bin := buildJetmon(t)
	hits := make(chan struct{}, 100)
	hook := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case hits <- struct{}{}:
		default:
		}
		http.Error(w, "down", http.StatusInternalServerError)
	})}
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hook.Serve(l) }()
	t.Cleanup(func() { _ = hook.Close() })
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	hookURL := "http://hookuser:hunter2pw@" + l.Addr().String() + "/hook?token=SECRETTOKEN123"
	if err := os.WriteFile(rules, fmt.Appendf(nil, `rules:
  - alert: OperationSlow
    field: p95
    threshold: 250
route:
  receiver: hook
  group_wait: 0s
receivers:
  - name: hook
    webhook: {url: %q}
`, hookURL), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startUp(t, bin, filepath.Join(t.TempDir(), "data"), "--rate", "0", "--window", "1s", "--rules", rules, "--log-level", "debug")

	pretty := []byte("{\n  \"event_type\": \"performance.operation.complete\",\n  \"source\": \"pretty\",\n  \"operation\": \"op\",\n  \"duration_ms\": 900\n}\n")
	if a := p.events(t, pretty); a.code/100 != 2 || a.resp.Accepted != 1 {
		t.Errorf("a pretty-printed event: HTTP %d %s", a.code, a.body)
	}
	ndjson := perfLine("lines", "op", 900, "") + "\n" + `{"event_type":"performance.operation.complete","source":"lines","operation":"` + strings.Repeat("y", 2<<20) + `"}` + "\n" + perfLine("lines", "op", 900, "") + "\n"
	if a := p.events(t, []byte(ndjson), "Content-Type", "application/x-ndjson"); a.resp.Accepted != 2 || a.resp.Rejected != 1 {
		t.Errorf("NDJSON with one 2 MiB line between two good ones: HTTP %d %.400s, want 2 accepted and 1 rejected", a.code, a.body)
	}
	// Control bytes: refused at the door, and past it (straight over NATS)
	// never written raw to the terminal.
	esc := perfLine("term", "op\x1b]0;pwned\x07\x1b[2J", 900, "")
	if a := p.events(t, []byte(esc)); a.code != http.StatusBadRequest {
		t.Errorf("operation with escape bytes: HTTP %d %s, want 400", a.code, a.body)
	}
	nc := natsConnect(t, p.nats)
	raw := perfLine("term\x1b[31m", "op\x1b]0;pwned\x07\x1b[2J", 900, `,"id":"esc-1","timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"`)
	if err := nc.Publish("performance.operation.complete.term", []byte(raw)); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if a := p.events(t, []byte(perfLine("slow", "op", 900, ""))); a.code/100 != 2 {
			t.Fatalf("HTTP %d %s", a.code, a.body)
		}
	}
	select {
	case <-hits:
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook was never called")
	}
	testutil.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(p.stdout.String(), "slow") }, "the live view showing the windows")
	time.Sleep(2 * time.Second) // a failure log line and a redraw or two
	if series, _ := p.metric(t, "jetmon_aggregator_series"); series < 1 {
		t.Errorf("jetmon_aggregator_series scraped as %v with series open", series)
	}
	p.stop(t)
	logs := p.stderr.String() + p.stdout.String()
	for _, secret := range []string{"hunter2pw", "SECRETTOKEN123"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the output holds the secret %q:\n%s", secret, grep(logs, secret))
		}
	}
	if strings.ContainsAny(p.stdout.String(), "\x1b\x07") {
		t.Errorf("the live view wrote raw control bytes:\n%q", grep(p.stdout.String(), "op"))
	}
}

func grep(s, what string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, what) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
