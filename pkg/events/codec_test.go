package events_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

// everyType returns one valid event of every type in the taxonomy.
func everyType(t *testing.T) []events.Event {
	t.Helper()
	var out []events.Event
	for _, typ := range events.Types() {
		out = append(out, eventstest.NewEvent(typ, string(typ)))
	}
	return out
}

func TestRoundTripEveryType(t *testing.T) {
	for _, ev := range everyType(t) {
		t.Run(string(ev.Metadata().Type), func(t *testing.T) {
			if err := ev.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			data := ev.AppendJSON(nil)
			got, err := events.Decode(data)
			if err != nil {
				t.Fatalf("Decode(%s): %v", data, err)
			}
			if again := got.AppendJSON(nil); string(again) != string(data) {
				t.Errorf("re-encoding differs:\n got %s\nwant %s", again, data)
			}
			if got.Metadata().ID != ev.Metadata().ID || !got.Metadata().Timestamp.Equal(ev.Metadata().Timestamp) ||
				got.Metadata().TraceID != ev.Metadata().TraceID {
				t.Errorf("metadata changed: %+v -> %+v", ev.Metadata(), got.Metadata())
			}
		})
	}
}

func TestRoundTripAllFields(t *testing.T) {
	p := events.NewPerformanceEvent(events.OperationFailed, "checkout-7")
	p.ParentSpanID = events.NewSpanID()
	p.ContextID = "run-1"
	p.Attributes = map[string]string{"host": "h1", "version": "1.2.3", "emoji": "✓ \u2028 \"q\" \\ \n\t\x01"}
	p.FieldPath, p.Operation, p.DurationMS, p.Phase, p.Status = "a.b", "db.query", 12.345, "parse", events.StatusFailure
	p.Metric, p.Value, p.Unit, p.Resource, p.Error = "rows", 1e-9, "1", "conn", "timeout"

	h := events.NewHealthEvent(events.ThresholdExceeded, "agent", "db")
	h.Status, h.Message, h.LatencyMS, h.Metric, h.Value, h.Threshold = events.StatusDegraded, "slow", 3.5, "p95", 300, 250

	c := events.NewControlEvent(events.ModeSwitched, "ops")
	c.Mode, c.PreviousMode, c.SampleRate, c.Scope, c.Reason = events.ModeDirect, events.ModeEventDriven, 0.25, "performance.>", "incident"
	c.Config = map[string]string{"batch": "100"}

	v := events.NewValidationEvent(events.ValidationFailed, "svc", "ctx-9")
	v.FieldPath, v.Status, v.DurationMS, v.Errors, v.Message = "user.zip", events.StatusFailure, 7, []string{"too short", "not digits"}, "2 errors"

	s := events.NewSystemEvent(events.SystemError, "svc", "disk full")
	s.Component, s.Message = "spool", "dropping"

	for _, ev := range []events.Event{p, h, c, v, s} {
		data, err := events.Marshal(ev)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", ev.Metadata().Type, err)
		}
		got, err := events.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%s): %v", data, err)
		}
		if again := got.AppendJSON(nil); string(again) != string(data) {
			t.Errorf("%s: re-encoding differs:\n got %s\nwant %s", ev.Metadata().Type, again, data)
		}
	}
	got, _ := events.Decode(p.AppendJSON(nil))
	if gp := got.(*events.PerformanceEvent); gp.Attributes["emoji"] != p.Attributes["emoji"] || gp.Value != 1e-9 {
		t.Errorf("strings or small numbers did not survive: %q %v", gp.Attributes["emoji"], gp.Value)
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	const head = `"id":"x1","source":"s","timestamp":"2026-01-02T03:04:05Z"`
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name, in, field string
		want            error
	}{
		{"unknown type", `{"event_type":"performance.bogus",` + head + `}`, "event_type", events.ErrInvalid},
		{"missing type", `{` + head + `}`, "event_type", events.ErrInvalid},
		{"missing id", `{"event_type":"system.error","source":"s","timestamp":"2026-01-02T03:04:05Z","error":"e"}`, "id", events.ErrInvalid},
		{"missing source", `{"event_type":"system.error","id":"x","timestamp":"2026-01-02T03:04:05Z","error":"e"}`, "source", events.ErrInvalid},
		{"missing timestamp", `{"event_type":"system.error","id":"x","source":"s","error":"e"}`, "timestamp", events.ErrInvalid},
		{"bad timestamp", `{"event_type":"system.error",` + strings.Replace(head, "2026-01-02T03:04:05Z", "yesterday", 1) + `,"error":"e"}`, "timestamp", events.ErrInvalid},
		{"future timestamp", `{"event_type":"system.error","id":"x","source":"s","timestamp":"` + future + `","error":"e"}`, "timestamp", events.ErrInvalid},
		{"missing error", `{"event_type":"system.error",` + head + `}`, "error", events.ErrInvalid},
		{"missing duration", `{"event_type":"performance.operation.complete",` + head + `,"operation":"op"}`, "duration_ms", events.ErrInvalid},
		{"negative duration", `{"event_type":"performance.operation.complete",` + head + `,"operation":"op","duration_ms":-1}`, "duration_ms", events.ErrInvalid},
		{"infinite duration", `{"event_type":"performance.operation.complete",` + head + `,"operation":"op","duration_ms":1e999}`, "duration_ms", events.ErrInvalid},
		{"string duration", `{"event_type":"performance.operation.complete",` + head + `,"operation":"op","duration_ms":"12"}`, "duration_ms", events.ErrInvalid},
		{"missing operation", `{"event_type":"performance.operation.failed",` + head + `,"duration_ms":1}`, "operation", events.ErrInvalid},
		{"missing phase", `{"event_type":"performance.phase.start",` + head + `}`, "phase", events.ErrInvalid},
		{"missing metric value", `{"event_type":"performance.metric.recorded",` + head + `,"metric":"m"}`, "value", events.ErrInvalid},
		{"short trace id", `{"event_type":"system.error",` + head + `,"error":"e","trace_id":"abc","span_id":"0102030405060708"}`, "trace_id", events.ErrInvalid},
		{"upper-case trace id", `{"event_type":"system.error",` + head + `,"error":"e","trace_id":"0AF7651916CD43DD8448EB211C80319C","span_id":"0102030405060708"}`, "trace_id", events.ErrInvalid},
		{"zero span id", `{"event_type":"system.error",` + head + `,"error":"e","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"0000000000000000"}`, "span_id", events.ErrInvalid},
		{"span without trace", `{"event_type":"system.error",` + head + `,"error":"e","span_id":"0102030405060708"}`, "trace_id", events.ErrInvalid},
		{"bad health status", `{"event_type":"health.check.completed",` + head + `,"component":"db","status":"meh"}`, "status", events.ErrInvalid},
		{"contradicting status", `{"event_type":"health.component.failed",` + head + `,"component":"db","status":"healthy"}`, "status", events.ErrInvalid},
		{"bad mode", `{"event_type":"monitoring.mode.switched",` + head + `,"mode":"turbo"}`, "mode", events.ErrInvalid},
		{"sample rate above 1", `{"event_type":"monitoring.sampled",` + head + `,"sample_rate":1.5}`, "sample_rate", events.ErrInvalid},
		{"bad scope", `{"event_type":"monitoring.sampled",` + head + `,"sample_rate":0.5,"scope":"a.>.b"}`, "scope", events.ErrInvalid},
		{"missing context", `{"event_type":"validation.started",` + head + `}`, "context_id", events.ErrInvalid},
		{"attribute not string", `{"event_type":"system.error",` + head + `,"error":"e","attributes":{"n":1}}`, "attributes.n", events.ErrInvalid},
		{"errors not strings", `{"event_type":"validation.failed",` + head + `,"context_id":"c","errors":[1]}`, "errors[0]", events.ErrInvalid},
		{"id with space", `{"event_type":"system.error","id":"a b","source":"s","timestamp":"2026-01-02T03:04:05Z","error":"e"}`, "id", events.ErrInvalid},
		{"not json", `hello`, "", events.ErrMalformed},
		{"truncated", `{"event_type":"system.error",` + head, "", events.ErrMalformed},
		{"trailing garbage", `{"event_type":"system.error",` + head + `,"error":"e"} x`, "", events.ErrMalformed},
		{"bad escape", `{"event_type":"system.error",` + head + `,"error":"\q"}`, "", events.ErrMalformed},
		{"raw control char", "{\"event_type\":\"system.error\"," + head + ",\"error\":\"a\x01\"}", "", events.ErrMalformed},
		{"array", `[1,2]`, "", events.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := events.Decode([]byte(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, %v; want an error matching %v", ev, err, c.want)
			}
			var ve *events.ValidationError
			if c.field != "" && (!errors.As(err, &ve) || ve.Field != c.field) {
				t.Fatalf("error %q does not name field %q", err, c.field)
			}
		})
	}
}

func TestDecodeAcceptsForeignButValidJSON(t *testing.T) {
	in := ` { "unknown" : [1, {"deep": [true, false, null]}], "source" : "s\u00e9" ,
		"event\u005ftype":"system.error", "id":"i", "timestamp":"2026-01-02T03:04:05.123456789+02:00",
		"error":"e\ud83d\ude00", "message": null, "attributes": null, "trace_id": null } `
	ev, err := events.Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	s := ev.(*events.SystemEvent)
	if s.Source != "sé" || s.Error != "e😀" || s.Timestamp.UTC().Format(time.RFC3339Nano) != "2026-01-02T01:04:05.123456789Z" {
		t.Errorf("decoded %+v", s)
	}
}

func TestPayloadLimit(t *testing.T) {
	ev := events.NewSystemEvent(events.SystemError, "s", strings.Repeat("e", 2000))
	data := ev.AppendJSON(nil)
	if _, err := (events.Decoder{MaxPayload: 1000}).Decode(data); !errors.Is(err, events.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "1000") {
		t.Errorf("Decode over the limit: %v, want ErrPayloadTooLarge naming the limit", err)
	}
	if _, err := (events.Decoder{MaxPayload: -1}).Decode(data); err != nil {
		t.Errorf("Decode with no limit: %v", err)
	}
	big := make([]byte, events.DefaultMaxPayload+1)
	if _, err := events.Decode(big); !errors.Is(err, events.ErrPayloadTooLarge) {
		t.Errorf("default limit: %v", err)
	}
	if _, err := events.DecodeBatch(big); !errors.Is(err, events.ErrPayloadTooLarge) {
		t.Errorf("default batch limit: %v", err)
	}
}

func TestBatch(t *testing.T) {
	evs := everyType(t)
	data := events.AppendBatch(nil, evs)
	got, err := events.DecodeBatch(data)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if len(got) != len(evs) {
		t.Fatalf("decoded %d events, want %d", len(got), len(evs))
	}
	for i := range evs {
		if a, b := string(got[i].AppendJSON(nil)), string(evs[i].AppendJSON(nil)); a != b {
			t.Errorf("item %d differs:\n got %s\nwant %s", i, a, b)
		}
	}
	if got, err := events.DecodeBatch([]byte(" [ ] ")); err != nil || len(got) != 0 {
		t.Errorf("empty batch: %v, %v", got, err)
	}
	single, err := events.DecodeBatch(evs[0].AppendJSON(nil))
	if err != nil || len(single) != 1 {
		t.Errorf("a single object as a batch: %v, %v", single, err)
	}
}

func TestBatchKeepsGoodItems(t *testing.T) {
	good1 := string(eventstest.NewEvent(events.SystemError, "g1").AppendJSON(nil))
	good2 := string(eventstest.NewEvent(events.PhaseStart, "g2").AppendJSON(nil))
	bad := `{"event_type":"performance.operation.complete","id":"b","source":"s","timestamp":"2026-01-02T03:04:05Z","operation":"op","duration_ms":-5}`
	data := "[" + good1 + "," + bad + ", 42 ," + good2 + "]"
	got, err := events.DecodeBatch([]byte(data))
	var be *events.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("DecodeBatch error = %v, want *BatchError", err)
	}
	if len(got) != 2 || eventstest.Tag(got[0]) != "g1" || eventstest.Tag(got[1]) != "g2" {
		t.Errorf("good items lost: %v", got)
	}
	if len(be.Items) != 2 || be.Items[0].Index != 1 || be.Items[1].Index != 2 {
		t.Fatalf("bad items = %+v, want indexes 1 and 2", be.Items)
	}
	if !errors.Is(err, events.ErrInvalid) || !errors.Is(err, events.ErrMalformed) {
		t.Errorf("BatchError should unwrap to the items' errors: %v", err)
	}
	if _, err := events.DecodeBatch([]byte("[" + good1 + ",")); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("broken array: %v, want ErrMalformed", err)
	}
}

func TestMarshalRejectsNonFinite(t *testing.T) {
	ev := events.NewPerformanceEvent(events.OperationComplete, "s")
	ev.Operation, ev.DurationMS = "op", math.NaN()
	if _, err := events.Marshal(ev); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Marshal NaN: %v", err)
	}
	if _, err := ev.MarshalJSON(); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("MarshalJSON NaN: %v", err)
	}
	if !strings.Contains(string(ev.AppendJSON(nil)), `"duration_ms":null`) {
		t.Errorf("AppendJSON should write a non-finite number as null")
	}
}

func TestPlainPrefixAgreesWithByteLoop(t *testing.T) {
	// Every byte value at every position of a 17-byte string (two words and a
	// tail) must stop the fast path exactly where a byte-by-byte loop would.
	for pos := range 17 {
		for c := range 256 {
			b := []byte(strings.Repeat("a", 17))
			b[pos] = byte(c)
			s := `{"event_type":"system.error","id":"i","source":"s","timestamp":"2026-01-02T03:04:05Z","error":"` + string(b) + `"}`
			ev, err := events.Decoder{SkipValidation: true}.Decode([]byte(s))
			printable := c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
			if printable {
				if err != nil || ev.(*events.SystemEvent).Error != string(b) {
					t.Fatalf("byte %#x at %d: %v", c, pos, err)
				}
			}
			// Encoding must escape exactly the non-plain bytes.
			enc := string(events.NewSystemEvent(events.SystemError, "s", string(b)).AppendJSON(nil))
			if printable != strings.Contains(enc, `"error":"`+string(b)+`"`) {
				t.Fatalf("byte %#x at %d encoded as %s", c, pos, enc)
			}
		}
	}
}

func TestAggregateEvent(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ev := events.NewAggregateEvent(events.OperationComplete, "checkout", "db.query", start, start.Add(10*time.Second))
	ev.Count, ev.ErrorCount, ev.Sum, ev.Avg, ev.Min, ev.Max = 4, 1, 40, 10, 2, 25.5
	ev.P50, ev.P90, ev.P95, ev.P99 = 9, 20, 24, 25.5
	ev.Sketch = []byte{0, 1, 2, 250, 251}
	data, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"aggregated_type":"performance.operation.complete"`, `"window_start":"2026-11-27T10:00:00Z"`,
		`"count":4`, `"error_count":1`, `"avg_duration":10`, `"p95_duration":24`, `"max_duration":25.5`, `"sketch":"AAEC+vs="`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("wire form lacks %s:\n%s", want, data)
		}
	}
	got, err := events.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.AppendJSON(nil)) != string(data) {
		t.Errorf("round trip changed the event:\n%s\n%s", got.AppendJSON(nil), data)
	}
	again := events.NewAggregateEvent(events.OperationComplete, "checkout", "db.query", start, start.Add(10*time.Second))
	other := events.NewAggregateEvent(events.OperationComplete, "checkout", "db.query", start.Add(10*time.Second), start.Add(20*time.Second))
	if again.ID != ev.ID || other.ID == ev.ID || !ev.Timestamp.Equal(ev.WindowEnd) {
		t.Errorf("ids must depend on series and window only: %s %s %s", ev.ID, again.ID, other.ID)
	}
	bad := *ev
	bad.WindowEnd = bad.WindowStart
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "window_end") {
		t.Errorf("empty window: %v", err)
	}
	bad = *ev
	bad.AggregatedType = events.SystemError
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "aggregated_type") {
		t.Errorf("non-performance aggregated type: %v", err)
	}
	p := events.NewPerformanceEvent(events.MetricAggregated, "s")
	if err := p.Validate(); err == nil {
		t.Error("a PerformanceEvent claimed to be an aggregate")
	}
}

// TestFastFormattersMatchTheStandardLibrary checks the encoder's fast paths
// for numbers and times against strconv and time.RFC3339Nano.
func TestFastFormattersMatchTheStandardLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	check := func(v float64) {
		ev := events.NewPerformanceEvent(events.MetricRecorded, "s")
		ev.Metric, ev.Value = "m", v
		got := string(ev.AppendJSON(nil))
		want := `"value":` + string(mustJSON(t, v))
		if !strings.Contains(got, want) {
			t.Fatalf("value %v encoded as %s, want %s", v, got, want)
		}
	}
	for range 200_000 {
		switch r.IntN(4) {
		case 0:
			check(float64(r.Int64N(1e15)-5e14) / 1000)
		case 1:
			check(math.Round(r.NormFloat64()*1e6) / 100)
		case 2:
			check(r.Float64() * math.Pow(10, float64(r.IntN(30)-10)))
		default:
			check(float64(r.IntN(100000)) / 1000)
		}
	}
	for _, v := range []float64{0.001, 0.1, 0.3, 1.005, 12.75, -0.5, 999999999999.999, 1e12, 1e-3, 123456789.123} {
		check(v)
	}
	for range 100_000 {
		ts := time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9)).UTC()
		if r.IntN(3) == 0 {
			ts = ts.Truncate(time.Millisecond)
		}
		ev := events.NewSystemEvent(events.SystemError, "s", "e")
		ev.Timestamp = ts
		want := `"timestamp":"` + ts.Format(time.RFC3339Nano) + `"`
		if got := string(ev.AppendJSON(nil)); !strings.Contains(got, want) {
			t.Fatalf("time %v encoded as %s, want %s", ts, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The seed correlates by trace_id alone: an event with a trace and no span is
// valid, keeps its trace through a round trip, and carries no traceparent.
func TestTraceIDWithoutSpanIsValid(t *testing.T) {
	in := `{"event_type":"performance.operation.complete","id":"x","source":"s","timestamp":"2026-01-02T03:04:05Z",` +
		`"operation":"op","duration_ms":1,"trace_id":"0af7651916cd43dd8448eb211c80319c"}`
	ev, err := events.Decode([]byte(in))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	m := ev.Metadata()
	if m.TraceID.String() != "0af7651916cd43dd8448eb211c80319c" || !m.SpanID.IsZero() || !m.ParentSpanID.IsZero() {
		t.Fatalf("trace context = %v/%v/%v", m.TraceID, m.SpanID, m.ParentSpanID)
	}
	if tp := m.Trace().Traceparent(); tp != "" {
		t.Fatalf("traceparent of a trace without span = %q, want none", tp)
	}
	back, err := events.Decode(ev.AppendJSON(nil))
	if err != nil || back.Metadata().TraceID != m.TraceID || !back.Metadata().SpanID.IsZero() {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	// A parent without a span of its own is valid too (it names the cause).
	withParent := strings.Replace(in, `"trace_id"`, `"parent_span_id":"b7ad6b7169203331","trace_id"`, 1)
	if _, err := events.Decode([]byte(withParent)); err != nil {
		t.Fatalf("trace and parent without span: %v", err)
	}
}

func TestAggregateSlowestTraceIDs(t *testing.T) {
	base := `{"event_type":"performance.metric.aggregated","id":"agg-1","source":"s","timestamp":"2026-01-02T03:04:10Z",` +
		`"operation":"op","aggregated_type":"performance.operation.complete","window_start":"2026-01-02T03:04:00Z","window_end":"2026-01-02T03:04:10Z","count":1`
	ev, err := events.Decode([]byte(base + `,"slowest_trace_ids":["0af7651916cd43dd8448eb211c80319c"]}`))
	if err != nil || len(ev.(*events.AggregateEvent).SlowestTraceIDs) != 1 || ev.(*events.AggregateEvent).SlowestTraceIDs[0].String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("decode: %v %+v", err, ev)
	}
	for name, bad := range map[string]string{
		"not hex":   `,"slowest_trace_ids":["zz"]}`,
		"zero":      `,"slowest_trace_ids":["00000000000000000000000000000000"]}`,
		"not array": `,"slowest_trace_ids":"0af7651916cd43dd8448eb211c80319c"}`,
		"too many":  `,"slowest_trace_ids":[` + strings.TrimSuffix(strings.Repeat(`"0af7651916cd43dd8448eb211c80319c",`, events.MaxSlowestTraces+1), ",") + `]}`,
	} {
		var ve *events.ValidationError
		if _, err := events.Decode([]byte(base + bad)); !errors.As(err, &ve) || !strings.HasPrefix(ve.Field, "slowest_trace_ids") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAggregateAmendment: the amendment flag survives the wire, is left out
// when false, and a value that is not a boolean names the field.
func TestAggregateAmendment(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ev := events.NewAggregateEvent(events.OperationComplete, "checkout", "db.query", start, start.Add(10*time.Second))
	ev.Count = 1
	plain, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "amendment") {
		t.Errorf("a window that is no amendment says so on the wire: %s", plain)
	}
	ev.Amendment = true
	ev.ID = events.WindowID(ev.AggregatedType, ev.Source, ev.Name(), ev.WindowStart, 42)
	data, err := events.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := got.(*events.AggregateEvent)
	if !ok || !a.Amendment || a.ID != ev.ID || a.SeriesWindowKey() != events.AggregateID(ev.AggregatedType, "checkout", "db.query", start) {
		t.Errorf("decoded %+v", got)
	}
	for _, bad := range []string{`"yes"`, `1`, `{}`} {
		in := strings.Replace(string(data), `"amendment":true`, `"amendment":`+bad, 1)
		if _, err := events.Decode([]byte(in)); err == nil || !strings.Contains(err.Error(), "amendment") {
			t.Errorf("amendment %s: %v", bad, err)
		}
	}
	if _, err := events.Decode([]byte(strings.Replace(string(data), `"amendment":true`, `"amendment":false`, 1))); err != nil {
		t.Errorf("amendment false: %v", err)
	}
}
