package windowing_test

import (
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/windowing"
)

// TestWindowIDsIgnoreInputAmendmentsDoNot: a first window's id is its series
// and start whatever input it holds (a window recomputed after a crash from
// part of its input is deduplicated by the server); an amendment's id adds
// the lowest sequence of its input.
func TestWindowIDsIgnoreInputAmendmentsDoNot(t *testing.T) {
	run := func(seqs ...uint64) *events.AggregateEvent {
		a := windowing.New(windowing.Options{Window: 10 * time.Second})
		for i, seq := range seqs {
			if r := a.AggregateInput(op("svc", "q", t0.Add(time.Duration(i)*time.Second), 1, false), time.Time{}, seq); r.Outcome != windowing.Added {
				t.Fatalf("outcome %v", r.Outcome)
			}
		}
		ws := a.Flush()
		if len(ws) != 1 {
			t.Fatalf("%d windows", len(ws))
		}
		return ws[0]
	}
	whole, part := run(7, 9, 8), run(9)
	if key := events.AggregateID(events.OperationComplete, "svc", "q", t0); whole.ID != key || part.ID != key || whole.SeriesWindowKey() != key {
		t.Errorf("first windows of other input: ids %s and %s, want %s", whole.ID, part.ID, key)
	}
	if a, b := events.WindowID(events.OperationComplete, "svc", "q", t0, 7), events.WindowID(events.OperationComplete, "svc", "q", t0, 8); a == b || a == whole.ID {
		t.Errorf("amendment ids %s and %s (first window %s)", a, b, whole.ID)
	}
}

// TestAmendLate: with AmendLate an event for an emitted window goes out in
// an amendment of its own id at the next collection, and the windows of a
// series and start sum to every event added.
func TestAmendLate(t *testing.T) {
	a := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: time.Second, AmendLate: true})
	for i := range 5 {
		a.AggregateInput(op("svc", "q", t0.Add(time.Duration(i)*time.Second), float64(10+i), false), time.Time{}, uint64(1+i))
	}
	a.AggregateInput(op("svc", "q", t0.Add(12*time.Second), 1, false), time.Time{}, 6) // closes [0, 10)
	closed := a.Closed()
	if len(closed) != 1 || closed[0].Count != 5 || closed[0].Amendment {
		t.Fatalf("closed %+v", closed)
	}
	// Two late events in two messages, one failed, and one from a message
	// already seen (a lower sequence).
	r := a.AggregateInput(op("svc", "q", t0.Add(3*time.Second), 100, true), time.Time{}, 9)
	if r.Outcome != windowing.Amended || !r.WindowStart.Equal(t0) || r.Series.Source != "svc" || r.Series.Name != "q" {
		t.Fatalf("late event: %+v", r)
	}
	a.AggregateInput(op("svc", "q", t0.Add(4*time.Second), 2, false), time.Time{}, 8)
	am := a.Closed()
	if len(am) != 1 {
		t.Fatalf("collected %d windows, want the amendment", len(am))
	}
	w := am[0]
	if !w.Amendment || w.Count != 2 || w.ErrorCount != 1 || w.Min != 2 || w.Max != 100 || !w.WindowStart.Equal(t0) {
		t.Errorf("amendment %+v", w)
	}
	if w.ID == closed[0].ID || w.ID != events.WindowID(events.OperationComplete, "svc", "q", t0, 8) {
		t.Errorf("amendment id %s (first window %s)", w.ID, closed[0].ID)
	}
	if err := w.Validate(); err != nil {
		t.Errorf("amendment invalid: %v", err)
	}
	if merged, err := windowing.Merge([]*events.AggregateEvent{closed[0], w}); err != nil || merged.Count != 7 || merged.Max != 100 {
		t.Errorf("merged %+v, %v", merged, err)
	}
	if again := a.Closed(); len(again) != 0 {
		t.Errorf("the amendment was collected twice: %+v", again)
	}
	// A late event waiting at Flush goes out with the open windows.
	a.AggregateInput(op("svc", "q", t0.Add(5*time.Second), 3, false), time.Time{}, 10)
	rest := a.Flush()
	var amended, open uint64
	for _, w := range rest {
		if w.Amendment {
			amended += w.Count
		} else {
			open += w.Count
		}
	}
	if amended != 1 || open != 1 {
		t.Errorf("flush: %d amended and %d open events, want 1 and 1", amended, open)
	}
	if st := a.Stats(); st.Amended != 3 || st.Late != 0 || st.Added != 6 {
		t.Errorf("stats %+v", st)
	}
}

// TestAmendmentsWithoutSequencesAreNumbered: amendments of input without
// sequence numbers still get ids of their own.
func TestAmendmentsWithoutSequencesAreNumbered(t *testing.T) {
	a := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: time.Second, AmendLate: true})
	a.Add(op("svc", "q", t0, 1, false))
	a.Add(op("svc", "q", t0.Add(20*time.Second), 1, false))
	ids := map[string]bool{}
	for _, w := range a.Closed() {
		ids[w.ID] = true
	}
	for range 2 {
		if out := a.Add(op("svc", "q", t0.Add(time.Second), 1, false)); out != windowing.Amended {
			t.Fatalf("outcome %v", out)
		}
		for _, w := range a.Closed() {
			if ids[w.ID] {
				t.Errorf("amendment id %s used before", w.ID)
			}
			ids[w.ID] = true
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct ids, want 3", len(ids))
	}
}

// TestAdoptTakesOverWhatWasEmitted: after Adopt, events for windows the
// previous owner emitted go to amendments, an open window among them becomes
// one, later windows stay ordinary, and the source is not forgotten by a
// sweep before SeriesTTL.
func TestAdoptTakesOverWhatWasEmitted(t *testing.T) {
	now := t0.Add(time.Hour)
	prev := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: time.Second, AmendLate: true, Now: func() time.Time { return now }})
	prev.Add(op("svc", "q", t0, 1, false))
	prev.Add(op("svc", "q", t0.Add(25*time.Second), 1, false))
	if got := prev.Closed(); len(got) != 1 {
		t.Fatalf("previous owner closed %d windows", len(got))
	}
	through := prev.ClosedThrough()
	// The watermark (25 s) less lateness and window: every window starting
	// at or before 14 s is closed, the one at 10 s included.
	if !through["svc"].Equal(t0.Add(14*time.Second)) || len(through) != 1 {
		t.Fatalf("closed through %v, want svc through %v", through, t0.Add(14*time.Second))
	}

	next := windowing.New(windowing.Options{Window: 10 * time.Second, Lateness: time.Second, AmendLate: true, Now: func() time.Time { return now }})
	// An event the next owner counted before it heard of the previous one.
	next.AggregateInput(op("svc", "q", t0.Add(2*time.Second), 5, false), time.Time{}, 40)
	if moved := next.Adopt("svc", through["svc"]); moved != 1 {
		t.Fatalf("Adopt moved %d open windows to amendments, want 1", moved)
	}
	if moved := next.Adopt("svc", through["svc"]); moved != 0 {
		t.Errorf("adopting the same again moved %d", moved)
	}
	next.Adopt("quiet", t0.Add(10*time.Second)) // a source with no event here yet
	next.Sweep(now.Add(time.Minute))
	if r := next.AggregateInput(op("quiet", "q", t0.Add(3*time.Second), 1, false), time.Time{}, 41); r.Outcome != windowing.Amended {
		t.Errorf("an event of an adopted source after a sweep: %v, want Amended", r.Outcome)
	}
	if r := next.AggregateInput(op("svc", "q", t0.Add(12*time.Second), 1, false), time.Time{}, 42); r.Outcome != windowing.Amended {
		t.Errorf("an event for a window the previous owner emitted: %v, want Amended", r.Outcome)
	}
	if r := next.AggregateInput(op("svc", "q", t0.Add(21*time.Second), 1, false), time.Time{}, 43); r.Outcome != windowing.Added {
		t.Errorf("an event for a later window: %v, want Added", r.Outcome)
	}
	got := map[string]*events.AggregateEvent{}
	for _, w := range next.Closed() {
		got[w.ID] = w
	}
	want := map[string]uint64{
		events.WindowID(events.OperationComplete, "svc", "q", t0, 40):                     1,
		events.WindowID(events.OperationComplete, "svc", "q", t0.Add(10*time.Second), 42): 1,
		events.WindowID(events.OperationComplete, "quiet", "q", t0, 41):                   1,
	}
	if len(got) != len(want) {
		t.Fatalf("collected %d windows, want %d amendments: %v", len(got), len(want), got)
	}
	for id, n := range want {
		if w := got[id]; w == nil || !w.Amendment || w.Count != n {
			t.Errorf("amendment %s: %+v", id, w)
		}
	}
	if st := next.Stats(); st.OpenWindows != 1 {
		t.Errorf("open windows %d, want the later one", st.OpenWindows)
	}
}
