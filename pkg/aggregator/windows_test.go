package aggregator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/aggregator"
	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/streams"
)

// Each window is stored on PERFORMANCE and, under its series' subject, on
// WINDOWS; the JSON API names the series as the wire format does.
func TestWindowsStoredPerSeriesAndNamedAsOnTheWire(t *testing.T) {
	bus, svc := startService(t, aggregator.Options{Window: time.Second, Lateness: 100 * time.Millisecond, FromBeginning: true})
	now := time.Now()
	var evs []events.Event
	for i := range 5 {
		ev := events.NewPerformanceEvent(events.OperationComplete, "api-src")
		ev.Operation, ev.DurationMS, ev.Timestamp = "get.user", float64(10+i), now
		evs = append(evs, ev)
	}
	m := events.NewPerformanceEvent(events.MetricRecorded, "api-src")
	m.Metric, m.Value, m.Timestamp = "queue_depth", 7, now
	evs = append(evs, m)
	for _, err := range bus.PublishStored(t.Context(), evs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	js := bus.JetStream()
	count := func(subject string) uint64 {
		st, err := js.Stream(t.Context(), streams.Windows)
		if err != nil {
			return 0
		}
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0
		}
		return info.State.Subjects[subject]
	}
	opSubject := streams.WindowSubject(events.OperationComplete, "api-src", "get.user")
	testutil.WaitFor(t, 20*time.Second, func() bool {
		return count(opSubject) == 1 && count(streams.WindowSubject(events.MetricRecorded, "api-src", "queue_depth")) == 1
	}, "each window on WINDOWS under its series' subject")

	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, q := range []string{"operation=get.user", "name=get.user"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/windows?source=api-src&"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var raw []map[string]any
		err = json.NewDecoder(resp.Body).Decode(&raw)
		_ = resp.Body.Close()
		if err != nil || len(raw) != 1 {
			t.Fatalf("%s: %v %v", q, err, raw)
		}
		if raw[0]["operation"] != "get.user" || raw[0]["count"] != 5.0 {
			t.Errorf("%s: %v", q, raw[0])
		}
		if _, ok := raw[0]["name"]; ok {
			t.Errorf("%s: the API still says name: %v", q, raw[0])
		}
	}
}
