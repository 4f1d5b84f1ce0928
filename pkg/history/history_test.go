package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/jetmon/jetmon/internal/natstest"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/events/jsbus"
	"github.com/jetmon/jetmon/pkg/history"
	"github.com/jetmon/jetmon/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// window builds the stored window of values, as the aggregator would, with
// its own DDSketch (1% relative accuracy).
func window(t testing.TB, source, op string, start time.Time, step time.Duration, values []float64, errs uint64) *events.AggregateEvent {
	w := events.NewAggregateEvent(events.OperationComplete, source, op, start, start.Add(step))
	sk, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		_ = sk.Add(v)
		w.Sum += v
		if i == 0 || v < w.Min {
			w.Min = v
		}
		if i == 0 || v > w.Max {
			w.Max = v
		}
	}
	w.Count, w.ErrorCount = uint64(len(values)), errs
	if w.Count > 0 {
		w.Avg = w.Sum / float64(w.Count)
		qs, _ := sk.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.95, 0.99})
		w.P50, w.P90, w.P95, w.P99 = qs[0], qs[1], qs[2], qs[3]
	}
	sk.Encode(&w.Sketch, false)
	return w
}

// store publishes windows to WINDOWS under their series' subject and waits
// for every ack.
func store(t testing.TB, js jetstream.JetStream, ws []*events.AggregateEvent) {
	t.Helper()
	var futs []jetstream.PubAckFuture
	for _, w := range ws {
		m, err := jsbus.NewMsg(w)
		if err != nil {
			t.Fatal(err)
		}
		m.Subject = streams.WindowSubject(w.AggregatedType, w.Source, w.Name())
		f, err := js.PublishMsgAsync(m)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			<-js.PublishAsyncComplete()
			f, err = js.PublishMsgAsync(m)
		}
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == 2000 {
			waitAll(t, futs)
			futs = futs[:0]
		}
	}
	waitAll(t, futs)
}

func waitAll(t testing.TB, futs []jetstream.PubAckFuture) {
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no ack within 10s")
		}
	}
}

func setup(t testing.TB) (*history.Reader, jetstream.JetStream) {
	srv := natstest.Start(t)
	bus := natstest.Connect(t, srv.ClientURL())
	o := history.DefaultOptions()
	o.Grace = 48 * time.Hour // the windows are stored now, for times in the past
	r, err := history.New(bus.JetStream(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r, bus.JetStream()
}

// exactQuantile is the value at rank q*(n-1) of the sorted values, the
// rank DDSketch estimates.
func exactQuantile(sorted []float64, q float64) float64 {
	return sorted[int(q*float64(len(sorted)-1))]
}

func TestWindowsRebucketMergesSketches(t *testing.T) {
	r, js := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	const win, n = 10 * time.Second, 36 // 6 minutes of windows
	raw := make([][]float64, n)
	var ws []*events.AggregateEvent
	for i := range n {
		for range 20 + rng.IntN(50) {
			raw[i] = append(raw[i], math.Exp(rng.NormFloat64()*1.5+3))
		}
		ws = append(ws, window(t, "checkout", "db.query", base.Add(time.Duration(i)*win), win, raw[i], uint64(i%3)))
		// Another series of the same source and one of another source:
		// neither may show up in the answer.
		ws = append(ws, window(t, "checkout", "db.other", base.Add(time.Duration(i)*win), win, []float64{1e6}, 0))
		ws = append(ws, window(t, "billing", "db.query", base.Add(time.Duration(i)*win), win, []float64{2e6}, 0))
	}
	store(t, js, ws)
	// The same window stored twice (a publish outside the dedup window)
	// counts once.
	dup, _ := jsbus.NewMsg(ws[1])
	dup.Subject, dup.Header = streams.WindowSubject(ws[1].AggregatedType, ws[1].Source, ws[1].Name()), nil
	if _, err := js.PublishMsg(t.Context(), dup); err != nil {
		t.Fatal(err)
	}

	from, to, step := base.Add(win), base.Add(34*win), time.Minute
	res, err := r.Windows(t.Context(), history.WindowQuery{
		Source: "checkout", Type: string(events.OperationComplete), Operation: "db.query", From: from, To: to, Step: step,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 1 || res.Series[0].Operation != "db.query" || res.Series[0].Source != "checkout" {
		t.Fatalf("series: %+v", res.Series)
	}
	if res.Scanned != n {
		t.Errorf("scanned %d stored windows, want the series' %d: the subject filter reads no other series", res.Scanned, n)
	}
	// The oracle: the raw values of each bucket.
	type bucket struct {
		values  []float64
		errs    uint64
		windows int
	}
	want := map[time.Time]*bucket{}
	for i := 1; i < 34; i++ {
		ws := base.Add(time.Duration(i) * win)
		k := from.Add(ws.Sub(from) / step * step)
		if want[k] == nil {
			want[k] = &bucket{}
		}
		want[k].values = append(want[k].values, raw[i]...)
		want[k].errs += uint64(i % 3)
		want[k].windows++
	}
	pts := res.Series[0].Points
	if len(pts) != len(want) {
		t.Fatalf("%d points, want %d", len(pts), len(want))
	}
	for _, p := range pts {
		b := want[p.Start]
		if b == nil {
			t.Fatalf("point at %s: no such bucket", p.Start)
		}
		if !p.End.Equal(p.Start.Add(step)) {
			t.Errorf("point %s ends %s", p.Start, p.End)
		}
		slices.Sort(b.values)
		if p.Count != uint64(len(b.values)) || p.ErrorCount != b.errs || p.Windows != b.windows {
			t.Errorf("point %s: count %d errors %d windows %d, want %d %d %d", p.Start, p.Count, p.ErrorCount, p.Windows, len(b.values), b.errs, b.windows)
		}
		if p.Min != b.values[0] || p.Max != b.values[len(b.values)-1] {
			t.Errorf("point %s: min %v max %v, want %v %v", p.Start, p.Min, p.Max, b.values[0], b.values[len(b.values)-1])
		}
		for _, c := range []struct {
			q   float64
			got float64
		}{{0.5, p.P50}, {0.95, p.P95}, {0.99, p.P99}} {
			exact := exactQuantile(b.values, c.q)
			if math.Abs(c.got-exact) > 0.01*exact+1e-9 {
				t.Errorf("point %s: p%v = %v, exact %v: beyond the sketch's 1%% bound", p.Start, c.q*100, c.got, exact)
			}
		}
	}

	// Without a step every stored window comes back as it is.
	res, err = r.Windows(t.Context(), history.WindowQuery{Source: "checkout", From: base, To: base.Add(n * win)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 2 || len(res.Series[0].Points) != n || len(res.Series[1].Points) != n {
		t.Fatalf("source filter: %d series", len(res.Series))
	}
	if p := res.Series[1].Points[0]; p.Count != uint64(len(raw[0])) || p.Windows != 1 || res.Series[1].Operation != "db.query" {
		t.Errorf("the window stored twice: %+v", p)
	}
	// A filter by operation alone spans sources.
	res, err = r.Windows(t.Context(), history.WindowQuery{Operation: "db.query", From: base, To: base.Add(n * win), Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 2 || res.Series[0].Source != "billing" || res.Series[0].Points[0].Count != n {
		t.Fatalf("operation filter: %+v", res.Series)
	}
}

func TestQueriesAreBounded(t *testing.T) {
	r, js := setup(t)
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var ws []*events.AggregateEvent
	for i := range 50 {
		ws = append(ws, window(t, fmt.Sprintf("s%d", i%5), "op", base.Add(time.Duration(i)*time.Second), time.Second, []float64{1}, 0))
	}
	store(t, js, ws)
	o := r.Options()
	o.MaxScan = 20
	small, err := history.New(js, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Windows(t.Context(), history.WindowQuery{From: base, To: base.Add(time.Hour)}); !errors.Is(err, history.ErrTooMuch) {
		t.Errorf("reading 50 windows with MaxScan 20: %v, want ErrTooMuch", err)
	}
	if res, err := small.Windows(t.Context(), history.WindowQuery{Source: "s1", From: base, To: base.Add(time.Hour)}); err != nil || res.Scanned != 10 {
		t.Fatalf("one source's 10 windows with MaxScan 20: %v %+v", err, res)
	}
	o.MaxPoints = 5
	pts, _ := history.New(js, o)
	if _, err := pts.Windows(t.Context(), history.WindowQuery{Source: "s1", From: base, To: base.Add(time.Hour)}); !errors.Is(err, history.ErrBadQuery) {
		t.Errorf("10 windows of a series without a step, MaxPoints 5: %v, want ErrBadQuery", err)
	}
	if res, err := pts.Windows(t.Context(), history.WindowQuery{Source: "s1", From: base, To: base.Add(time.Hour), Step: 20 * time.Minute}); err != nil || res.Series[0].Points[0].Count != 10 {
		t.Errorf("the same with a step: %v", err)
	}
	o.MaxPoints = 2000
	o.MaxScan, o.MaxSeries = 1000, 2
	few, _ := history.New(js, o)
	if res, err := few.Windows(t.Context(), history.WindowQuery{From: base, To: base.Add(time.Hour)}); err != nil || len(res.Series) != 2 || res.SeriesOmitted != 3 {
		t.Errorf("MaxSeries 2 of 5: %v %d series, %d omitted", err, len(res.Series), res.SeriesOmitted)
	}
}

// Every hostile query is refused with 400 and a reason, before any read.
func TestHTTPRefusesHostileQueries(t *testing.T) {
	r, _ := setup(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(handler(r, now))
	defer srv.Close()
	for name, c := range map[string]struct {
		query string
		code  int
		want  string
	}{
		"from after to":         {"from=now-1h&to=now-2h", 400, "must be after"},
		"step zero ok":          {"from=now-1h&step=0", 200, ""},
		"step tiny, huge range": {"from=now-720h&step=1s", 400, "coarser step"},
		"step below 1s":         {"from=now-1h&step=1ms", 400, "shorter than 1s"},
		"negative step":         {"step=-5s", 400, "negative"},
		"range too long":        {"from=0&to=now", 400, "longer than"},
		"repeated":              {"source=a&source=b", 400, "given 2 times"},
		"unknown":               {"sauce=a", 400, "unknown parameter"},
		"garbage time":          {"from=yesterday", 400, "want an RFC 3339"},
		"huge number":           {"from=1e300", 400, "want an RFC 3339"},
		"NaN":                   {"to=NaN", 400, "want an RFC 3339"},
		"huge name":             {"source=" + strings.Repeat("x", 5000), 400, "longer than 256"},
		"forged subject":        {"source=a.>&type=x&operation=y", 200, ""},
		"good":                  {"from=2026-11-30T23:00:00Z&to=2026-12-01T00:00:00Z&step=5m", 200, ""},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, srv.URL+"/api/v1/history/windows?"+c.query)
			if code != c.code || !strings.Contains(body, c.want) {
				t.Errorf("%s: %d %s, want %d containing %q", c.query, code, body, c.code, c.want)
			}
		})
	}
	for _, path := range []string{"health?limit=0", "health?limit=99999", "alerts?limit=-1", "alerts?from=now-2h&to=now-3h", "health?component=" + url.QueryEscape(strings.Repeat("c", 300))} {
		if code, body := get(t, srv.URL+"/api/v1/history/"+path); code != 400 {
			t.Errorf("%s: %d %s, want 400", path, code, body)
		}
	}
}

func handler(r *history.Reader, now time.Time) http.Handler {
	mux := http.NewServeMux()
	history.NewHandler(r, history.HTTPOptions{Now: func() time.Time { return now }}).Mount(mux)
	return mux
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	var v json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&v)
	b.Write(v)
	return resp.StatusCode, b.String()
}

func TestHealthAndAlertHistory(t *testing.T) {
	r, js := setup(t)
	ctx := t.Context()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var msgs []*nats.Msg
	for i, st := range []events.Type{events.ComponentHealthy, events.ComponentDegraded, events.ComponentFailed, events.ComponentHealthy} {
		for _, comp := range []string{"db", "cache"} {
			h := events.NewHealthEvent(st, "agent", comp)
			h.ID = fmt.Sprintf("h-%d-%s", i, comp)
			h.Timestamp = base.Add(time.Duration(i) * time.Minute)
			m, err := jsbus.NewMsg(h)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
	}
	for _, m := range msgs {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Health(ctx, history.HealthQuery{Component: "db", From: base.Add(-time.Minute), To: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Events {
		got = append(got, e.Component+":"+e.Status)
	}
	if want := []string{"db:healthy", "db:degraded", "db:failed", "db:healthy"}; !slices.Equal(got, want) {
		t.Errorf("db history %v, want %v", got, want)
	}
	res, err = r.Health(ctx, history.HealthQuery{From: base.Add(-time.Minute), To: time.Now().Add(time.Minute), Limit: 3})
	if err != nil || len(res.Events) != 3 || res.Omitted != 5 || res.Events[2].Status != "healthy" || res.Events[0].Status != "failed" {
		t.Errorf("limit 3 keeps the newest: %v %+v", err, res)
	}
	rec := `{"id":"t1","from":"pending","to":"firing","at":"` + base.Format(time.RFC3339) + `","alert":{"fingerprint":"f","rule":"Slow","labels":{"x":"<b>"},"state":"firing"}}`
	if _, err := js.Publish(ctx, "alerts.firing.Slow", []byte(rec)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "alerts.firing.Other", []byte(strings.Replace(rec, "Slow", "Other", 1))); err != nil {
		t.Fatal(err)
	}
	ar, err := r.Alerts(ctx, history.AlertQuery{Rule: "Slow", From: base.Add(-time.Minute), To: time.Now().Add(time.Minute)})
	if err != nil || len(ar.Transitions) != 1 || ar.Transitions[0].Alert.Rule != "Slow" || ar.Transitions[0].To != "firing" {
		t.Errorf("alert history: %v %+v", err, ar)
	}
	_ = context.Background
}

// The slowest trace ids of the windows survive into the answer: a stored
// window keeps its own, a re-bucketed point those of its windows with the
// larger Max first, without repeats, at most aggregate.SlowestTraces.
func TestWindowsCarrySlowestTraceIDs(t *testing.T) {
	r, js := setup(t)
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ids := make([]events.TraceID, 5)
	for i := range ids {
		ids[i] = events.NewTraceID()
	}
	// Four windows of one minute; window i's slowest value is maxes[i].
	maxes := []float64{20, 80, 50, 10}
	lists := [][]events.TraceID{{ids[0]}, {ids[1], ids[2]}, {ids[3], ids[1]}, {ids[4]}}
	var ws []*events.AggregateEvent
	for i, m := range maxes {
		w := window(t, "checkout", "db.query", base.Add(time.Duration(i)*15*time.Second), 15*time.Second, []float64{1, m}, 0)
		w.SlowestTraceIDs = lists[i]
		ws = append(ws, w)
	}
	store(t, js, ws)
	q := history.WindowQuery{Source: "checkout", Type: string(events.OperationComplete), Operation: "db.query", From: base, To: base.Add(time.Minute)}
	for _, c := range []struct {
		name string
		step time.Duration
		want [][]events.TraceID
	}{
		{"stored windows", 0, lists},
		// Max 80 (ids 1, 2), then 50 (3; 1 again is not repeated): three.
		{"one bucket", time.Minute, [][]events.TraceID{{ids[1], ids[2], ids[3]}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q.Step = c.step
			res, err := r.Windows(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Series) != 1 || len(res.Series[0].Points) != len(c.want) {
				t.Fatalf("series: %+v", res.Series)
			}
			for i, p := range res.Series[0].Points {
				var want []string
				for _, id := range c.want[i] {
					want = append(want, id.String())
				}
				if !slices.Equal(p.SlowestTraceIDs, want) {
					t.Errorf("point %d: slowest_trace_ids %v, want %v", i, p.SlowestTraceIDs, want)
				}
			}
		})
	}
}
