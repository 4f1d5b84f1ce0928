package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jetmon/jetmon/pkg/events"
)

// Defaults of [Options].
const (
	DefaultMaxBody        = 4 << 20
	DefaultMaxSpans       = 10_000
	DefaultPublishTimeout = 10 * time.Second
)

// Options configure a [Handler].
type Options struct {
	// Publisher stores the events. Required; it must be an
	// [events.StoringPublisher] (the JetStream bus), because a 2xx answer
	// means stored.
	Publisher events.StoringPublisher
	// MaxBody bounds a request body (default 4 MiB; 413 beyond).
	MaxBody int64
	// MaxSpans bounds the spans of one request (default 10 000); the rest
	// are rejected in partial_success.
	MaxSpans int
	// PublishTimeout bounds the storing of one request (default 10 s).
	PublishTimeout time.Duration
}

// ErrOptions is matched by the error of invalid options.
var ErrOptions = errors.New("invalid otlp options")

// Handler serves POST /v1/traces. It is safe for concurrent use.
type Handler struct {
	o                                Options
	spans, rejected, stored, retried atomic.Uint64
}

// New returns a Handler; zero options take their defaults.
func New(o Options) (*Handler, error) {
	if o.Publisher == nil {
		return nil, fmt.Errorf("%w: Publisher is required", ErrOptions)
	}
	if o.MaxBody < 0 || o.MaxSpans < 0 || o.PublishTimeout < 0 {
		return nil, fmt.Errorf("%w: MaxBody, MaxSpans and PublishTimeout must not be negative", ErrOptions)
	}
	if o.MaxBody == 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxSpans == 0 {
		o.MaxSpans = DefaultMaxSpans
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	return &Handler{o: o}, nil
}

// Stats are a Handler's counters: spans received, rejected (invalid or over
// MaxSpans), stored, and not stored for a transient failure (the client
// retries).
type Stats struct{ Spans, Rejected, Stored, Retry uint64 }

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	return Stats{h.spans.Load(), h.rejected.Load(), h.stored.Load(), h.retried.Load()}
}

// Mount registers POST /v1/traces on mux.
func (h *Handler) Mount(mux *http.ServeMux) { mux.Handle("POST /v1/traces", h) }

// ServeHTTP answers an OTLP/HTTP trace export (Content-Type
// application/x-protobuf or application/json) in the request's encoding:
//
//   - 200 with partial_success (rejected_spans, error_message) when every
//     valid span is stored in JetStream; invalid spans are rejected there,
//     never retried;
//   - 503 with Retry-After when a valid span could not be stored (resending
//     is safe: event ids derive from the span ids and JetStream
//     deduplicates);
//   - 400 for a body that is not an export, 413 over MaxBody, 415 for
//     another Content-Type.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var decode func([]byte) ([]span, error)
	switch ct {
	case "application/x-protobuf", "application/protobuf":
		decode = decodeProto
	case "application/json":
		decode = decodeJSON
	default:
		http.Error(w, "Content-Type must be application/x-protobuf or application/json", http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength > h.o.MaxBody {
		h.status(w, ct, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, h.o.MaxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.status(w, ct, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", h.o.MaxBody))
			return
		}
		h.status(w, ct, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	spans, err := decode(body)
	if err != nil {
		h.status(w, ct, http.StatusBadRequest, err.Error())
		return
	}
	h.spans.Add(uint64(len(spans)))
	var evs []events.Event
	var rejected int64
	var firstErr string
	reject := func(i int, msg string) {
		rejected++
		if firstErr == "" {
			firstErr = fmt.Sprintf("span %d: %s", i, msg)
		}
	}
	for i, s := range spans {
		if i >= h.o.MaxSpans {
			reject(i, fmt.Sprintf("more than %d spans in one request", h.o.MaxSpans))
			continue
		}
		ev, err := toEvent(s)
		if err != nil {
			reject(i, err.Error())
			continue
		}
		evs = append(evs, ev)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.PublishTimeout)
	defer cancel()
	retry := 0
	for i, err := range h.o.Publisher.PublishStored(ctx, evs) {
		switch {
		case err == nil:
			h.stored.Add(1)
		case errors.Is(err, events.ErrInvalid) || errors.Is(err, events.ErrPayloadTooLarge):
			reject(i, err.Error())
		default:
			retry++
		}
	}
	h.rejected.Add(uint64(rejected))
	if retry > 0 {
		h.retried.Add(uint64(retry))
		w.Header().Set("Retry-After", "1")
		h.status(w, ct, http.StatusServiceUnavailable, fmt.Sprintf("%d spans could not be stored; send the export again", retry))
		return
	}
	h.respond(w, ct, http.StatusOK, rejected, firstErr)
}

// respond writes an ExportTraceServiceResponse.
func (h *Handler) respond(w http.ResponseWriter, ct string, code int, rejected int64, msg string) {
	if ct == "application/json" {
		resp := map[string]any{}
		if rejected > 0 || msg != "" {
			resp["partialSuccess"] = map[string]any{"rejectedSpans": fmt.Sprint(rejected), "errorMessage": msg}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	// ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1
	// { int64 rejected_spans = 1; string error_message = 2; } }
	var ps []byte
	if rejected > 0 {
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(rejected))
	}
	if msg != "" {
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
	}
	var out []byte
	if len(ps) > 0 {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, ps)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(code)
	_, _ = w.Write(out)
}

// status writes an error answer: google.rpc.Status { string message = 2 }
// in protobuf, {"message": ...} in JSON.
func (h *Handler) status(w http.ResponseWriter, ct string, code int, msg string) {
	if ct == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
		return
	}
	var out []byte
	out = protowire.AppendTag(out, 2, protowire.BytesType)
	out = protowire.AppendString(out, strings.ToValidUTF8(msg, "?"))
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(code)
	_, _ = w.Write(out)
}
