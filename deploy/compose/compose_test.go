//go:build compose

// Package compose_test runs the compose deployment (docker-compose.yml) and
// breaks it while events flow: `make compose-test`. It needs Docker and
// docker-compose and the images of `make images`; without them it fails.
//
// Under a steady load through the producer's HTTP ingest (clients re-send
// what was not answered 2xx, with the same ids) it kills the stream leader's
// NATS server, stops one of three aggregators, cuts a NATS server off the
// network for 30 s and restarts the three one by one; then it checks that
// every event answered 2xx is counted exactly once in the stored windows,
// that a stopped aggregator's partitions are taken over within 30 s, that
// each alert reached the webhook receiver exactly once, and that no
// container restarted unless the test did it.
package compose_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

const project = "jetmoncomposetest"

// deployment is the running compose project.
type deployment struct {
	t                       *testing.T
	root                    string
	env                     []string
	ingest, sink, alerts    string
	natsURLs                []string
	token, reader, operator string
}

func (d *deployment) compose(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", project, "-f", "docker-compose.yml", "-f", "deploy/compose/test.yml"}, args...)...)
	cmd.Dir, cmd.Env = d.root, d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *deployment) must(args ...string) string {
	d.t.Helper()
	out, err := d.compose(args...)
	if err != nil {
		d.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container returns the id of a service's container (the i-th of a scaled one).
func (d *deployment) container(service string, i int) string {
	d.t.Helper()
	ids := strings.Fields(d.must("ps", "-q", service))
	slices.Sort(ids)
	if i >= len(ids) {
		d.t.Fatalf("service %s has %d containers, want #%d", service, len(ids), i)
	}
	return ids[i]
}

// waitHealthy waits until every container of the project that has a health
// check is healthy, and the others run (or exited 0: the streams job).
func (d *deployment) waitHealthy(within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out := d.must("ps", "-q")
		bad := ""
		for id := range strings.FieldsSeq(out) {
			st := docker(d.t, "inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
			f := strings.Fields(st)
			switch {
			case len(f) >= 4 && f[3] != "healthy":
				bad = st
			case len(f) >= 3 && f[1] == "exited" && f[2] != "0":
				bad = st
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not healthy after %v: %s\n%s", within, bad, d.must("ps"))
		}
		time.Sleep(time.Second)
	}
}

func secret(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/compose/secrets", name))
	if err != nil {
		t.Fatalf("%v (run make compose-secrets)", err)
	}
	return strings.TrimSpace(string(b))
}

// start brings the deployment up with env (KEY=value) added to the
// compose file's variables, and waits until it is healthy.
func start(t *testing.T, env ...string) *deployment {
	t.Helper()
	for _, bin := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: the compose test needs Docker and docker-compose", bin)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{t: t, root: root}
	ports := map[string]int{}
	for _, k := range []string{"JETMON_NATS_PORT_1", "JETMON_NATS_PORT_2", "JETMON_NATS_PORT_3", "JETMON_INGEST_PORT", "JETMON_ALERTS_PORT_1", "JETMON_ALERTS_PORT_2", "JETMON_SINK_PORT"} {
		ports[k] = testutil.FreePort(t)
		d.env = append(d.env, k+"="+strconv.Itoa(ports[k]))
	}
	d.env = append(os.Environ(), append(d.env, "JETMON_RULES=./deploy/compose/test-rules.yaml", "JETMON_WINDOW=2s", "JETMON_PPROF=true")...)
	d.env = append(d.env, env...)
	d.ingest = "http://127.0.0.1:" + strconv.Itoa(ports["JETMON_INGEST_PORT"])
	d.sink = "http://127.0.0.1:" + strconv.Itoa(ports["JETMON_SINK_PORT"])
	d.alerts = "http://127.0.0.1:" + strconv.Itoa(ports["JETMON_ALERTS_PORT_1"])
	for _, k := range []string{"JETMON_NATS_PORT_1", "JETMON_NATS_PORT_2", "JETMON_NATS_PORT_3"} {
		d.natsURLs = append(d.natsURLs, "nats://127.0.0.1:"+strconv.Itoa(ports[k]))
	}
	d.token, d.reader, d.operator = secret(t, root, "http.token"), secret(t, root, "reader.password"), secret(t, root, "operator.password")
	_, _ = d.compose("down", "-v", "--remove-orphans") // what an earlier run left
	if dir := os.Getenv("JETMON_COMPOSE_LOGS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("JETMON_COMPOSE_LOGS: %v", err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.compose("logs", "--no-color", "--tail", "60")
			t.Logf("logs:\n%s", out)
			d.logPartitions()
		}
		// JETMON_COMPOSE_LOGS=DIR keeps every service's whole log there,
		// and on failure each aggregator's goroutines.
		if dir := os.Getenv("JETMON_COMPOSE_LOGS"); dir != "" && t.Failed() {
			for i := 1; i <= 3; i++ {
				addr, err := d.compose("port", "--index", strconv.Itoa(i), "aggregator", "9102")
				if err != nil {
					continue
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+strings.TrimSpace(addr)+"/debug/pprof/goroutine?debug=2", nil)
				req.Header.Set("Authorization", "Bearer "+d.token)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					body, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-aggregator-%d-goroutines.txt", t.Name(), i)), body, 0o644)
				}
			}
		}
		if dir := os.Getenv("JETMON_COMPOSE_LOGS"); dir != "" {
			out, _ := d.compose("logs", "--no-color", "--timestamps")
			path := filepath.Join(dir, t.Name()+".log")
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Errorf("keeping the logs: %v", err)
			} else {
				t.Logf("the whole logs are in %s", path)
			}
		}
		if out, err := d.compose("down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	began := time.Now()
	d.must("up", "-d", "--scale", "aggregator=3")
	d.waitHealthy(3 * time.Minute)
	t.Logf("deployment healthy after %v", time.Since(began).Round(time.Second))
	return d
}

// logPartitions logs each partition consumer as the server sees it: where
// a shortfall or a stall sits.
func (d *deployment) logPartitions() {
	_, js := d.natsConn("operator", d.operator)
	for p := range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, "AGGREGATE_INPUT", fmt.Sprintf("aggregator-p%d", p))
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				d.t.Logf("partition %d: delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d, waiting pulls %d, priority groups %+v",
					p, info.Delivered.Stream, info.AckFloor.Stream, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.PriorityGroups)
			}
		}
		if err != nil {
			d.t.Logf("partition %d: %v", p, err)
		}
		cancel()
	}
}

// natsConn connects to the cluster as user.
func (d *deployment) natsConn(user, password string) (*nats.Conn, jetstream.JetStream) {
	d.t.Helper()
	// The reader may not delete consumers: the ordered consumers it reads
	// windows with cannot delete themselves when they reset, which the
	// server refuses harmlessly. Any other async error is logged.
	quiet := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !strings.Contains(err.Error(), "$JS.API.CONSUMER.DELETE.") {
			fmt.Fprintf(os.Stderr, "nats (%s): %v\n", user, err)
		}
	})
	nc, err := nats.Connect(strings.Join(d.natsURLs, ","), nats.UserInfo(user, password), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), quiet)
	if err != nil {
		d.t.Fatalf("connect as %s: %v", user, err)
	}
	d.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		d.t.Fatal(err)
	}
	return nc, js
}

// load posts NDJSON batches with ids through the ingest, re-sending a batch
// until it is answered 2xx; it records every acknowledged event by source
// and each request's latency by phase.
type load struct {
	mu        sync.Mutex
	acked     map[string]int // source → events answered 2xx
	ids       map[string]bool
	phase     string
	latencies map[string][]time.Duration
	resent    int
	failures  map[string]map[string]int // phase → why a request was not answered 2xx → how often
}

// failed records a request not answered 2xx.
func (l *load) failed(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures[l.phase] == nil {
		l.failures[l.phase] = map[string]int{}
	}
	l.failures[l.phase][why]++
}

const sources = 12

// minRequestsPerPhase is the fewest requests each phase must see answered
// 2xx (three clients send about 50 a second at steady state).
const minRequestsPerPhase = 20

func (l *load) run(ctx context.Context, d *deployment, worker int) {
	client := &http.Client{Timeout: 10 * time.Second}
	for n := 0; ctx.Err() == nil; n++ {
		var body bytes.Buffer
		var ids []string
		per := map[string]int{}
		now := time.Now().UTC()
		for i := range 40 {
			src, ms := fmt.Sprintf("src-%02d", (n+i)%sources), 20.0
			if i == 0 {
				src, ms = "slow", 900
			}
			id := fmt.Sprintf("w%d-%d-%d", worker, n, i)
			ids = append(ids, id)
			per[src]++
			fmt.Fprintf(&body, `{"event_type":"performance.operation.complete","id":%q,"source":%q,"operation":"op","duration_ms":%v,"timestamp":%q}`+"\n", id, src, ms, now.Format(time.RFC3339Nano))
		}
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				l.mu.Lock()
				l.resent++
				l.mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, d.ingest+"/v1/events", bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+d.token)
			began := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				why := "error"
				if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
					why = "timeout"
				}
				l.failed(why)
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				l.failed("HTTP " + strconv.Itoa(resp.StatusCode))
				continue
			}
			l.mu.Lock()
			l.latencies[l.phase] = append(l.latencies[l.phase], time.Since(began))
			for s, k := range per {
				l.acked[s] += k
			}
			for _, id := range ids {
				l.ids[id] = true
			}
			l.mu.Unlock()
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (l *load) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

// windows sums the stored aggregated windows' counts by source (each window
// id once), retrying while the cluster settles.
func windows(t *testing.T, js jetstream.JetStream) (map[string]uint64, map[string]time.Time) {
	t.Helper()
	var err error
	for range 5 {
		var counts map[string]uint64
		var latest map[string]time.Time
		if counts, latest, err = readWindows(t, js); err == nil {
			return counts, latest
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("reading the windows: %v", err)
	return nil, nil
}

func readWindows(t *testing.T, js jetstream.JetStream) (map[string]uint64, map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, streams.Performance)
	if err != nil {
		return nil, nil, err
	}
	// A plain ephemeral consumer, not an ordered one: after a leader was
	// killed, an ordered consumer of this reader reset itself several times
	// a second for a minute (each reset's delete of the old consumer refused
	// to the reader) and delivered nothing. Unacked reading needs no order
	// here: the counts are summed by window id.
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects:    []string{"performance.metric.aggregated.>"},
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, nil, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	counts, latest, seen := map[string]uint64{}, map[string]time.Time{}, map[string]uint64{}
	for left := info.NumPending; left > 0; {
		batch, err := cons.Fetch(int(min(left, 500)), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return nil, nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			_ = (events.Decoder{MaxPayload: -1}).EachInBatch(m.Data(), func(it events.BatchItem) {
				a, ok := it.Event.(*events.AggregateEvent)
				if !ok {
					return
				}
				if prev, dup := seen[a.ID]; dup {
					if prev != a.Count {
						t.Errorf("window %s stored twice with counts %d and %d", a.ID, prev, a.Count)
					}
					return
				}
				seen[a.ID] = a.Count
				counts[a.Source] += a.Count
				if a.WindowStart.After(latest[a.Source]) {
					latest[a.Source] = a.WindowStart
				}
			})
		}
		if got == 0 {
			return nil, nil, fmt.Errorf("%d windows left, none delivered", left)
		}
		left -= uint64(got)
	}
	return counts, latest, nil
}

// partitionState is what each partition consumer has delivered, and how many
// messages wait for it.
func partitionState(t *testing.T, js jetstream.JetStream, partitions int) (delivered, waiting []uint64) {
	t.Helper()
	delivered, waiting = make([]uint64, partitions), make([]uint64, partitions)
	for p := range partitions {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, "AGGREGATE_INPUT", fmt.Sprintf("aggregator-p%d", p))
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				delivered[p], waiting[p] = info.Delivered.Consumer, info.NumPending
			}
		}
		cancel()
	}
	return delivered, waiting
}

func TestComposeDeploymentSurvivesFaults(t *testing.T) {
	d := start(t)
	_, opJS := d.natsConn("operator", d.operator)
	_, readJS := d.natsConn("reader", d.reader)

	l := &load{acked: map[string]int{}, ids: map[string]bool{}, latencies: map[string][]time.Duration{}, failures: map[string]map[string]int{}, phase: "steady"}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() { l.run(ctx, d, w) })
	}
	defer func() { stopLoad(); wg.Wait() }()
	time.Sleep(10 * time.Second)

	// 1. Kill the PERFORMANCE stream leader's server, restart it later.
	l.setPhase("leader killed")
	st, err := opJS.Stream(t.Context(), streams.Performance)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream leader: %+v %v", info, err)
	}
	leader := info.Cluster.Leader
	t.Logf("killing %s, the PERFORMANCE leader", leader)
	docker(t, "kill", d.container(leader, 0))
	time.Sleep(15 * time.Second)
	docker(t, "start", d.container(leader, 0))
	d.waitHealthy(2 * time.Minute)

	// 2. Stop one of three aggregators: the others take its partitions
	// over. Takeover: every partition consumer delivers again; windows of
	// every source follow once the hold and the window have passed.
	l.setPhase("aggregator stopped")
	const partitions = 6
	stopped := time.Now()
	docker(t, "stop", d.container("aggregator", 1))
	base, _ := partitionState(t, opJS, partitions)
	var takeover, windowsBack time.Duration
	// Windows follow the hold (AckWait), then window + lateness.
	for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline) && windowsBack == 0; time.Sleep(500 * time.Millisecond) {
		if takeover == 0 {
			// Taken over: no partition has messages waiting while nobody
			// has taken one since the stop (a partition no source hashes
			// to waits for nothing).
			now, waiting := partitionState(t, opJS, partitions)
			all := true
			for p := range partitions {
				if now[p] <= base[p] && waiting[p] > 0 {
					all = false
				}
			}
			if all && time.Since(stopped) > time.Second {
				takeover = time.Since(stopped)
			}
			continue
		}
		_, latest := windows(t, readJS)
		all := true
		for i := range sources {
			if !latest[fmt.Sprintf("src-%02d", i)].After(stopped) {
				all = false
			}
		}
		if all {
			windowsBack = time.Since(stopped)
		}
	}
	if takeover == 0 || takeover > 30*time.Second {
		t.Errorf("partitions consumed again %v after an aggregator stopped, want within 30 s", takeover)
	}
	if windowsBack == 0 {
		t.Errorf("windows of every source did not resume within 150 s of an aggregator's stop")
	}
	t.Logf("takeover: every partition consumed again after %v, windows of every source after %v", takeover.Round(100*time.Millisecond), windowsBack.Round(time.Second))
	docker(t, "start", d.container("aggregator", 1))
	d.waitHealthy(2 * time.Minute)

	// 3. Cut one NATS server off the network for 30 s.
	l.setPhase("nats-3 partitioned")
	network := project + "_default"
	n3 := d.container("nats-3", 0)
	docker(t, "network", "disconnect", network, n3)
	time.Sleep(30 * time.Second)
	docker(t, "network", "connect", "--alias", "nats-3", network, n3)
	d.waitHealthy(2 * time.Minute)

	// 4. Rolling restart of the three servers.
	l.setPhase("rolling restart")
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		docker(t, "restart", d.container(n, 0))
		d.waitHealthy(2 * time.Minute)
	}
	l.setPhase("after")
	time.Sleep(5 * time.Second)
	stopLoad()
	wg.Wait()

	// Every acknowledged event counted exactly once.
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for _, n := range l.acked {
		total += n
	}
	if total != len(l.ids) {
		t.Fatalf("%d events acknowledged, %d distinct ids", total, len(l.ids))
	}
	var counts map[string]uint64
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		counts, _ = windows(t, readJS)
		done := true
		for s, n := range l.acked {
			if counts[s] < uint64(n) {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(5 * time.Second) // room for a window counted twice to show
	counts, _ = windows(t, readJS)
	lost, doubled := 0, 0
	for s, n := range l.acked {
		switch c := int(counts[s]); {
		case c < n:
			lost += n - c
			t.Errorf("source %s: %d events acknowledged, %d counted", s, n, c)
		case c > n:
			doubled += c - n
			t.Errorf("source %s: %d events acknowledged, %d counted", s, n, c)
		}
	}

	// Each alert notified once.
	resp, err := testutil.Get(t, d.sink+"/counts")
	if err != nil {
		t.Fatal(err)
	}
	var notified map[string]map[string]int
	_ = json.NewDecoder(resp.Body).Decode(&notified)
	_ = resp.Body.Close()
	if len(notified["firing"]) == 0 {
		t.Errorf("no alert reached the webhook receiver: %v", notified)
	}
	for status, byFP := range notified {
		for fp, n := range byFP {
			if n != 1 {
				t.Errorf("alert %s notified %s %d times", fp, status, n)
			}
		}
	}

	// What the aggregators counted as late or bad (an event answered 2xx
	// but in no window is one of these, or lost).
	for i := 1; i <= 3; i++ {
		addr := strings.TrimSpace(d.must("port", "--index", strconv.Itoa(i), "aggregator", "9102"))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+d.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Logf("aggregator %d metrics: %v", i, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var lines []string
		for line := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(line, "jetmon_aggregator_events_total") || strings.HasPrefix(line, "jetmon_aggregator_bad_input_total") ||
				strings.HasPrefix(line, "jetmon_aggregator_consumers_recreated_total") || strings.HasPrefix(line, "jetmon_aggregator_windows_dead_lettered_total") ||
				strings.HasPrefix(line, "jetmon_aggregator_history_copies_total") || strings.HasPrefix(line, "jetmon_aggregator_windows_deduplicated_total") ||
				strings.HasPrefix(line, "jetmon_aggregator_leases_") || strings.HasPrefix(line, "jetmon_aggregator_open_windows") ||
				strings.HasPrefix(line, "jetmon_aggregator_pending_messages") || strings.HasPrefix(line, "jetmon_aggregator_consumer_lag") ||
				strings.HasPrefix(line, "jetmon_aggregator_ready") {
				lines = append(lines, line)
			}
		}
		t.Logf("aggregator %d: %s", i, strings.Join(lines, "; "))
	}

	// No container restarted by itself.
	for id := range strings.FieldsSeq(d.must("ps", "-q")) {
		if out := docker(t, "inspect", "-f", "{{.Name}} {{.RestartCount}}", id); !strings.HasSuffix(out, " 0") {
			t.Errorf("container restarted on its own: %s", out)
		}
	}

	t.Logf("events acknowledged: %d (%d requests re-sent), lost: %d, counted twice: %d, takeover: %v (windows back after %v)", total, l.resent, lost, doubled, takeover.Round(100*time.Millisecond), windowsBack.Round(time.Second))
	for _, p := range []string{"steady", "leader killed", "aggregator stopped", "nats-3 partitioned", "rolling restart"} {
		t.Logf("p99 ingest latency, %-20s %v (%d requests answered 2xx; not: %v)", p+":", p99(l.latencies[p]).Round(time.Millisecond), len(l.latencies[p]), l.failures[p])
		// The ingest must keep answering through every fault: a load that
		// stalled would make every other check here pass vacuously.
		if len(l.latencies[p]) < minRequestsPerPhase {
			t.Errorf("phase %q: %d requests answered 2xx, want at least %d: the ingest stopped answering", p, len(l.latencies[p]), minRequestsPerPhase)
		}
	}
}
