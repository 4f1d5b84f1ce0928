package alerting

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mount adds the JSON API and /readyz to mux:
//
//	GET    /api/v1/alerts          pending, firing and recently resolved alerts
//	GET    /api/v1/silences        silences
//	POST   /api/v1/silences        create or update a silence (JSON [SilenceRequest])
//	DELETE /api/v1/silences/{id}   expire a silence
//
// The writes refuse a request from a browser page of another origin (an
// Origin header whose host differs from the request's Host, or Sec-Fetch-Site
// other than same-origin or none: 403) and a body that is not JSON (a
// Content-Type other than application/json: 415; no Content-Type is accepted
// only from a client that sends no Origin, such as curl or the alertmanager
// CLI). Together they stop cross-site request forgery through the "simple"
// requests a browser sends without asking first. The writes also need
// Options.APIToken as a bearer token when it is set.
//
//	GET    /api/v1/rules           loaded rules
//	GET    /api/v1/baselines       anomaly baselines and suggested thresholds
//	GET    /api/v1/thresholds      thresholds learned for threshold: auto rules
//	GET    /readyz                 200 once running
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		as, err := s.Alerts(r.Context())
		reply(w, as, err)
	})
	mux.HandleFunc("GET /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.Silences(r.Context())
		reply(w, ss, err)
	})
	mux.HandleFunc("POST /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(w, r) || !jsonBody(w, r) || !s.authorized(w, r) {
			return
		}
		var req SilenceRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("silence: %w", err))
			return
		}
		sil, err := req.Silence(time.Now())
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		sil, err = s.PutSilence(r.Context(), sil)
		if err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		reply(w, sil, nil)
	})
	mux.HandleFunc("DELETE /api/v1/silences/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(w, r) || !s.authorized(w, r) {
			return
		}
		sil, err := s.ExpireSilence(r.Context(), r.PathValue("id"))
		if err != nil {
			httpError(w, http.StatusNotFound, err)
			return
		}
		reply(w, sil, nil)
	})
	mux.HandleFunc("GET /api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		rs, err := s.RuleSummaries(r.Context())
		reply(w, rs, err)
	})
	mux.HandleFunc("GET /api/v1/baselines", func(w http.ResponseWriter, r *http.Request) {
		bs, err := s.Baselines(r.Context())
		reply(w, bs, err)
	})
	mux.HandleFunc("GET /api/v1/thresholds", func(w http.ResponseWriter, r *http.Request) {
		ts, err := s.Thresholds(r.Context())
		reply(w, ts, err)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// sameOrigin refuses, with 403, a write a browser sends from a page of
// another origin. Browsers send Origin on every cross-origin POST and DELETE
// (and Sec-Fetch-Site on every request); other clients send neither.
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		httpError(w, http.StatusForbidden, fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", site))
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		httpError(w, http.StatusForbidden, fmt.Errorf("cross-origin request refused: Origin %q is not this API's host %q", origin, r.Host))
		return false
	}
	return true
}

// jsonBody refuses, with 415, a body that is not declared JSON. A request
// without Content-Type passes only when it has no Origin either: a browser
// can send a body without Content-Type, a CLI client may forget it.
func jsonBody(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.Header.Get("Origin") == "" {
		return true
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return true
	}
	httpError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: want application/json", ct))
	return false
}

// authorized checks the bearer token of a write, answering 401 itself.
func (s *Service) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.APIToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIToken)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="jetmon-alertmanager"`)
	httpError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
	return false
}

// SilenceRequest is the body of POST /api/v1/silences. Give either EndsAt
// or Duration (e.g. "2h").
type SilenceRequest struct {
	ID        string            `json:"id,omitempty"`
	Matchers  map[string]string `json:"matchers"`
	StartsAt  time.Time         `json:"starts_at,omitzero"`
	EndsAt    time.Time         `json:"ends_at,omitzero"`
	Duration  string            `json:"duration,omitempty"`
	CreatedBy string            `json:"created_by,omitempty"`
	Comment   string            `json:"comment,omitempty"`
}

// Silence returns the silence the request describes.
func (r *SilenceRequest) Silence(now time.Time) (*Silence, error) {
	s := &Silence{ID: r.ID, Matchers: r.Matchers, StartsAt: r.StartsAt, EndsAt: r.EndsAt, CreatedBy: r.CreatedBy, Comment: r.Comment}
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	if r.Duration != "" {
		d, err := time.ParseDuration(r.Duration)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("silence: duration %q: want a positive duration such as 2h", r.Duration)
		}
		s.EndsAt = s.StartsAt.Add(d)
	}
	if s.EndsAt.IsZero() {
		return nil, fmt.Errorf("silence: ends_at or duration is required")
	}
	if err := s.Compile(); err != nil {
		return nil, fmt.Errorf("silence: %w", err)
	}
	return s, nil
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
