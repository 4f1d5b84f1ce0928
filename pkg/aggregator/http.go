package aggregator

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/jetmon/jetmon/pkg/events"
)

// windowView is a window in the JSON API.
type windowView struct {
	ID             string `json:"id"`
	AggregatedType string `json:"aggregated_type"`
	Source         string `json:"source"`
	// Operation or, for a metric series, Metric: the wire format's names.
	Operation   string  `json:"operation,omitempty"`
	Metric      string  `json:"metric,omitempty"`
	WindowStart string  `json:"window_start"`
	WindowEnd   string  `json:"window_end"`
	Count       uint64  `json:"count"`
	ErrorCount  uint64  `json:"error_count"`
	Avg         float64 `json:"avg_duration"`
	Min         float64 `json:"min_duration"`
	Max         float64 `json:"max_duration"`
	P50         float64 `json:"p50_duration"`
	P90         float64 `json:"p90_duration"`
	P95         float64 `json:"p95_duration"`
	P99         float64 `json:"p99_duration"`
	// SlowestTraces are the exemplars: the traces of the slowest events.
	SlowestTraces []string `json:"slowest_trace_ids,omitempty"`
}

func view(w *events.AggregateEvent) windowView {
	return windowView{
		ID: w.ID, AggregatedType: string(w.AggregatedType), Source: w.Source, Operation: w.Operation, Metric: w.Metric,
		WindowStart: w.WindowStart.Format("2006-01-02T15:04:05.000Z07:00"), WindowEnd: w.WindowEnd.Format("2006-01-02T15:04:05.000Z07:00"),
		Count: w.Count, ErrorCount: w.ErrorCount, Avg: w.Avg, Min: w.Min, Max: w.Max, P50: w.P50, P90: w.P90, P95: w.P95, P99: w.P99,
		SlowestTraces: traceIDs(w.SlowestTraceIDs),
	}
}

func traceIDs(ids []events.TraceID) []string {
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// Mount registers the JSON API on mux:
//
//	GET /api/v1/windows?source=S&operation=O&limit=L  recent windows, newest first
//
// operation selects an operation or metric series (name, its former
// spelling, is still taken).
//
//	GET /api/v1/stats                             counters, open windows, series
//	GET /readyz                                   200 while consuming
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/windows", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 100
		if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
			limit = l
		}
		op := q.Get("operation")
		if op == "" {
			op = q.Get("name")
		}
		recent := s.Recent()
		out := []windowView{}
		for i := len(recent) - 1; i >= 0 && len(out) < limit; i-- {
			ev := recent[i]
			if (q.Get("source") == "" || ev.Source == q.Get("source")) && (op == "" || ev.Name() == op) {
				out = append(out, view(ev))
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
