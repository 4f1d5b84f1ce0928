package tracing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetmon/jetmon/pkg/events"
	"github.com/jetmon/jetmon/pkg/otlp"
	"github.com/jetmon/jetmon/pkg/trace"
)

// Query selects traces in [Service.Search]. Zero fields select everything.
type Query struct {
	Service, Operation string
	// ContextID selects traces with an event of this context_id (a
	// validation run, a unit of work).
	ContextID   string
	MinDuration time.Duration
	ErrorsOnly  bool
	// From and To bound the time the trace was stored (last touched); the
	// default range is the last hour.
	From, To time.Time
	// Limit bounds the results (default 20, at most 1000).
	Limit int
}

// MaxScan bounds the stored traces one search reads.
const MaxScan = 20_000

// Search returns the summaries of stored traces matching q, in the order
// they were stored, reading at most [MaxScan] of them from q.From on.
func (s *Service) Search(ctx context.Context, q Query) ([]trace.Summary, error) {
	if q.To.IsZero() {
		q.To = s.now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	if q.Limit <= 0 {
		q.Limit = 20
	}
	q.Limit = min(q.Limit, 1000)
	cons, err := s.js.OrderedConsumer(ctx, Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectPrefix + ">"}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &q.From,
	})
	if err != nil {
		return nil, fmt.Errorf("traces: search: %w", err)
	}
	out := []trace.Summary{}
	for scanned := 0; scanned < MaxScan && len(out) < q.Limit; {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("traces: search: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			scanned++
			md, err := msg.Metadata()
			if err != nil || md.Timestamp.After(q.To) {
				continue
			}
			id, spans, _, err := trace.Decode(msg.Data())
			if err != nil {
				continue
			}
			t := trace.Build(id, spans)
			if match(t, q) && len(out) < q.Limit {
				out = append(out, t.Summary())
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("traces: search: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func match(t *trace.Tree, q Query) bool {
	if q.ErrorsOnly && t.Errors == 0 {
		return false
	}
	if q.MinDuration > 0 && t.EndNS-t.StartNS < q.MinDuration.Nanoseconds() {
		return false
	}
	if q.ContextID != "" && !slices.ContainsFunc(t.Nodes, func(n trace.Node) bool { return n.ContextID == q.ContextID }) {
		return false
	}
	if q.Service == "" && q.Operation == "" {
		return true
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if (q.Service == "" || n.Service == q.Service) && (q.Operation == "" || n.Name == q.Operation) {
			return true
		}
	}
	return false
}

// Mount registers the trace API on mux (shapes in docs/traces.md):
//
//	GET /api/v1/traces?service=&operation=&context_id=&min_duration_ms=&errors=true&from=&to=&limit=
//	GET /api/v1/traces/{id}                 one trace: spans, critical path
//	GET /api/v1/traces/{id}?format=otlp     the trace as OTLP/JSON
//	GET /api/v1/dependencies?from=&to=&format=dot
//	GET /api/v1/bottlenecks?from=&to=&limit=
//
// from and to are RFC 3339 times (default: the last hour). Bad parameters
// get 400 naming the parameter.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		q, err := s.parseQuery(r)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		res, err := s.Search(r.Context(), q)
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"traces": res})
	})
	mux.HandleFunc("GET /api/v1/traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := events.ParseTraceID(r.PathValue("id"))
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("trace id %.64q: must be 32 lowercase hex digits", r.PathValue("id")))
			return
		}
		t, err := s.Get(r.Context(), id)
		if errors.Is(err, trace.ErrNotFound) {
			writeErr(w, http.StatusNotFound, fmt.Errorf("trace %s: %w", id, err))
			return
		}
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err)
			return
		}
		switch f := r.URL.Query().Get("format"); f {
		case "", "json":
			writeJSON(w, http.StatusOK, t.View())
		case "otlp":
			writeJSON(w, http.StatusOK, otlp.Export(t))
		default:
			writeErr(w, http.StatusBadRequest, fmt.Errorf("format %.32q: must be json or otlp", f))
		}
	})
	mux.HandleFunc("GET /api/v1/dependencies", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := s.parseRange(r)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		deps := s.analyzer.Dependencies(from, to)
		switch f := r.URL.Query().Get("format"); f {
		case "", "json":
			writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "edges": deps})
		case "dot":
			w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
			_, _ = w.Write([]byte(trace.DOT(deps)))
		default:
			writeErr(w, http.StatusBadRequest, fmt.Errorf("format %.32q: must be json or dot", f))
		}
	})
	mux.HandleFunc("GET /api/v1/bottlenecks", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := s.parseRange(r)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		limit, err := intParam(r, "limit", 10, 1000)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "operations": s.analyzer.Bottlenecks(from, to, limit)})
	})
}

func (s *Service) parseRange(r *http.Request) (from, to time.Time, err error) {
	to = s.now()
	if v := r.URL.Query().Get("to"); v != "" {
		if to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return from, to, fmt.Errorf("to %.64q: must be an RFC 3339 time", v)
		}
	}
	from = to.Add(-time.Hour)
	if v := r.URL.Query().Get("from"); v != "" {
		if from, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return from, to, fmt.Errorf("from %.64q: must be an RFC 3339 time", v)
		}
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("from %s: must be before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func (s *Service) parseQuery(r *http.Request) (Query, error) {
	v := r.URL.Query()
	q := Query{Service: v.Get("service"), Operation: v.Get("operation"), ContextID: v.Get("context_id")}
	if len(q.Service) > events.MaxSourceLen || len(q.Operation) > events.MaxNameLen || len(q.ContextID) > events.MaxNameLen {
		return q, errors.New("service, operation or context_id: too long")
	}
	var err error
	if q.From, q.To, err = s.parseRange(r); err != nil {
		return q, err
	}
	if q.Limit, err = intParam(r, "limit", 20, 1000); err != nil {
		return q, err
	}
	if d := v.Get("min_duration_ms"); d != "" {
		f, err := strconv.ParseFloat(d, 64)
		if err != nil || !(f >= 0 && f <= 1e10) {
			return q, fmt.Errorf("min_duration_ms %.32q: must be a number from 0 to 1e10", d)
		}
		q.MinDuration = time.Duration(f * float64(time.Millisecond))
	}
	switch e := strings.ToLower(v.Get("errors")); e {
	case "", "false", "0":
	case "true", "1":
		q.ErrorsOnly = true
	default:
		return q, fmt.Errorf("errors %.32q: must be true or false", e)
	}
	return q, nil
}

func intParam(r *http.Request, name string, def, maxV int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > maxV {
		return 0, fmt.Errorf("%s %.32q: must be an integer from 1 to %d", name, v, maxV)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
