package console

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/history"
	"github.com/jetmon/jetmon/streams"
)

// LiveWindow is a window as the live stream sends it (without its sketch).
type LiveWindow struct {
	Source     string    `json:"source"`
	Type       string    `json:"type"`
	Operation  string    `json:"operation"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Count      uint64    `json:"count"`
	ErrorCount uint64    `json:"error_count"`
	Avg        float64   `json:"avg"`
	P50        float64   `json:"p50"`
	P95        float64   `json:"p95"`
	P99        float64   `json:"p99"`
	Max        float64   `json:"max"`
}

// liveWriteTimeout bounds one write to a live client: one that reads
// nothing for this long is cut off.
const liveWriteTimeout = 10 * time.Second

type liveMsg struct {
	kind string
	data []byte
}

// live streams windows (event "window"), alert transitions (event "alert")
// and component and system statuses (event "health") as server-sent events
// as they are published. ?source=, and with it
// ?type= and ?operation=, narrow the windows to a source or one series (a
// subject filter on the server). A client that falls LiveBuffer updates
// behind is cut off (event "overflow" first); every stream ends after
// LiveMaxAge, and at [Console.Close].
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, vs := range q {
		if (k != "source" && k != "type" && k != "operation") || len(vs) > 1 || len(vs[0]) > 256 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "live takes source, type and operation, each once, at most 256 bytes"})
			return
		}
	}
	if !c.track() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "console closing"})
		return
	}
	defer c.wg.Done()
	select {
	case c.liveSlots <- struct{}{}:
		defer func() { <-c.liveSlots }()
	default:
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many live clients"})
		return
	}

	subject := streams.WindowsPrefix + ">"
	switch src := q.Get("source"); {
	case src != "" && q.Get("type") != "" && q.Get("operation") != "":
		subject = streams.WindowSubject(events.Type(q.Get("type")), src, q.Get("operation"))
	case src != "":
		subject = streams.WindowsPrefix + events.SubjectToken(src) + ".*"
	}
	ch := make(chan liveMsg, c.o.LiveBuffer)
	overflow := make(chan struct{})
	var once sync.Once
	push := func(m liveMsg) {
		select {
		case ch <- m:
		default:
			once.Do(func() { close(overflow) })
		}
	}
	nc := c.o.Bus.Conn()
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, sub := range []struct {
		subject string
		kind    string
	}{{subject, "window"}, {"alerts.>", "alert"}, {"health.component.>", "health"}, {"health.system.status.*", "health"}} {
		s, err := nc.Subscribe(sub.subject, func(m *nats.Msg) { push(liveMsg{sub.kind, m.Data}) })
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		subs = append(subs, s)
	}
	if err := nc.FlushTimeout(2 * time.Second); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	// A write deadline per event cuts off a client that stops reading
	// (the server has no WriteTimeout: it would end every stream).
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if !write([]byte(": live\nretry: 1000\n\n")) {
		return
	}

	maxAge := time.NewTimer(c.o.LiveMaxAge)
	defer maxAge.Stop()
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-maxAge.C:
			return
		case <-overflow:
			c.cutoffs.Inc()
			write([]byte("event: overflow\ndata: {}\n\n"))
			return
		case <-beat.C:
			if !write([]byte(": beat\n\n")) {
				return
			}
		case m := <-ch:
			data := m.data
			switch m.kind {
			case "window":
				data = liveWindow(m.data)
			case "health":
				data = liveHealth(m.data)
			default:
				if !json.Valid(data) {
					data = nil
				}
			}
			if data == nil {
				continue
			}
			buf := make([]byte, 0, len(data)+32)
			buf = append(append(append(append(buf, "event: "...), m.kind...), "\ndata: "...), data...)
			buf = append(buf, "\n\n"...)
			if !write(buf) {
				return
			}
		}
	}
}

// liveWindow returns the JSON of the window in data without its sketch, or
// nil.
func liveWindow(data []byte) []byte {
	ev, _ := events.Decode(data)
	a, ok := ev.(*events.AggregateEvent)
	if !ok {
		return nil
	}
	out, err := json.Marshal(LiveWindow{
		Source: a.Source, Type: string(a.AggregatedType), Operation: a.Name(), Start: a.WindowStart.UTC(), End: a.WindowEnd.UTC(),
		Count: a.Count, ErrorCount: a.ErrorCount, Avg: a.Avg, P50: a.P50, P95: a.P95, P99: a.P99, Max: a.Max,
	})
	if err != nil {
		return nil
	}
	return out
}

// liveHealth returns the health events in data (one or a batch) as one
// JSON array of [history.HealthPoint], or nil.
func liveHealth(data []byte) []byte {
	evs, _ := events.DecodeBatch(data)
	var out []history.HealthPoint
	for _, ev := range evs {
		if h, ok := ev.(*events.HealthEvent); ok {
			out = append(out, history.HealthPoint{At: h.Timestamp.UTC(), Type: string(h.Type), Source: h.Source, Component: h.Component, Status: h.Status, Message: h.Message})
		}
	}
	if len(out) == 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}
