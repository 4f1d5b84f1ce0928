package tracing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/internal/producer"
	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/trace"
	"github.com/jetmon/jetmon/pkg/tracing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder publishes through the bus and keeps what it published: the
// load generator's own record of the traces it made (the oracle).
type recorder struct {
	events.Publisher
	mu  sync.Mutex
	evs []*events.PerformanceEvent
}

func (r *recorder) Publish(ctx context.Context, ev events.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, ev.(*events.PerformanceEvent))
	r.mu.Unlock()
	return r.Publisher.Publish(ctx, ev)
}

func start(t *testing.T, bus *jsbus.Bus, mutate func(*tracing.Options)) (*tracing.Service, func()) {
	t.Helper()
	o := tracing.DefaultOptions()
	o.Bus = bus
	o.Assembly.Horizon = 300 * time.Millisecond
	if mutate != nil {
		mutate(&o)
	}
	s, err := tracing.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, s.Ready, "trace service ready")
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func waitTrace(t *testing.T, s *tracing.Service, id events.TraceID, spans int) *trace.Tree {
	t.Helper()
	var tr *trace.Tree
	testutil.WaitFor(t, 15*time.Second, func() bool {
		var err error
		tr, err = s.Get(t.Context(), id)
		return err == nil && len(tr.Nodes) == spans
	}, "trace "+id.String()+" stored with its spans")
	return tr
}

// Traces of the load generator (a chain of Depth services per request) come
// back from JetStream exactly: span count, parent links, services and
// operations as the generator published them, and each hop's time on the
// critical path as its intervals give it; a late span merges into the
// stored trace; a restarted service still serves the stored traces.
func TestLoadGenTracesReassembled(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	s, stop := start(t, bus, nil)
	rec := &recorder{Publisher: bus}
	if _, err := producer.LoadGen(t.Context(), rec, producer.LoadOptions{Rate: 10_000, Count: 40, Depth: 3, ErrorRate: 0.2, Quiet: true}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	byTrace := map[events.TraceID][]*events.PerformanceEvent{}
	for _, ev := range rec.evs {
		byTrace[ev.TraceID] = append(byTrace[ev.TraceID], ev)
	}
	if len(byTrace) != 40 {
		t.Fatalf("generator made %d traces", len(byTrace))
	}
	for id, hops := range byTrace {
		tr := waitTrace(t, s, id, 3)
		for d, n := range tr.Nodes { // display order of a chain is the chain
			want := hops[d]
			if n.ID != want.SpanID || n.Parent != want.ParentSpanID || n.Depth != d || n.Service != want.Source ||
				n.Name != want.Operation || n.Error != (want.Type == events.OperationFailed) {
				t.Fatalf("trace %s node %d = %+v, want the generator's hop %+v", id, d, n, want)
			}
			if wantUp := d - 1; n.Up != wantUp {
				t.Fatalf("trace %s node %d parent index %d, want %d", id, d, n.Up, wantUp)
			}
		}
		// The oracle for a chain: hop d holds the request up during the
		// intersection of its interval with its ancestors', less what its
		// child's intersection covers; the rest of the trace is gaps.
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		var inter []int64
		for _, h := range hops {
			end := h.Timestamp.UnixNano()
			start := end - int64(h.DurationMS*float64(time.Millisecond))
			lo, hi = max(lo, start), min(hi, end)
			inter = append(inter, max(hi-lo, 0))
		}
		inter = append(inter, 0)
		for d, n := range tr.Nodes {
			if want := inter[d] - inter[d+1]; n.CriticalNS != want {
				t.Fatalf("trace %s hop %d: %d ns on the critical path, the generator's intervals give %d", id, d, n.CriticalNS, want)
			}
		}
		var gaps int64
		for _, seg := range tr.Critical {
			if seg.Node < 0 {
				gaps += seg.EndNS - seg.StartNS
			}
		}
		if want := tr.EndNS - tr.StartNS - inter[0]; gaps != want {
			t.Fatalf("trace %s: %d ns of gaps, want %d", id, gaps, want)
		}
	}
	// A late span, after its trace was stored, is merged.
	var id events.TraceID
	for id = range byTrace {
		break
	}
	late := events.NewPerformanceEvent(events.OperationComplete, "late-svc")
	late.TraceID, late.ParentSpanID, late.Operation, late.DurationMS = id, byTrace[id][2].SpanID, "late.op", 1
	if err := bus.Publish(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	tr := waitTrace(t, s, id, 4)
	if n := tr.Nodes[3]; n.Service != "late-svc" || n.Up != 2 {
		t.Fatalf("late span %+v", n)
	}
	calls := func(s *tracing.Service) map[string]uint64 {
		m := map[string]uint64{}
		for _, d := range s.Analyzer().Dependencies(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)) {
			m[d.Caller+"->"+d.Callee] = d.Calls
		}
		return m
	}
	want := calls(s)
	want[byTrace[id][2].Source+"->late-svc"]++ // counted from the merged trace after the restart
	stop()
	// After a restart, stored traces are still served, and the dependency
	// map is rebuilt from them.
	s2, stop2 := start(t, bus, nil)
	defer stop2()
	if tr, err := s2.Get(t.Context(), id); err != nil || len(tr.Nodes) != 4 {
		t.Fatalf("after restart: %v, %v", tr, err)
	}
	if got := calls(s2); !reflect.DeepEqual(got, want) || len(got) < 3 {
		t.Fatalf("dependency map after the restart %v, want %v", got, want)
	}
	unknown := events.NewTraceID()
	if _, err := s2.Get(t.Context(), unknown); !errors.Is(err, trace.ErrNotFound) {
		t.Fatalf("unknown trace: %v", err)
	}
}

// The HTTP API: search, fetch, OTLP export, dependency map (JSON and DOT)
// and bottlenecks over a known topology; hostile parameters get 400.
func TestAPI(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	s, stop := start(t, bus, nil)
	defer stop()
	now := time.Now().UTC().Add(-time.Second)
	id := events.NewTraceID()
	root, child := events.NewSpanID(), events.NewSpanID()
	mk := func(svc, op string, span, parent events.SpanID, endOffset time.Duration, dur float64, failed bool) *events.PerformanceEvent {
		typ := events.OperationComplete
		if failed {
			typ = events.OperationFailed
		}
		ev := events.NewPerformanceEvent(typ, svc)
		ev.TraceID, ev.SpanID, ev.ParentSpanID = id, span, parent
		ev.Timestamp, ev.Operation, ev.DurationMS = now.Add(endOffset), op, dur
		return ev
	}
	for _, ev := range []events.Event{
		mk("gateway", "GET /checkout", root, events.SpanID{}, 0, 100, false),
		mk("orders", "db.query", child, root, -10*time.Millisecond, 80, true),
	} {
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	waitTrace(t, s, id, 2)
	mux := http.NewServeMux()
	s.Mount(mux)
	api := httptest.NewServer(mux)
	defer api.Close()
	get := func(path string) (int, string) {
		resp, err := testutil.Get(t, api.URL+path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/v1/traces?service=orders&errors=true&min_duration_ms=50")
	var res struct{ Traces []trace.Summary }
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || len(res.Traces) != 1 || res.Traces[0].TraceID != id.String() ||
		res.Traces[0].SpanCount != 2 || res.Traces[0].ErrorCount != 1 || res.Traces[0].DurationMS != 100 {
		t.Fatalf("search: %d %s", code, body)
	}
	// A validation run of docs/wire-format.md, without trace ids, found by
	// its context id and assembled as run → phase.
	for _, d := range []string{
		`{"event_type":"validation.started","id":"v1","source":"orders","timestamp":"%s","context_id":"order-42","field_path":"order.shipping.address"}`,
		`{"event_type":"performance.phase.start","id":"v2","source":"orders","timestamp":"%s","context_id":"order-42","phase":"address_check"}`,
		`{"event_type":"performance.phase.end","id":"v3","source":"orders","timestamp":"%s","context_id":"order-42","phase":"address_check","duration_ms":250,"status":"success"}`,
		`{"event_type":"validation.failed","id":"v4","source":"orders","timestamp":"%s","context_id":"order-42","status":"failure","duration_ms":251,"errors":["zip code must have 5 digits"]}`,
	} {
		at := now
		if strings.Contains(d, "phase.end") {
			at = now.Add(250 * time.Millisecond)
		} else if strings.Contains(d, "validation.failed") {
			at = now.Add(251 * time.Millisecond)
		}
		ev, err := events.Decode(fmt.Appendf(nil, d, at.Format(time.RFC3339Nano)))
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	run := waitTrace(t, s, trace.ContextTraceID("order-42"), 2)
	if run.Nodes[0].Type != events.ValidationFailed || run.Nodes[1].Name != "address_check" || run.DurationMS() != 251 {
		t.Fatalf("validation run %+v", run.Nodes)
	}
	code, body = get("/api/v1/traces?context_id=order-42")
	if code != 200 || !strings.Contains(body, `"trace_id":"`+trace.ContextTraceID("order-42").String()+`"`) || strings.Count(body, `"trace_id"`) != 1 {
		t.Fatalf("search by context: %d %s", code, body)
	}
	if code, body = get("/api/v1/traces?service=orders&errors=true&min_duration_ms=252"); code != 200 || !strings.Contains(body, `"traces":[]`) {
		t.Fatalf("search above the duration: %d %s", code, body)
	}
	code, body = get("/api/v1/traces/" + id.String())
	var v trace.View
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || len(v.Spans) != 2 || v.Spans[1].Parent != 0 ||
		v.Spans[1].SpanID != child.String() || v.Spans[0].SelfMS != 20 || len(v.CriticalPath) != 3 {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, body = get("/api/v1/traces/" + id.String() + "?format=otlp"); code != 200 ||
		!strings.Contains(body, `"parentSpanId":"`+root.String()+`"`) || !strings.Contains(body, `"code":2`) {
		t.Fatalf("otlp export: %d %s", code, body)
	}
	if code, body = get("/api/v1/dependencies"); code != 200 || !strings.Contains(body, `"caller":"gateway","callee":"orders","calls":1,"errors":1`) {
		t.Fatalf("dependencies: %d %s", code, body)
	}
	if code, body = get("/api/v1/dependencies?format=dot"); code != 200 || !strings.Contains(body, `"gateway" -> "orders"`) {
		t.Fatalf("dot: %d %s", code, body)
	}
	// Critical paths: the run 251 ms (address_check 250), the checkout
	// 100 ms (db.query 80): ranked by critical time, limited to two.
	if code, body = get("/api/v1/bottlenecks?limit=2"); code != 200 ||
		!strings.Contains(body, `"operations":[{"service":"orders","operation":"address_check","critical_ms":250,"share":`+fmt.Sprint(250.0/351)) ||
		!strings.Contains(body, `},{"service":"orders","operation":"db.query","critical_ms":80,"share":`+fmt.Sprint(80.0/351)) {
		t.Fatalf("bottlenecks: %d %s", code, body)
	}
	for _, bad := range []string{
		"/api/v1/traces/zz", "/api/v1/traces/" + strings.Repeat("a", 5000), "/api/v1/traces?limit=-1", "/api/v1/traces?limit=99999999999999999999",
		"/api/v1/traces?min_duration_ms=NaN", "/api/v1/traces?errors=maybe", "/api/v1/traces?from=yesterday",
		"/api/v1/dependencies?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "/api/v1/dependencies?format=svg",
		"/api/v1/traces?service=" + strings.Repeat("s", 300),
	} {
		if code, body := get(bad); code != http.StatusBadRequest {
			t.Errorf("GET %.80s = %d %s, want 400", bad, code, body)
		}
	}
	if code, _ := get("/api/v1/traces/" + events.NewTraceID().String()); code != http.StatusNotFound {
		t.Errorf("unknown trace: %d", code)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := tracing.DefaultOptions()
	if err := o.Validate(); !errors.Is(err, tracing.ErrOptions) || !strings.Contains(err.Error(), "Bus") {
		t.Fatalf("no bus: %v", err)
	}
	o.Bus = &jsbus.Bus{}
	o.Partitions, o.Partition = 4, 4
	if err := o.Validate(); !errors.Is(err, tracing.ErrOptions) || !strings.Contains(err.Error(), "Partition 4 of 4") {
		t.Fatalf("partition out of range: %v", err)
	}
}

// Two instances split the traces by trace id: each stores exactly the
// traces of its partition, and together all of them.
func TestPartitions(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	var svcs [2]*tracing.Service
	for p := range svcs {
		s, stop := start(t, bus, func(o *tracing.Options) { o.Partitions, o.Partition = 2, p })
		defer stop()
		svcs[p] = s
	}
	ids := make([]events.TraceID, 40)
	for i := range ids {
		ids[i] = events.NewTraceID()
		if err := bus.Publish(t.Context(), opEvent(ids[i])); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		waitTrace(t, svcs[0], id, 1) // any instance reads the shared store
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		return svcs[0].Stats().Finished+svcs[1].Stats().Finished == 40
	}, "both partitions finished their traces")
	want := [2]uint64{}
	for _, id := range ids {
		want[tracing.Partition(id, 2)]++
	}
	for p, s := range svcs {
		if st := s.Stats(); st.Finished != want[p] || st.Added != want[p] {
			t.Errorf("partition %d: %+v, want %d traces", p, st, want[p])
		}
	}
	if want[0] == 0 || want[1] == 0 {
		t.Fatalf("40 random traces all in one partition: %v", want)
	}
}

func opEvent(id events.TraceID) *events.PerformanceEvent {
	ev := events.NewPerformanceEvent(events.OperationComplete, "svc")
	ev.TraceID, ev.Operation, ev.DurationMS = id, "op", 1
	return ev
}

// A forged trace of more spans than one message can hold is stored trimmed
// to the server's max payload, the rest counted as dropped, and it never
// stalls the runtime: a normal trace after it is stored too.
func TestHugeTraceTrimmed(t *testing.T) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	s, stop := start(t, bus, nil)
	defer stop()
	const n = 6000
	id := events.NewTraceID()
	for range n {
		if err := bus.Publish(t.Context(), opEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	after := events.NewTraceID()
	if err := bus.Publish(t.Context(), opEvent(after)); err != nil {
		t.Fatal(err)
	}
	waitTrace(t, s, after, 1)
	var tr *trace.Tree
	testutil.WaitFor(t, 15*time.Second, func() bool {
		var err error
		tr, err = s.Get(t.Context(), id)
		return err == nil && len(tr.Nodes)+tr.Dropped == n // parts may merge in
	}, "the huge trace stored, every span kept or counted")
	if len(tr.Nodes) == 0 || tr.Dropped == 0 {
		t.Fatalf("%d spans kept, %d dropped, want %d in all", len(tr.Nodes), tr.Dropped, n)
	}
}
