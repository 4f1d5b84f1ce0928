package trace_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/trace"
)

var (
	tid = mustTrace("0af7651916cd43dd8448eb211c80319c")
	t0  = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano()
)

func mustTrace(s string) events.TraceID {
	id, err := events.ParseTraceID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func sid(n int) events.SpanID {
	var s events.SpanID
	if n == 0 {
		return s
	}
	s[7] = byte(n)
	s[6] = byte(n >> 8)
	return s
}

const ms = int64(time.Millisecond)

// sp is a span id n with parent p, service/name svc, over [a, b] ms.
func sp(n, p int, svc string, a, b int64) trace.Span {
	return trace.Span{
		ID: sid(n), Parent: sid(p), EventID: fmt.Sprintf("e%d-%s-%d", n, svc, a), Type: events.OperationComplete,
		Service: svc, Name: "op-" + svc, StartNS: t0 + a*ms, EndNS: t0 + b*ms,
	}
}

// shape renders a tree as "name(self,crit)" per node with indentation, and
// the critical path as "name:ms" segments: the oracle in these tests is the
// hand-computed rendering.
func shape(t *trace.Tree) string {
	var b strings.Builder
	for _, n := range t.Nodes {
		fmt.Fprintf(&b, "%s%s self=%d crit=%d", strings.Repeat(" ", n.Depth), n.Service, n.SelfNS/ms, n.CriticalNS/ms)
		if n.Orphan {
			b.WriteString(" orphan")
		}
		b.WriteString("\n")
	}
	b.WriteString("path:")
	for _, s := range t.Critical {
		name := "gap"
		if s.Node >= 0 {
			name = t.Nodes[s.Node].Service
		}
		fmt.Fprintf(&b, " %s:%d", name, (s.EndNS-s.StartNS)/ms)
	}
	return b.String()
}

func TestBuild(t *testing.T) {
	cases := []struct {
		name  string
		spans []trace.Span
		want  string
	}{
		{
			"nested chain",
			[]trace.Span{sp(3, 2, "c", 20, 60), sp(1, 0, "a", 0, 100), sp(2, 1, "b", 10, 90)},
			"a self=20 crit=20\n b self=40 crit=40\n  c self=40 crit=40\npath: a:10 b:10 c:40 b:30 a:10",
		},
		{
			"parallel children",
			[]trace.Span{sp(1, 0, "a", 0, 100), sp(2, 1, "b", 10, 50), sp(3, 1, "c", 20, 80)},
			"a self=30 crit=30\n b self=40 crit=10\n c self=60 crit=60\npath: a:10 b:10 c:60 a:20",
		},
		{
			"child outlives parent is clipped",
			[]trace.Span{sp(1, 0, "a", 0, 50), sp(2, 1, "b", 10, 70)},
			"a self=10 crit=10\n b self=60 crit=40\npath: a:10 b:40 gap:20",
		},
		{
			"duplicate event counted once",
			[]trace.Span{sp(1, 0, "a", 0, 10), sp(1, 0, "a", 0, 10)},
			"a self=10 crit=10\npath: a:10",
		},
		{
			"missing parent is an orphan root",
			[]trace.Span{sp(1, 0, "a", 0, 10), sp(2, 9, "b", 20, 30)},
			"a self=10 crit=10\nb self=10 crit=10 orphan\npath: a:10 gap:10 b:10",
		},
		{
			"parent cycle is broken",
			[]trace.Span{sp(1, 2, "a", 0, 10), sp(2, 1, "b", 2, 8)},
			"a self=4 crit=4 orphan\n b self=6 crit=6\npath: a:2 b:6 a:2",
		},
		{
			"flow without spans, by time then service",
			[]trace.Span{sp(0, 0, "y", 5, 10), sp(0, 0, "x", 5, 8), sp(0, 0, "w", 0, 4)},
			"w self=4 crit=4\nx self=3 crit=0\ny self=5 crit=5\npath: w:4 gap:1 y:5",
		},
		{
			"id-less events hang under the only root",
			[]trace.Span{sp(1, 0, "a", 0, 10), sp(0, 0, "log", 3, 3)},
			"a self=10 crit=10\n log self=0 crit=0\npath: a:10",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := trace.Build(tid, c.spans)
			if got := shape(tr); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			var sum int64
			for _, s := range tr.Critical {
				sum += s.EndNS - s.StartNS
			}
			if sum != tr.EndNS-tr.StartNS {
				t.Errorf("critical path sums to %d ns, trace lasts %d", sum, tr.EndNS-tr.StartNS)
			}
		})
	}
}

// The validation flow of docs/wire-format.md (context_id, no trace): the
// run spans from validation.started to validation.failed, the phase from
// its start to its end, under the run.
func TestBuildValidationFlow(t *testing.T) {
	docs := []string{
		`{"event_type":"validation.started","id":"v1","source":"orders","timestamp":"2026-11-27T10:00:01Z","context_id":"order-42","field_path":"order.shipping.address"}`,
		`{"event_type":"performance.phase.start","id":"v2","source":"orders","timestamp":"2026-11-27T10:00:01Z","context_id":"order-42","phase":"address_check","field_path":"order.shipping.address"}`,
		`{"event_type":"performance.phase.end","id":"v3","source":"orders","timestamp":"2026-11-27T10:00:01.250Z","context_id":"order-42","phase":"address_check","duration_ms":250,"status":"success"}`,
		`{"event_type":"validation.failed","id":"v4","source":"orders","timestamp":"2026-11-27T10:00:01.251Z","context_id":"order-42","field_path":"order.shipping.address.zip","status":"failure","duration_ms":251,"errors":["zip code must have 5 digits"]}`,
	}
	var spans []trace.Span
	for _, d := range slices.Backward(docs) { // arrival order must not matter
		ev, err := events.Decode([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		id, s, ok := trace.FromEvent(ev)
		if !ok || id != trace.ContextTraceID("order-42") {
			t.Fatalf("FromEvent(%s) = %v, %v", d, id, ok)
		}
		spans = append(spans, s)
	}
	tr := trace.Build(trace.ContextTraceID("order-42"), spans)
	want := "orders self=1 crit=1\n orders self=250 crit=250\npath: orders:250 orders:1"
	if got := shape(tr); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if tr.Nodes[0].Type != events.ValidationFailed || tr.Nodes[1].Name != "address_check" || tr.Errors != 1 || tr.DurationMS() != 251 {
		t.Fatalf("root %s, child %s, errors %d, duration %v", tr.Nodes[0].Type, tr.Nodes[1].Name, tr.Errors, tr.DurationMS())
	}
}

func TestStoredRoundTrip(t *testing.T) {
	in := []trace.Span{sp(1, 0, "a", 0, 100), sp(2, 1, "b", 10, 90), sp(0, 0, "c", 5, 5)}
	in[1].Error, in[1].Status, in[2].ContextID = true, "failure", "run-1"
	data, err := trace.Encode(tid, in, 3)
	if err != nil {
		t.Fatal(err)
	}
	id, out, dropped, err := trace.Decode(data)
	if err != nil || id != tid || dropped != 3 || !slices.Equal(out, in) {
		t.Fatalf("Decode = %v %v %d %v, want %v", id, out, dropped, err, in)
	}
	for _, bad := range []string{
		`{`, `{"trace_id":"00000000000000000000000000000000","spans":[]}`,
		`{"trace_id":"0af7651916cd43dd8448eb211c80319c","spans":[{"span_id":"zz"}]}`,
	} {
		if _, _, _, err := trace.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

func FuzzDecodeBuild(f *testing.F) {
	data, _ := trace.Encode(tid, []trace.Span{sp(1, 2, "a", 0, 100), sp(2, 1, "b", 10, 90)}, 0)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, spans, _, err := trace.Decode(data)
		if err != nil {
			return
		}
		tr := trace.Build(id, spans)
		if len(tr.Nodes) > len(spans) {
			t.Fatalf("%d nodes from %d spans", len(tr.Nodes), len(spans))
		}
		_ = tr.View()
	})
}
