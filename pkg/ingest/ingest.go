// Package ingest is the producer's HTTP front door: POST /v1/events takes one
// JSON event, a JSON array of events, or NDJSON (one event per line),
// validates each event, publishes the good ones, and answers with a result
// per item — a bad item never spoils the good ones in the same request.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Options configures the handler.
type Options struct {
	// Publisher receives the accepted events (e.g. a breaker in front of the
	// JetStream bus). Required.
	Publisher events.Publisher
	// MaxBody bounds a request body (default 4 MiB); a larger one is refused
	// with 413 before it is read.
	MaxBody int64
	// Token, when set, is required as "Authorization: Bearer <token>".
	Token string
	// MaxEvent bounds one event (default 1 MiB, the NATS payload limit).
	MaxEvent int
	// PublishTimeout bounds the publishing of one request (default 10 s).
	PublishTimeout time.Duration
	// AssignDefaults gives an event without an id a new one and an event
	// without a timestamp the time it was received, so that a hand-written
	// curl needs neither. Clients that retry should send their own ids:
	// only those deduplicate.
	AssignDefaults bool
}

// ItemError is the result of one rejected item.
type ItemError struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
	// Retry says whether sending the item again may succeed (a publish
	// failure), as opposed to an item that is wrong.
	Retry bool `json:"retry,omitempty"`
}

// Response is the body of every answer to POST /v1/events.
type Response struct {
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Errors   []ItemError `json:"errors,omitempty"`
}

// Stats counts what the handler did.
type Stats struct {
	Requests, Accepted, Rejected, Unauthorized, TooLarge uint64
}

// Handler serves POST /v1/events and GET /v1/openapi.json.
type Handler struct {
	o                                                    Options
	dec                                                  events.Decoder
	requests, accepted, rejected, unauthorized, tooLarge atomic.Uint64
}

// New returns the handler; it fails without a Publisher.
func New(o Options) (*Handler, error) {
	if o.Publisher == nil {
		return nil, errors.New("ingest: Options.Publisher is required")
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 4 << 20
	}
	if o.MaxEvent <= 0 {
		o.MaxEvent = events.DefaultMaxPayload
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 10 * time.Second
	}
	return &Handler{o: o, dec: events.Decoder{MaxPayload: o.MaxEvent, SkipValidation: o.AssignDefaults}}, nil
}

// Mount registers the handler's routes on mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/events", h.events)
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(openAPI))
	})
}

// ServeHTTP serves the routes of Mount.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	h.Mount(mux)
	mux.ServeHTTP(w, r)
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{
		Requests: h.requests.Load(), Accepted: h.accepted.Load(), Rejected: h.rejected.Load(),
		Unauthorized: h.unauthorized.Load(), TooLarge: h.tooLarge.Load(),
	}
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.o.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(h.o.Token)) == 1
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	if !h.authorized(r) {
		h.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="jetmon"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	if r.ContentLength > h.o.MaxBody {
		h.tooLarge.Add(1)
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body larger than the limit of " + itoa(h.o.MaxBody) + " bytes"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.tooLarge.Add(1)
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body larger than the limit of " + itoa(h.o.MaxBody) + " bytes"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the body: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.PublishTimeout)
	defer cancel()
	var resp Response
	reject := func(i int, err error, retry bool) {
		e := ItemError{Index: i, Error: err.Error(), Retry: retry}
		if ve, ok := errors.AsType[*events.ValidationError](err); ok {
			e.Field = ve.Field
		}
		resp.Errors = append(resp.Errors, e)
		resp.Rejected++
	}
	received := time.Now().UTC()
	take := func(i int, ev events.Event, err error) {
		if err == nil && h.o.AssignDefaults {
			md := ev.Metadata()
			if md.ID == "" {
				md.ID = events.NewID()
			}
			if md.Timestamp.IsZero() {
				md.Timestamp = received
			}
			err = ev.Validate()
		}
		if err != nil {
			reject(i, err, false)
			return
		}
		if perr := h.o.Publisher.Publish(ctx, ev); perr != nil {
			reject(i, perr, !errors.Is(perr, events.ErrInvalid) && !errors.Is(perr, events.ErrPayloadTooLarge))
			return
		}
		resp.Accepted++
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "empty body: send a JSON event, a JSON array of events, or NDJSON"})
		return
	case trimmed[0] == '[':
		if err := (events.Decoder{MaxPayload: -1, SkipValidation: h.o.AssignDefaults}).EachInBatch(trimmed, func(it events.BatchItem) {
			if it.Err == nil && len(it.Raw) > h.o.MaxEvent {
				it.Event, it.Err = nil, events.ErrPayloadTooLarge
			}
			take(it.Index, it.Event, it.Err)
		}); err != nil {
			reject(resp.Accepted+resp.Rejected, err, false) // the array broke off here
		}
	default: // one object, or NDJSON
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(make([]byte, 0, 64<<10), h.o.MaxEvent+1)
		i := 0
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			ev, err := h.dec.Decode(line)
			take(i, ev, err)
			i++
		}
		if err := sc.Err(); err != nil {
			reject(i, err, false)
		}
	}
	h.accepted.Add(uint64(resp.Accepted))
	h.rejected.Add(uint64(resp.Rejected))
	code := http.StatusAccepted
	switch {
	case resp.Rejected > 0 && resp.Accepted > 0:
		code = http.StatusMultiStatus
	case resp.Rejected > 0:
		code = http.StatusBadRequest
		for _, e := range resp.Errors {
			if e.Retry {
				code = http.StatusServiceUnavailable
			}
		}
	}
	writeJSON(w, code, resp)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
