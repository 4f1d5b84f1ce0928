package events_test

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern string
		typ     events.Type
		want    bool
	}{
		{"validation.*", "validation.started", true},
		{"validation.*", "validation.started.x", false},
		{"validation.*", "validation", false},
		{"validation.>", "validation.started", true},
		{"validation.>", "validation", false},
		{"performance.>", "performance.phase.start", true},
		{"performance.*", "performance.phase.start", false},
		{"performance.*.*", "performance.phase.start", true},
		{"*.phase.*", "performance.phase.start", true},
		{"performance.phase.start", "performance.phase.start", true},
		{"performance.phase.start", "performance.phase.end", false},
		{"performance.phase", "performance.phase.start", false},
		{">", "system.error", true},
		{"*", "system.error", false},
		{"*.*", "system.error", true},
		{"system.error.>", "system.error", false},
		{"a.>.b", "a.x.b", false}, // invalid pattern matches nothing
		{"", "system.error", false},
	}
	for _, c := range cases {
		if got := events.Match(c.pattern, c.typ); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	for _, p := range []string{">", "*", "a", "a.b", "a.*", "*.b.>", "performance.>"} {
		if err := events.ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a.>.b", ">.a", "a*", "a.b>", "a b", "a.\t"} {
		err := events.ValidatePattern(p)
		if !errors.Is(err, events.ErrInvalidPattern) || !strings.Contains(err.Error(), `"`) {
			t.Errorf("ValidatePattern(%q) = %v, want ErrInvalidPattern quoting the pattern", p, err)
		}
	}
}

func TestTypes(t *testing.T) {
	types := events.Types()
	if len(types) != 25 || !slices.IsSorted(types) {
		t.Fatalf("Types() = %d types (sorted: %v), want the 25 of the taxonomy", len(types), slices.IsSorted(types))
	}
	for _, typ := range types {
		ev, err := events.New(typ, "s")
		if err != nil {
			t.Fatalf("New(%s): %v", typ, err)
		}
		if string(ev.Metadata().Type.Family()) != strings.Split(string(typ), ".")[0] {
			t.Errorf("%s: family %s", typ, ev.Metadata().Type.Family())
		}
	}
	if _, err := events.New("performance.nope", "s"); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("New(unknown) = %v", err)
	}
}

func TestNewIDSortableAndUnique(t *testing.T) {
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = events.NewID()
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("IDs are not issued in sorted order")
	}
	if len(slices.Compact(slices.Clone(ids))) != n {
		t.Fatalf("duplicate IDs")
	}
	id := ids[0]
	if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
		t.Errorf("%q is not a UUIDv7", id)
	}
	ms := time.Now().UnixMilli()
	var prefix int64
	for _, c := range strings.ReplaceAll(id[:13], "-", "") {
		prefix = prefix<<4 | int64(strings.IndexRune("0123456789abcdef", c))
	}
	if d := ms - prefix; d < 0 || d > 60_000 {
		t.Errorf("ID timestamp %d is %d ms from now", prefix, d)
	}
}

func TestNewIDAtKeepsOrderWhateverTheTime(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		at   time.Time
	}{
		{"now", now},
		{"an hour ago (a stale reading)", now.Add(-time.Hour)},
		{"the epoch", time.Unix(0, 0)},
		{"now again", now},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := events.NewID()
			got := events.NewIDAt(c.at)
			after := events.NewID()
			if before >= got || got >= after {
				t.Errorf("NewIDAt(%v) = %q, not between %q and %q", c.at, got, before, after)
			}
		})
	}
}

func TestTraceparent(t *testing.T) {
	root := events.NewRootTrace()
	child := root.Child()
	if child.TraceID != root.TraceID || child.ParentSpanID != root.SpanID || child.SpanID == root.SpanID {
		t.Fatalf("Child() = %+v of %+v", child, root)
	}
	h := child.Traceparent()
	got, err := events.ParseTraceparent(h)
	if err != nil || got.TraceID != child.TraceID || got.SpanID != child.SpanID || !got.Sampled {
		t.Fatalf("ParseTraceparent(%q) = %+v, %v", h, got, err)
	}
	const w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tc, err := events.ParseTraceparent(w3c)
	if err != nil || tc.TraceID.String() != "0af7651916cd43dd8448eb211c80319c" || tc.SpanID.String() != "b7ad6b7169203331" {
		t.Fatalf("ParseTraceparent(W3C example) = %+v, %v", tc, err)
	}
	if tc.Traceparent() != w3c {
		t.Errorf("Traceparent() = %q, want %q", tc.Traceparent(), w3c)
	}
	for _, bad := range []string{
		"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
	} {
		if _, err := events.ParseTraceparent(bad); !errors.Is(err, events.ErrBadTraceContext) {
			t.Errorf("ParseTraceparent(%q) = %v, want ErrBadTraceContext", bad, err)
		}
	}
	if _, err := events.ParseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future"); err != nil {
		t.Errorf("a future version with extra fields must parse: %v", err)
	}
	ctx := events.ContextWithTrace(t.Context(), child)
	if got, ok := events.TraceFromContext(ctx); !ok || got != child {
		t.Errorf("TraceFromContext = %+v, %v", got, ok)
	}
	if _, ok := events.TraceFromContext(t.Context()); ok {
		t.Errorf("TraceFromContext on an empty context reported a trace")
	}
}

func TestValidateGoEvents(t *testing.T) {
	ok := events.NewPerformanceEvent(events.OperationComplete, "svc")
	ok.Operation = "op"
	if err := ok.Validate(); err != nil {
		t.Fatalf("a zero duration is a valid duration: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(e *events.PerformanceEvent)
		field string
	}{
		{"NaN", func(e *events.PerformanceEvent) { e.DurationMS = math.NaN() }, "duration_ms"},
		{"+Inf", func(e *events.PerformanceEvent) { e.DurationMS = math.Inf(1) }, "duration_ms"},
		{"negative", func(e *events.PerformanceEvent) { e.DurationMS = -0.5 }, "duration_ms"},
		{"value NaN", func(e *events.PerformanceEvent) { e.Value = math.NaN() }, "value"},
		{"future", func(e *events.PerformanceEvent) { e.Timestamp = time.Now().Add(2 * events.MaxClockSkew) }, "timestamp"},
		{"no time", func(e *events.PerformanceEvent) { e.Timestamp = time.Time{} }, "timestamp"},
		{"no source", func(e *events.PerformanceEvent) { e.Source = "" }, "source"},
		{"control source", func(e *events.PerformanceEvent) { e.Source = "a\nb" }, "source"},
		{"long id", func(e *events.PerformanceEvent) { e.ID = strings.Repeat("x", events.MaxIDLen+1) }, "id"},
		{"wrong family", func(e *events.PerformanceEvent) { e.Type = events.SystemError }, "event_type"},
		{"unknown", func(e *events.PerformanceEvent) { e.Type = "performance.phase.middle" }, "event_type"},
		{"no operation", func(e *events.PerformanceEvent) { e.Operation = "" }, "operation"},
		{"span without trace", func(e *events.PerformanceEvent) { e.TraceID = events.TraceID{} }, "trace_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *ok
			c.edit(&e)
			var ve *events.ValidationError
			if err := e.Validate(); !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, events.ErrInvalid) {
				t.Errorf("Validate() = %v, want a ValidationError on %s", err, c.field)
			}
		})
	}
}

func TestEncodingJSONInterop(t *testing.T) {
	type envelope struct {
		Perf   *events.PerformanceEvent `json:"perf"`
		Health *events.HealthEvent      `json:"health"`
	}
	p := events.NewPerformanceEvent(events.PhaseEnd, "svc")
	p.Phase, p.DurationMS = "load", 3
	in := envelope{Perf: p, Health: events.NewHealthEvent(events.ComponentFailed, "agent", "db")}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	var out envelope
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", data, err)
	}
	if out.Perf.ID != p.ID || out.Perf.DurationMS != 3 || out.Health.Status != events.StatusFailed {
		t.Errorf("round trip through encoding/json lost data: %+v", out)
	}
	var wrong events.HealthEvent
	if err := json.Unmarshal(p.AppendJSON(nil), &wrong); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("unmarshalling a performance event into a HealthEvent: %v", err)
	}
}

func TestAllocationBudgets(t *testing.T) {
	bus := events.NewNoopBus()
	ev := events.NewPerformanceEvent(events.OperationComplete, "svc")
	ev.Operation, ev.DurationMS = "op", 1
	ctx := t.Context()
	if n := testing.AllocsPerRun(1000, func() { _ = bus.Publish(ctx, ev) }); n != 0 {
		t.Errorf("NoopBus.Publish allocates %.1f times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = events.Marshal(ev) }); n > 2 {
		t.Errorf("Marshal allocates %.1f times per call, want at most 2", n)
	}
	data := ev.AppendJSON(nil)
	if n := testing.AllocsPerRun(1000, func() { _, _ = events.Decode(data) }); n > 3 {
		t.Errorf("Decode allocates %.1f times per call, want at most 3", n)
	}
}
