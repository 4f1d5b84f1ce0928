package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/eventstest"
)

func seedCorpus(f *testing.F) {
	for _, typ := range events.Types() {
		f.Add(eventstest.NewEvent(typ, "seed").AppendJSON(nil))
	}
	f.Add([]byte(`{"event_type":"system.error","id":"a","source":"s","timestamp":"2026-01-02T03:04:05Z","error":"\ud83d\ude00\u00e9\\"}`))
	f.Add([]byte(`{"event_type":"performance.metric.recorded","id":"a","source":"s","timestamp":"2026-01-02T03:04:05Z","metric":"m","value":-1.5e-7}`))
	f.Add([]byte(`[{"event_type":"system.error"},1,{"a":[[[]]]}]`))
	f.Add([]byte(`{"a":"\ud800","b":1e999}`))
}

// stringKeys are wire fields that decode to Go strings unchanged.
var stringKeys = []string{
	"id", "source", "context_id", "operation", "field_path", "phase", "status", "metric",
	"unit", "resource", "error", "component", "message", "mode", "previous_mode", "scope", "reason",
}

// FuzzDecode checks that decoding never panics, that whatever decodes
// re-encodes to a fixed point, that it agrees with encoding/json on what is
// valid JSON, and that decoded strings equal encoding/json's.
func FuzzDecode(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := events.Decoder{SkipValidation: true}.Decode(data)
		if err != nil {
			isObject := strings.HasPrefix(strings.TrimLeft(string(data), " \t\r\n"), "{")
			if isObject && json.Valid(data) && errors.Is(err, events.ErrMalformed) && !strings.Contains(err.Error(), "nesting") {
				t.Fatalf("valid JSON rejected as malformed: %v\n%q", err, data)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("invalid JSON accepted: %q", data)
		}
		enc := ev.AppendJSON(nil)
		ev2, err := events.Decoder{SkipValidation: true}.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, enc)
		}
		if enc2 := ev2.AppendJSON(nil); string(enc2) != string(enc) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", enc, enc2)
		}
		var in, out map[string]any
		if json.Unmarshal(data, &in) != nil || json.Unmarshal(enc, &out) != nil {
			t.Fatalf("encoding/json cannot read input or our output: %s", enc)
		}
		for _, k := range stringKeys {
			if s, ok := in[k].(string); ok && s != "" && out[k] != nil && out[k] != s {
				t.Fatalf("field %s: we decoded %q, encoding/json %q", k, out[k], s)
			}
		}
		if strict, err := events.Decode(data); err == nil {
			if verr := strict.Validate(); verr != nil {
				t.Fatalf("Decode accepted an event that Validate rejects: %v", verr)
			}
		}
	})
}

// FuzzDecodeBatch checks that batch decoding never panics and accounts for
// every item of a well-formed array.
func FuzzDecodeBatch(f *testing.F) {
	seedCorpus(f)
	f.Add(events.AppendBatch(nil, []events.Event{
		eventstest.NewEvent(events.PhaseStart, "a"), eventstest.NewEvent(events.SystemError, "b"),
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		items := 0
		err := events.Decoder{}.EachInBatch(data, func(it events.BatchItem) {
			if it.Index != items {
				t.Fatalf("item index %d, want %d", it.Index, items)
			}
			if (it.Event == nil) == (it.Err == nil) {
				t.Fatalf("item %d: exactly one of event and error must be set: %v, %v", it.Index, it.Event, it.Err)
			}
			if len(it.Raw) == 0 {
				t.Fatalf("item %d has no raw bytes", it.Index)
			}
			items++
		})
		if err != nil {
			return
		}
		var arr []json.RawMessage
		if json.Unmarshal(data, &arr) == nil && items != len(arr) {
			t.Fatalf("%d items reported for an array of %d", items, len(arr))
		}
	})
}
