package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
)

func noEnv(string) (string, bool) { return "", false }

func TestFlagsAndHelp(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "AGGREGATOR_WINDOW"},
		{[]string{"--window", "0s"}, 2, "window 0s"},
		{[]string{"--http", "0.0.0.0:9102"}, 2, "http 0.0.0.0:9102: listening beyond loopback needs a token"},
		{[]string{"--http-token-file", "/nonexistent"}, 2, "--http-token-file"},
		{[]string{"--window", "soon"}, 2, `invalid value "soon"`},
		{[]string{"replay"}, 2, "--from is required"},
		{[]string{"replay", "--from", "yesterday"}, 2, `--from "yesterday"`},
		{[]string{"replay", "--help"}, 0, "NDJSON"},
		{[]string{"--help"}, 0, "AGGREGATOR_MAX_FUTURE_SKEW"},
		{[]string{"--help"}, 0, "AGGREGATOR_DEDUP_WINDOW"},
		{[]string{"--max-series", "-1"}, 2, "MaxSeries"},
		{[]string{"--series-ttl", "1s"}, 2, "SeriesTTL"},
		{[]string{"--max-future-skew", "-1m"}, 2, "MaxFutureSkew"},
		{[]string{"--stall-after", "-1s"}, 2, "StallAfter"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if code := run(context.Background(), c.args, &out, &out, noEnv); code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("aggregator %v: exit %d, output:\n%s\nwant exit %d and %q", c.args, code, out.String(), c.code, c.want)
		}
	}
	var out bytes.Buffer
	env := func(k string) (string, bool) { return "-5", k == "AGGREGATOR_MAX_DEDUP_IDS" }
	if code := run(context.Background(), nil, &out, &out, env); code != 2 || !strings.Contains(out.String(), "MaxDedupIDs") {
		t.Errorf("AGGREGATOR_MAX_DEDUP_IDS=-5: exit %d, output:\n%s", code, out.String())
	}
	if v, ok := envLookup(func(k string) (string, bool) { return "nats://x:1", k == "NATS_URL" })("AGGREGATOR_NATS_URL"); !ok || v != "nats://x:1" {
		t.Errorf("NATS_URL is not read for --nats-url: %q %v", v, ok)
	}
}

func stats(t *testing.T, addr string) (aggregator.Stats, bool) {
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/api/v1/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return aggregator.Stats{}, false
	}
	defer func() { _ = resp.Body.Close() }()
	var st aggregator.Stats
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// TestKillNineExactlyOnce publishes 1,000,000 events, kills the aggregator
// with SIGKILL part-way, restarts it, and checks that the counts of all
// published windows add up exactly to the events published.
func TestKillNineExactlyOnce(t *testing.T) {
	const total, sources, ops = 1_000_000, 10, 10
	srv := natstest.Start(t)
	bin := filepath.Join(t.TempDir(), "aggregator")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	start := func() *exec.Cmd {
		cmd := exec.CommandContext(t.Context(), bin, "--nats-url", srv.ClientURL(), "--window", "1s", "--lateness", "500ms",
			"--http", httpAddr, "--log-json")
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, ok := stats(t, httpAddr); ok {
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatalf("aggregator not up:\n%s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	agg := start()

	bus := natstest.Connect(t, srv.ClientURL(), func(c *jsbus.Config) { c.BatchMaxEvents = 200 })
	published := make(chan error, 1)
	base := time.Now().Add(-time.Minute)
	go func() {
		for i := range total {
			ev := events.NewPerformanceEvent(events.OperationComplete, fmt.Sprint("svc-", i%sources))
			ev.Operation, ev.DurationMS = fmt.Sprint("op-", (i/sources)%ops), float64(i%1000)/10
			ev.Timestamp = base.Add(time.Duration(i) * 20 * time.Microsecond) // 20 s of event time
			if err := bus.Publish(context.Background(), ev); err != nil {
				published <- err
				return
			}
		}
		published <- bus.Flush(context.Background())
	}()

	// Kill it once it has seen a good part of the stream.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, _ := stats(t, httpAddr)
		if st.Events >= total/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the aggregator saw only %d events", st.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := agg.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agg.Wait()
	agg = start()
	defer func() { _ = agg.Process.Signal(syscall.SIGTERM); _ = agg.Wait() }()
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	// Wait until every window is published: nothing open, nothing pending.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		st, ok := stats(t, httpAddr)
		if ok && st.OpenWindows == 0 && st.Pending == 0 && st.Emitted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("windows still open: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	windows := map[string]uint64{}
	_, err := bus.Replay(t.Context(), "performance.metric.aggregated", jsbus.ReplayOptions{}, events.HandlerFunc(func(_ context.Context, ev events.Event) error {
		w := ev.(*events.AggregateEvent)
		if n, dup := windows[w.ID]; dup && n != w.Count {
			return fmt.Errorf("window %s stored twice with counts %d and %d", w.ID, n, w.Count)
		}
		windows[w.ID] = w.Count
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, n := range windows {
		sum += n
	}
	st, _ := stats(t, httpAddr)
	t.Logf("%d windows; restarted run: %+v", len(windows), st)
	if sum != total {
		t.Errorf("the published windows count %d events, want exactly %d", sum, total)
	}
	if want := sources * ops * 20; len(windows) < want || len(windows) > want+sources*ops {
		t.Errorf("%d windows, want about %d (100 series × 20 one-second windows)", len(windows), want)
	}
}
