package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPOptions bound the HTTP door of a [Reader].
type HTTPOptions struct {
	// Timeout bounds one query (default 15 s).
	Timeout time.Duration
	// Concurrent is the most queries run at once (default 4); a request
	// that cannot start within Timeout is answered 503.
	Concurrent int
	// Now is the clock for relative times (default time.Now).
	Now func() time.Time
}

// Handler serves the history API (JSON, GET only):
//
//	GET /api/v1/history/windows?source=&type=&operation=&from=&to=&step=
//	GET /api/v1/history/health?component=&from=&to=&limit=
//	GET /api/v1/history/alerts?rule=&from=&to=&limit=
//
// from and to take RFC 3339 times, Unix seconds, "now" or "now-<duration>"
// (e.g. now-24h); from defaults to an hour before to, to to now. step takes
// a Go duration (30s, 5m) or seconds. Every parameter may appear once; an
// unknown parameter, a repeated one or a value out of bounds is answered 400
// with the reason, a query reading too much 422 ([ErrTooMuch]). Nothing is
// written: the guard in front (tokens, origins) is the caller's.
type Handler struct {
	r   *Reader
	o   HTTPOptions
	sem chan struct{}
}

// NewHandler returns the HTTP door of r; zero fields of o take the defaults.
func NewHandler(r *Reader, o HTTPOptions) *Handler {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Concurrent <= 0 {
		o.Concurrent = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Handler{r: r, o: o, sem: make(chan struct{}, o.Concurrent)}
}

// Mount adds the endpoints to mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/history/windows", h.windows)
	mux.HandleFunc("GET /api/v1/history/health", h.health)
	mux.HandleFunc("GET /api/v1/history/alerts", h.alerts)
}

// params checks that q has only the allowed keys, each once.
func params(q url.Values, allowed ...string) error {
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return bad("unknown parameter %.64q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return bad("parameter %s given %d times", k, len(vs))
		}
	}
	return nil
}

// ParseTime reads an RFC 3339 time, Unix seconds, "now" or "now-<duration>".
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "now-"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 || d > 100*365*24*time.Hour {
			return time.Time{}, bad("%.64q: want now-<duration>, e.g. now-24h", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 253402300799 {
		return time.Time{}, bad("%.64q: want an RFC 3339 time, Unix seconds, now or now-<duration>", s)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func parseStep(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e9 {
		return 0, bad("step %.64q: want a duration (30s, 5m) or seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func (h *Handler) timeRange(q url.Values) (from, to time.Time, err error) {
	now := h.o.Now()
	to = now
	if s := q.Get("to"); s != "" {
		if to, err = ParseTime(s, now); err != nil {
			return from, to, fmt.Errorf("to: %w", err)
		}
	}
	from = to.Add(-time.Hour)
	if s := q.Get("from"); s != "" {
		if from, err = ParseTime(s, now); err != nil {
			return from, to, fmt.Errorf("from: %w", err)
		}
	}
	return from, to, nil
}

func limitParam(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, bad("limit %.64q: want a positive integer", s)
	}
	return n, nil
}

func (h *Handler) windows(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if err := params(q, "source", "type", "operation", "from", "to", "step"); err != nil {
		writeErr(w, err)
		return
	}
	from, to, err := h.timeRange(q)
	if err != nil {
		writeErr(w, err)
		return
	}
	step, err := parseStep(q.Get("step"))
	if err != nil {
		writeErr(w, err)
		return
	}
	h.run(w, req, func(ctx context.Context) (any, error) {
		return h.r.Windows(ctx, WindowQuery{Source: q.Get("source"), Type: q.Get("type"), Operation: q.Get("operation"), From: from, To: to, Step: step})
	})
}

func (h *Handler) health(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	from, to, limit, err := h.listParams(q, "component")
	if err != nil {
		writeErr(w, err)
		return
	}
	h.run(w, req, func(ctx context.Context) (any, error) {
		return h.r.Health(ctx, HealthQuery{Component: q.Get("component"), From: from, To: to, Limit: limit})
	})
}

func (h *Handler) alerts(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	from, to, limit, err := h.listParams(q, "rule")
	if err != nil {
		writeErr(w, err)
		return
	}
	h.run(w, req, func(ctx context.Context) (any, error) {
		return h.r.Alerts(ctx, AlertQuery{Rule: q.Get("rule"), From: from, To: to, Limit: limit})
	})
}

// listParams checks the parameters of a history list (key, from, to,
// limit) and returns the range and the limit.
func (h *Handler) listParams(q url.Values, key string) (from, to time.Time, limit int, err error) {
	if err = params(q, key, "from", "to", "limit"); err != nil {
		return
	}
	if from, to, err = h.timeRange(q); err != nil {
		return
	}
	limit, err = limitParam(q)
	return
}

// run answers with fn's result, at most Concurrent at once, each within
// Timeout.
func (h *Handler) run(w http.ResponseWriter, req *http.Request, fn func(context.Context) (any, error)) {
	ctx, cancel := context.WithTimeout(req.Context(), h.o.Timeout)
	defer cancel()
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	case <-ctx.Done():
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many history queries at once; try again"})
		return
	}
	v, err := fn(ctx)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, ErrBadQuery):
		code = http.StatusBadRequest
	case errors.Is(err, ErrTooMuch):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
