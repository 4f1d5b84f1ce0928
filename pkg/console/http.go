package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
	"github.com/jetmon/jetmon/pkg/history"
)

//go:embed assets
var assets embed.FS

// Pages are the console's page paths: each serves the same page, which
// draws the view its path names (so every view has a URL to share).
var Pages = []string{"/console/", "/console/performance", "/console/series", "/console/health", "/console/alerts", "/console/deadletters", "/console/trace", "/console/dependencies"}

// Assets are the paths of the console's static files.
var Assets = []string{"/console/assets/app.js", "/console/assets/app.css", "/console/assets/icon.svg"}

// Public lists the paths that hold no data ([Pages] and [Assets]): a guard
// may leave them open so that a browser can load the page, which then sends
// the token on its API calls.
func Public() []string { return append(append([]string{"/console"}, Pages...), Assets...) }

// csp allows the page only its own script, style and API.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Mount adds the pages, assets and the console API to mux:
//
//	GET  /console/…                              the pages
//	GET  /api/v1/history/…                       see [history.Handler]
//	GET  /api/v1/console/features                [Features]
//	GET  /api/v1/console/overview                [Overview]
//	GET  /api/v1/console/alerts                  current alerts
//	GET  /api/v1/console/silences                silences
//	POST /api/v1/console/silences                create one (JSON [alerting.SilenceRequest])
//	POST /api/v1/console/silences/{id}/expire    end one now
//	GET  /api/v1/console/deadletters?type=&limit= dead letters
//	POST /api/v1/console/deadletters/{seq}/retry publish one again
//	POST /api/v1/console/deadletters/{seq}/drop  delete one
//	GET  /api/v1/console/live                    server-sent events
//
// Writes take POST only, with a JSON body (or none), from the same origin.
func (c *Console) Mount(mux *http.ServeMux) {
	api := http.NewServeMux()
	c.mountAPI(api)
	for _, p := range []string{"/api/v1/history/", "/api/v1/console/"} {
		mux.Handle(p, c.timed(api))
	}
	c.mountPages(mux)
}

// timed observes each request's time under its route pattern (the live
// stream is left out: it lasts minutes by design).
func (c *Console) timed(h *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := h.Handler(r)
		if pattern == "" || strings.HasSuffix(pattern, "/live") {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		h.ServeHTTP(w, r)
		c.latency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
	})
}

func (c *Console) mountPages(mux *http.ServeMux) {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	servePage := func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	}
	for _, p := range Pages {
		if p == "/console/" {
			mux.HandleFunc("GET /console/{$}", servePage)
		} else {
			mux.HandleFunc("GET "+p, servePage)
		}
	}
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	sub, _ := fs.Sub(assets, "assets")
	for _, p := range Assets {
		name := p[len("/console/assets/"):]
		data, err := fs.ReadFile(sub, name)
		if err != nil {
			panic(err)
		}
		ctype := mime.TypeByExtension(name[len(name)-4:])
		if name[len(name)-3:] == ".js" {
			ctype = "text/javascript; charset=utf-8"
		}
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(data)
		})
	}
}

func (c *Console) mountAPI(mux *http.ServeMux) {
	history.NewHandler(c.hist, history.HTTPOptions{Now: c.o.Now}).Mount(mux)
	mux.HandleFunc("GET /api/v1/console/features", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, c.Features(), nil)
	})
	mux.HandleFunc("GET /api/v1/console/overview", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.Overview(r.Context())
		reply(w, v, err)
	})
	mux.HandleFunc("GET /api/v1/console/alerts", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.Alerts(r.Context())
		reply(w, v, err)
	})
	mux.HandleFunc("GET /api/v1/console/silences", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.Silences(r.Context())
		reply(w, v, err)
	})
	mux.HandleFunc("POST /api/v1/console/silences", func(w http.ResponseWriter, r *http.Request) {
		if !writable(w, r, true) {
			return
		}
		var req alerting.SilenceRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			reply(w, nil, fmt.Errorf("%w: silence: %w", ErrBadRequest, err))
			return
		}
		v, err := c.CreateSilence(r.Context(), req)
		reply(w, v, err)
	})
	mux.HandleFunc("POST /api/v1/console/silences/{id}/expire", func(w http.ResponseWriter, r *http.Request) {
		if !writable(w, r, false) {
			return
		}
		v, err := c.ExpireSilence(r.Context(), r.PathValue("id"))
		reply(w, v, err)
	})
	mux.HandleFunc("GET /api/v1/console/deadletters", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pattern, limit := ">", 100
		if s := q.Get("type"); s != "" {
			pattern = s
		}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				reply(w, nil, fmt.Errorf("%w: limit %.32q", ErrBadRequest, s))
				return
			}
			limit = n
		}
		v, err := c.DeadLetters(r.Context(), pattern, limit)
		reply(w, v, err)
	})
	for _, action := range []string{"retry", "drop"} {
		mux.HandleFunc("POST /api/v1/console/deadletters/{seq}/"+action, func(w http.ResponseWriter, r *http.Request) {
			if !writable(w, r, false) {
				return
			}
			seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
			if err != nil || seq == 0 {
				reply(w, nil, fmt.Errorf("%w: seq must be a positive integer", ErrBadRequest))
				return
			}
			if action == "retry" {
				err = c.o.Bus.RetryDeadLetter(r.Context(), seq)
			} else {
				err = c.o.Bus.DropDeadLetter(r.Context(), seq)
			}
			reply(w, map[string]any{"seq": seq, "done": action}, err)
		})
	}
	mux.HandleFunc("GET /api/v1/console/live", c.live)
}

// Features says what the pages may ask for beyond the console's own API.
type Features struct {
	// Traces: the trace API is served on the console's origin
	// ([Options].Traces).
	Traces bool `json:"traces"`
}

// Features returns what c's pages may use.
func (c *Console) Features() Features { return Features{Traces: c.o.Traces} }

// writable refuses a write from another origin (403) or with a body that
// is not JSON (415). needBody requires a JSON body.
func writable(w http.ResponseWriter, r *http.Request, needBody bool) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin write refused"})
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-site write refused"})
		return false
	}
	if needBody || r.ContentLength > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send Content-Type: application/json"})
			return false
		}
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
