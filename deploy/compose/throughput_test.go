//go:build compose

package compose_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
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
)

// Throughput run: the same events through the compose deployment and then
// through `jetmon up` on the same machine, in the same run.
const (
	blastEvents  = 240_000 // per deployment
	blastPer     = 1_000   // events per NDJSON request
	blastClients = 4
	blastSources = 12
)

// blastResult is one deployment's figures.
type blastResult struct {
	ingest, endToEnd float64 // events/s: answered 2xx; first request to last window counted
}

// blast sends blastEvents events of sources prefix-NN in NDJSON requests
// from blastClients clients (each request re-sent until answered 2xx, with
// the same ids), then waits until the stored windows count every one of
// them, exactly.
func blast(t *testing.T, url, token, prefix string, js jetstream.JetStream) blastResult {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range blastClients {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n*blastPer >= blastEvents {
					return
				}
				var body bytes.Buffer
				now := time.Now().UTC().Format(time.RFC3339Nano)
				for i := range blastPer {
					fmt.Fprintf(&body, `{"event_type":"performance.operation.complete","id":"%s-%d-%d","source":"%s-%02d","operation":"op","duration_ms":%d,"timestamp":%q}`+"\n",
						prefix, n, i, prefix, (n+i)%blastSources, 1+i%100, now)
				}
				for attempt := 0; ; attempt++ {
					if attempt == 20 {
						t.Errorf("client %d: request %d not answered 2xx after %d attempts", c, n, attempt)
						return
					}
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/v1/events", bytes.NewReader(body.Bytes()))
					req.Header.Set("Content-Type", "application/x-ndjson")
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := client.Do(req)
					if err == nil {
						_ = resp.Body.Close()
						if resp.StatusCode/100 == 2 {
							break
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	ingested := time.Since(began)
	if t.Failed() {
		t.FailNow()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		counts, _, err := readWindows(t, js)
		var n uint64
		for src, c := range counts {
			if strings.HasPrefix(src, prefix+"-") {
				n += c
			}
		}
		switch {
		case err == nil && n == blastEvents:
			all := time.Since(began)
			return blastResult{ingest: blastEvents / ingested.Seconds(), endToEnd: blastEvents / all.Seconds()}
		case n > blastEvents:
			t.Fatalf("%s: the windows count %d events, %d were sent", prefix, n, blastEvents)
		case time.Now().After(deadline):
			t.Fatalf("%s: the windows count %d of %d events 3 min after the last request (err %v)", prefix, n, blastEvents, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startUp runs the jetmon binary's `up` (built here) on free loopback ports
// with a fresh store, no demo load and the compose test's window, and
// returns its HTTP address and a JetStream client of its NATS server.
func startUp(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "jetmon")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/jetmon")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/jetmon: %v\n%s", err, out)
	}
	httpPort, natsPort := testutil.FreePort(t), testutil.FreePort(t)
	// Cancelled with the test: interrupted (a clean shutdown), killed only
	// if it has not stopped 30 s later.
	cmd := exec.CommandContext(t.Context(), bin, "up", "--rate", "0", "--quiet", "--window", "2s", "--data-dir", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:"+strconv.Itoa(httpPort), "--nats-port", strconv.Itoa(natsPort), "--log-level", "warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jetmon up:\n%s", logs.String())
		}
	})
	url := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	testutil.WaitFor(t, time.Minute, func() bool {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/readyz", http.NoBody)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "jetmon up to be ready")
	// A guest may not delete consumers: the ordered consumers it reads the
	// windows with cannot delete themselves when they reset (harmless).
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := nats.Connect("nats://127.0.0.1:"+strconv.Itoa(natsPort), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return url, js
}

// TestComposeThroughputAgainstJetmonUp sends the same events through the
// compose deployment and then through `jetmon up` on the same machine, one
// after the other, and reports each one's events/s (answered 2xx; from the
// first request to the last window counted) and the ratio. Both must count
// every event exactly; the figures are reported, not asserted (the machine
// is shared).
func TestComposeThroughputAgainstJetmonUp(t *testing.T) {
	// The lateness jetmon up uses with a 2 s window (window/5): windows
	// close as soon in both.
	d := start(t, "JETMON_LATENESS=400ms")
	_, readJS := d.natsConn("reader", d.reader)
	composed := blast(t, d.ingest, d.token, "tc", readJS)
	// The deployment goes before jetmon up starts: both get the whole machine.
	if out, err := d.compose("down", "-v", "--remove-orphans"); err != nil {
		t.Fatalf("docker-compose down: %v\n%s", err, out)
	}
	url, upJS := startUp(t)
	up := blast(t, url, "", "tu", upJS)
	t.Logf("throughput, %d events in NDJSON requests of %d from %d clients:", blastEvents, blastPer, blastClients)
	t.Logf("  compose (3 NATS nodes, R3, 3 aggregators): ingest %.0f events/s, end to end %.0f events/s", composed.ingest, composed.endToEnd)
	t.Logf("  jetmon up (one process, R1):               ingest %.0f events/s, end to end %.0f events/s", up.ingest, up.endToEnd)
	t.Logf("  compose / jetmon up: ingest %.2f×, end to end %.2f×", composed.ingest/up.ingest, composed.endToEnd/up.endToEnd)
}
