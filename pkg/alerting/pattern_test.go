package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/events"
)

// transitions renders the recorded transitions as "<label>:from>to@t",
// t in whole seconds since t0.
func (s *sink) transitions(label string, t0 time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, tr := range s.ts {
		out = append(out, fmt.Sprintf("%s:%s>%s@%d", tr.Alert.Labels[label], tr.From, tr.To, int(tr.At.Sub(t0).Seconds())))
	}
	return out
}

func validation(typ events.Type, source, ctxID string) *events.ValidationEvent {
	return events.NewValidationEvent(typ, source, ctxID)
}

const absenceRules = `
rules:
  - alert: ValidationStuck
    kind: absence
    key: context_id
    first: {types: [validation.started]}
    then: {types: [validation.completed, validation.failed]}
    within: 30s
    labels: {severity: warning}
    annotations: {summary: "validation {{ .Labels.context_id }} open for {{ .Value }} s"}
route: {receiver: r, group_by: [alertname], group_wait: 0s, group_interval: 10s}
receivers: [{name: r}]
`

// A validation that neither completes nor fails within 30 s fires at the
// 30th second, for its context_id only, and resolves keep_firing_for
// (default 5m) later; one that completes in time never fires, even when
// its end is delivered before its start.
func TestAbsenceTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, absenceRules, nil)
		t0 := time.Now()
		h.observe(t, validation(events.ValidationStarted, "checkout", "ctx-a"))
		h.observe(t, validation(events.ValidationStarted, "checkout", "ctx-b"))
		// ctx-c's end arrives before its start (another subject, another
		// order): it is complete all the same.
		h.observe(t, validation(events.ValidationCompleted, "checkout", "ctx-c"))
		h.observe(t, validation(events.ValidationStarted, "checkout", "ctx-c"))
		time.Sleep(10 * time.Second)
		h.observe(t, validation(events.ValidationCompleted, "checkout", "ctx-b"))
		time.Sleep(19 * time.Second)
		synctest.Wait()
		if h.rec.count() != 0 || len(h.sink.transitions("context_id", t0)) != 0 {
			t.Fatalf("fired before the deadline: %v", h.sink.transitions("context_id", t0))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := h.sink.transitions("context_id", t0), []string{"ctx-a:inactive>firing@30"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		n := h.rec.last(t)
		if len(n.Firing) != 1 || n.Firing[0].Labels["context_id"] != "ctx-a" || n.Firing[0].Labels["source"] != "checkout" ||
			n.Firing[0].Annotations["summary"] != "validation ctx-a open for 30 s" || n.Firing[0].Threshold != 30 {
			t.Fatalf("notification: %+v", n.Firing[0])
		}
		// ctx-a completing late does not matter; the alert lasts 5 minutes.
		h.observe(t, validation(events.ValidationFailed, "checkout", "ctx-a"))
		time.Sleep(5*time.Minute - time.Second)
		synctest.Wait()
		if s := h.state(t, "checkout"); s != alerting.StateFiring {
			t.Fatalf("within keep_firing_for: %s", s)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := h.sink.transitions("context_id", t0), []string{"ctx-a:inactive>firing@30", "ctx-a:firing>resolved@330"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		if n := h.rec.last(t); h.rec.count() != 2 || len(n.Resolved) != 1 {
			t.Fatalf("resolved notification: %d, %+v", h.rec.count(), n)
		}
	})
}

const sequenceRules = `
rules:
  - alert: ErrorsThenFailure
    kind: sequence
    key: source
    first: {types: [system.error], count: 5, within: 1m}
    then: {types: [health.component.failed]}
    within: 2m
    keep_firing_for: 1m
route: {receiver: r, group_by: [alertname], group_wait: 0s, group_interval: 10s}
receivers: [{name: r}]
`

func TestSequenceTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, sequenceRules, nil)
		t0 := time.Now()
		errs := func(source string, n int, every time.Duration) {
			for range n {
				h.observe(t, events.NewSystemEvent(events.SystemError, source, "boom"))
				time.Sleep(every)
			}
		}
		// a: five errors in 40 s, a failure 30 s later: fires.
		errs("a", 5, 10*time.Second) // t=0..40, now t=50
		// b: four errors, then a failure: too few.
		errs("b", 4, time.Second) // now t=54
		h.observe(t, health("b", "db", "failed"))
		// c: five errors spread over 80 s: not within the minute.
		errs("c", 5, 25*time.Second) // t=54..154, now t=179
		h.observe(t, health("c", "db", "failed"))
		h.observe(t, health("a", "db", "failed")) // t=179: too late for a (armed at 40, within 2m)
		if got := h.sink.transitions("source", t0); len(got) != 0 {
			t.Fatalf("transitions %v, want none", got)
		}
		// d: five errors at once, the failure 119 s later: fires.
		errs("d", 5, 0)
		time.Sleep(119 * time.Second) // t=298
		h.observe(t, health("d", "db", "failed"))
		if got, want := h.sink.transitions("source", t0), []string{"d:inactive>firing@298"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := h.sink.transitions("source", t0), []string{"d:inactive>firing@298", "d:firing>resolved@358"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		if h.rec.count() != 2 {
			t.Fatalf("%d notifications, want 2", h.rec.count())
		}
	})
}

const ratioRules = `
rules:
  - alert: ValidationFailureRatio
    kind: ratio
    numerator: {types: [validation.failed]}
    denominator: {types: [validation.started]}
    window: 1m
    op: ">="
    threshold: 0.5
    min_count: 4
route: {receiver: r, group_by: [alertname], group_wait: 0s}
receivers: [{name: r}]
`

func TestRatioTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ratioRules, nil)
		t0 := time.Now()
		for i := range 4 {
			h.observe(t, validation(events.ValidationStarted, "checkout", fmt.Sprint(i)))
		}
		h.observe(t, validation(events.ValidationFailed, "checkout", "0")) // 1/4
		// Two failures with too few starts elsewhere: min_count holds it.
		h.observe(t, validation(events.ValidationStarted, "cart", "x"))
		h.observe(t, validation(events.ValidationFailed, "cart", "x"))
		h.observe(t, validation(events.ValidationFailed, "cart", "y"))
		time.Sleep(10 * time.Second)
		h.observe(t, validation(events.ValidationFailed, "checkout", "1")) // 2/4: fires
		if got, want := h.sink.transitions("source", t0), []string{"checkout:inactive>firing@10"}; !slices.Equal(got, want) {
			t.Fatalf("transitions %v, want %v", got, want)
		}
		as, _ := h.svc.Alerts(t.Context())
		if len(as) != 1 || as[0].Value != 0.5 || as[0].Threshold != 0.5 {
			t.Fatalf("alerts %+v", as)
		}
		// The starts leave the one-minute window, counted in 10 buckets of
		// 6 s, once their bucket [0 s, 6 s) is a full window old: at 66 s.
		time.Sleep(time.Minute)
		synctest.Wait()
		got := h.sink.transitions("source", t0)
		if len(got) != 2 || got[1] != "checkout:firing>resolved@66" {
			t.Fatalf("transitions %v, want the resolve when the window slid past the starts", got)
		}
	})
}

// An engine holds at most max_keys open keys per rule, evicting the
// oldest and counting them; the survivors still fire.
func TestPatternKeyLimit(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("k.yaml", []byte(strings.Replace(absenceRules, "within: 30s", "within: 30s\n    max_keys: 3", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e := alerting.NewEngine(cfg.Rules)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		ev := validation(events.ValidationStarted, "s", fmt.Sprintf("ctx-%d", i))
		ev.Timestamp = t0.Add(time.Duration(i) * time.Second)
		e.Observe(ev, ev.Timestamp)
	}
	if n, ev := e.PatternKeys(), e.PatternEvictions()["ValidationStuck"]; n != 3 || ev != 2 {
		t.Fatalf("%d keys, %d evictions; want 3 and 2", n, ev)
	}
	if next := e.Next(t0.Add(5 * time.Second)); !next.Equal(t0.Add(32 * time.Second)) {
		t.Fatalf("next %v, want the deadline of ctx-2", next)
	}
	var fired []string
	for _, tr := range e.Tick(t0.Add(time.Minute)) {
		fired = append(fired, tr.Alert.Labels["context_id"]+">"+string(tr.To))
	}
	if want := []string{"ctx-2>firing", "ctx-3>firing", "ctx-4>firing"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if e.PatternKeys() != 0 {
		t.Fatalf("%d keys left", e.PatternKeys())
	}
}

// 100 000 open keys fit in the documented bytes per key.
func TestPatternKeysMemory(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("m.yaml", []byte(absenceRules))
	if err != nil {
		t.Fatal(err)
	}
	const keys = 100_000
	evs := make([]*events.ValidationEvent, keys)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = validation(events.ValidationStarted, "checkout", events.NewID()) // a 36-byte UUID
		evs[i].Timestamp = t0
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := alerting.NewEngine(cfg.Rules)
	for _, ev := range evs {
		e.Observe(ev, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if e.PatternKeys() != keys {
		t.Fatalf("%d keys", e.PatternKeys())
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / keys
	t.Logf("%.0f bytes per open key", per)
	if per > alerting.PatternKeyBytes {
		t.Fatalf("%.0f bytes per open key, documented %d", per, alerting.PatternKeyBytes)
	}
	runtime.KeepAlive(e)
	runtime.KeepAlive(evs)
}

// A restarted instance carries on with the open keys it saved: a key
// opened before the restart fires at its deadline after it.
func TestAbsenceKeysSurviveRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := alerting.NewMemoryStore()
		cfg, err := alerting.ParseEmbedded("r.yaml", []byte(absenceRules))
		if err != nil {
			t.Fatal(err)
		}
		run := func(snk *sink, rec *recorder) (stop func()) {
			svc, err := alerting.New(alerting.Options{
				Config: cfg, Store: store, Alerts: snk, Instance: "i", Logger: testLogger(t),
				Notify: map[string]alerting.NotifyFunc{"r": rec.notify},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = svc.Run(ctx); close(done) }()
			synctest.Wait()
			if err := svc.Observe(ctx, validation(events.ValidationStarted, "checkout", "ctx-open")); err != nil {
				t.Fatal(err)
			}
			return func() { cancel(); <-done }
		}
		t0 := time.Now()
		first := &sink{}
		stop := run(first, &recorder{})
		time.Sleep(10 * time.Second)
		stop() // saves the open key
		second, rec := &sink{}, &recorder{}
		// The second instance sees a repeat of the start (a redelivery),
		// which must not move the deadline.
		stop = run(second, rec)
		defer stop()
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got, want := second.transitions("context_id", t0), []string{"ctx-open:inactive>firing@30"}; !slices.Equal(got, want) {
			t.Fatalf("transitions after restart %v, want %v", got, want)
		}
		if rec.count() != 1 {
			t.Fatalf("%d notifications", rec.count())
		}
	})
}

// A ratio rule at max_keys evicts the series idle longest.
func TestRatioKeyLimitEvictsIdlest(t *testing.T) {
	cfg, err := alerting.ParseEmbedded("k.yaml", []byte(strings.Replace(ratioRules, "min_count: 4", "min_count: 4\n    max_keys: 2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e := alerting.NewEngine(cfg.Rules)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, src := range []string{"a", "b", "a", "c"} {
		ev := validation(events.ValidationStarted, src, "x")
		ev.Timestamp = t0.Add(time.Duration(i) * time.Second)
		e.Observe(ev, ev.Timestamp)
	}
	var snap struct {
		Rules map[string]struct {
			Ratios []struct {
				Key string `json:"k"`
			} `json:"ratios"`
			Evicted int `json:"evicted"`
		} `json:"rules"`
	}
	data, err := e.SnapshotPatterns()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}
	st := snap.Rules["ValidationFailureRatio"]
	var keys []string
	for _, r := range st.Ratios {
		keys = append(keys, r.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "c"}) || st.Evicted != 1 || e.PatternEvictions()["ValidationFailureRatio"] != 1 {
		t.Fatalf("kept %v, evicted %d; want [a c] and 1 (b was idle longest)", keys, st.Evicted)
	}
}
