// Package ingest is the producer's HTTP front door: POST /v1/events takes one
// JSON event (pretty-printed or not), a JSON array of events, or NDJSON (one
// event per line), validates each event, publishes the good ones, and
// answers with a result per item — a bad item never spoils the good ones in
// the same request.
//
// # 2xx means stored
//
// When the Publisher is an [events.StoringPublisher] (the JetStream bus,
// *jsbus.Bus) the handler answers 2xx only after JetStream has acknowledged
// every event it reports as accepted, and the response says "stored": true.
// An event that could not be stored is rejected with "retry": true (503 when
// nothing was stored): the client sends it again with the same id and the
// server's dedup window drops a copy that did arrive. So the ingest should
// publish straight through the bus, not through the circuit breaker
// (pkg/breaker): the breaker exists so that application code never blocks
// on the bus, and it answers "spooled" for events that are not stored yet —
// here the client is the one to wait and to retry. With any other Publisher
// (the breaker, the in-memory bus) an accepted event has only been handed
// over, and the response says "stored": false.
//
// # What the door refuses
//
//   - a request without the bearer token (401), when Options.Token is set;
//   - a write whose Content-Type is not JSON or NDJSON (415: send
//     application/json or application/x-ndjson; a request without a
//     Content-Type, as from a script, is taken), and a request whose Origin
//     is not the server it is sent to (403): together they keep a web page on
//     another site from posting events through a browser;
//   - a body over Options.MaxBody (413), an item over Options.MaxEvent or
//     whose message cannot fit the bus's max payload (413 when every item is
//     too large);
//   - items that break the data model (docs/wire-format.md, 400);
//   - items of a type only the pipeline emits ([events.PipelineOnly]:
//     aggregated windows, monitoring.* controls, health.threshold.*) unless
//     the request carries Options.GrantToken (403).
//
// The answer lists at most Options.MaxErrors item errors, the ones with the
// lowest indexes; "rejected" counts them all and "errors_omitted" says how
// many were left out, so that a body of two million bad items gets a small
// answer.
package ingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetmon/jetmon/pkg/events"
)

// Defaults of [Options].
const (
	DefaultMaxBody = 4 << 20
	// DefaultMaxBodiesInFlight is Options.MaxBodiesInFlight's default.
	DefaultMaxBodiesInFlight = 64 << 20
	DefaultMaxErrors         = 100
	DefaultPublishTimeout    = 10 * time.Second
)

// publishChunk is how many accepted events are published at a time, which
// bounds the events a request holds in memory.
const publishChunk = 1000

// ErrNotGranted is matched by the item error of an event whose type only
// the pipeline emits ([events.PipelineOnly]), sent without the grant token.
var ErrNotGranted = errors.New("event type is emitted only by the pipeline")

// Options configures the handler.
type Options struct {
	// Publisher receives the accepted events. Required. When it is an
	// [events.StoringPublisher] (the JetStream bus) the handler answers 2xx
	// only for stored events; see the package documentation.
	Publisher events.Publisher
	// MaxBody bounds a request body (default 4 MiB); a larger one is refused
	// with 413 before it is read.
	MaxBody int64
	// MaxBodiesInFlight bounds the body bytes held by the requests being
	// served at once (default 64 MiB): a request whose announced length (or
	// MaxBody, when it announces none) does not fit is answered 503 with
	// Retry-After, so a burst of large or slow bodies cannot grow memory.
	MaxBodiesInFlight int64
	// Token, when set, is required as "Authorization: Bearer <token>".
	Token string
	// GrantToken, when set, is a second bearer token that also lets a
	// request publish the types only the pipeline emits
	// ([events.PipelineOnly]); it is accepted wherever Token is. Without it
	// such events are always refused.
	GrantToken string
	// MaxEvent bounds one event as sent (default 1 MiB, the NATS payload
	// limit). The bus may refuse a smaller one whose message, headers
	// included, exceeds the server's limit.
	MaxEvent int
	// MaxErrors bounds the item errors listed in a response (default 100);
	// the rest are counted in Response.ErrorsOmitted.
	MaxErrors int
	// PublishTimeout bounds the publishing of one request (default 10 s),
	// including the wait for JetStream's acknowledgements.
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
	// Status is the HTTP status this item alone would have had: 400 (the
	// item is wrong), 403 (its type needs the grant token), 413 (too large
	// to store) or 503 (not stored; retry).
	Status int `json:"status"`
	// Retry says whether sending the item again may succeed (a publish
	// failure), as opposed to an item that is wrong.
	Retry bool `json:"retry,omitempty"`
}

// Response is the body of every answer to POST /v1/events that got as far as
// reading the items.
type Response struct {
	// Accepted counts the events published (stored, when Stored is true).
	Accepted int `json:"accepted"`
	// Rejected counts the items refused, listed or not.
	Rejected int `json:"rejected"`
	// Stored says that the accepted events are stored in JetStream; false
	// means they were handed to a publisher that stores them later (e.g. a
	// circuit breaker's spool).
	Stored bool `json:"stored"`
	// Errors lists the rejected items with the lowest indexes, in index
	// order, at most Options.MaxErrors of them.
	Errors []ItemError `json:"errors,omitempty"`
	// ErrorsOmitted counts the rejected items not listed.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// Stats counts what the handler did.
type Stats struct {
	Requests, Accepted, Rejected, Unauthorized, TooLarge uint64
	// Forbidden counts cross-origin requests and items refused for lack of
	// the grant; Unsupported requests refused for their Content-Type.
	Forbidden, Unsupported uint64
}

// Handler serves POST /v1/events and GET /v1/openapi.json. It is safe for
// concurrent use.
type Handler struct {
	o      Options
	store  events.StoringPublisher // nil: the Publisher does not store
	dec    events.Decoder
	stats  counters
	grant  []byte
	token  []byte
	probes events.Decoder // a whole body, without the size limit
	bodies atomic.Int64   // body bytes reserved by the requests in flight
}

type counters struct {
	requests, accepted, rejected, unauthorized, tooLarge, forbidden, unsupported atomic.Uint64
}

// New returns the handler; it fails without a Publisher or with a negative
// limit.
func New(o Options) (*Handler, error) {
	switch {
	case o.Publisher == nil:
		return nil, errors.New("ingest: Options.Publisher is required")
	case o.MaxBody < 0:
		return nil, fmt.Errorf("ingest: Options.MaxBody %d: must not be negative", o.MaxBody)
	case o.MaxBodiesInFlight < 0:
		return nil, fmt.Errorf("ingest: Options.MaxBodiesInFlight %d: must not be negative", o.MaxBodiesInFlight)
	case o.MaxEvent < 0:
		return nil, fmt.Errorf("ingest: Options.MaxEvent %d: must not be negative", o.MaxEvent)
	case o.MaxErrors < 0:
		return nil, fmt.Errorf("ingest: Options.MaxErrors %d: must not be negative", o.MaxErrors)
	case o.PublishTimeout < 0:
		return nil, fmt.Errorf("ingest: Options.PublishTimeout %v: must not be negative", o.PublishTimeout)
	case o.GrantToken != "" && o.GrantToken == o.Token:
		return nil, errors.New("ingest: Options.GrantToken must differ from Options.Token")
	}
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxBodiesInFlight == 0 {
		o.MaxBodiesInFlight = DefaultMaxBodiesInFlight
	}
	o.MaxBodiesInFlight = max(o.MaxBodiesInFlight, o.MaxBody)
	if o.MaxEvent == 0 {
		o.MaxEvent = events.DefaultMaxPayload
	}
	if o.MaxErrors == 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	h := &Handler{
		o:      o,
		dec:    events.Decoder{MaxPayload: o.MaxEvent, SkipValidation: o.AssignDefaults},
		probes: events.Decoder{MaxPayload: -1, SkipValidation: o.AssignDefaults},
		token:  []byte(o.Token),
		grant:  []byte(o.GrantToken),
	}
	h.store, _ = o.Publisher.(events.StoringPublisher)
	return h, nil
}

// Stores reports whether a 2xx answer means the accepted events are stored:
// whether the Publisher is an [events.StoringPublisher].
func (h *Handler) Stores() bool { return h.store != nil }

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
	c := &h.stats
	return Stats{
		Requests: c.requests.Load(), Accepted: c.accepted.Load(), Rejected: c.rejected.Load(),
		Unauthorized: c.unauthorized.Load(), TooLarge: c.tooLarge.Load(),
		Forbidden: c.forbidden.Load(), Unsupported: c.unsupported.Load(),
	}
}

// authorize checks the bearer token; granted says that the request holds
// the grant token.
func (h *Handler) authorize(r *http.Request) (ok, granted bool) {
	got, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if bearer && len(h.grant) > 0 && subtle.ConstantTimeCompare([]byte(got), h.grant) == 1 {
		return true, true
	}
	if len(h.token) == 0 {
		return true, false
	}
	return bearer && subtle.ConstantTimeCompare([]byte(got), h.token) == 1, false
}

// checkWrite refuses a write a browser on another site could have sent: a
// foreign Origin (403) or a Content-Type other than JSON (415).
func checkWrite(r *http.Request) (int, string) {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return http.StatusForbidden, "cross-origin request refused: Origin " + strconv.Quote(origin) + " is not this server (" + r.Host + ")"
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !jsonMediaType(mt) {
			return http.StatusUnsupportedMediaType, "Content-Type " + strconv.Quote(ct) + " refused: send application/json (one event or an array) or application/x-ndjson (one event per line)"
		}
	}
	return 0, ""
}

// jsonMediaType reports whether mt (without parameters) is JSON or
// newline-delimited JSON.
func jsonMediaType(mt string) bool {
	mt = strings.ToLower(mt)
	switch mt {
	case "application/json", "application/x-ndjson", "application/ndjson",
		"application/jsonl", "application/x-jsonl", "application/jsonlines", "application/x-jsonlines":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	h.stats.requests.Add(1)
	ok, granted := h.authorize(r)
	if !ok {
		h.stats.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="jetmon"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	if code, msg := checkWrite(r); code != 0 {
		if code == http.StatusForbidden {
			h.stats.forbidden.Add(1)
		} else {
			h.stats.unsupported.Add(1)
		}
		writeError(w, code, msg)
		return
	}
	tooLarge := "body larger than the limit of " + strconv.FormatInt(h.o.MaxBody, 10) + " bytes"
	if r.ContentLength > h.o.MaxBody {
		h.stats.tooLarge.Add(1)
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return
	}
	reserve := r.ContentLength
	if reserve < 0 {
		reserve = h.o.MaxBody
	}
	if h.bodies.Add(reserve) > h.o.MaxBodiesInFlight {
		h.bodies.Add(-reserve)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too many request bodies in flight (limit "+strconv.FormatInt(h.o.MaxBodiesInFlight, 10)+" bytes); retry")
		return
	}
	defer h.bodies.Add(-reserve)
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.o.MaxBody), r.ContentLength)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.stats.tooLarge.Add(1)
			writeError(w, http.StatusRequestEntityTooLarge, tooLarge)
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.PublishTimeout)
	defer cancel()
	rq := &request{h: h, ctx: ctx, granted: granted, received: time.Now().UTC(), errs: errorList{max: h.o.MaxErrors}}
	if !h.eachItem(body, rq.take) {
		writeError(w, http.StatusBadRequest, "empty body: send a JSON event, a JSON array of events, or NDJSON")
		return
	}
	rq.flush()
	resp := rq.response()
	h.stats.accepted.Add(uint64(resp.Accepted))
	h.stats.rejected.Add(uint64(resp.Rejected))
	h.stats.forbidden.Add(uint64(rq.forbidden))
	code := rq.status()
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, resp)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads a body of the announced length (-1: unknown) into one
// buffer of its size, allocated once the first chunk has arrived (a client
// that sends nothing holds nothing); io.ReadAll's doubling would leave about
// the body's size again in garbage per request, which a burst of large
// bodies turns into memory the process keeps until its next collection.
func readBody(r io.Reader, length int64) ([]byte, error) {
	first := make([]byte, min(max(length, 0)+1, firstChunk))
	n, err := io.ReadFull(r, first)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return first[:n], nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, max(length+1, 2*firstChunk))
	buf = append(buf, first...)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // announced length exceeded: grow
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

const firstChunk = 64 << 10
