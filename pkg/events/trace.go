package events

import (
	"context"
	"errors"
	"math/rand/v2"
)

// TraceID is a W3C trace id: 16 bytes, written as 32 lowercase hex digits. The
// zero value means "no trace".
type TraceID [16]byte

// SpanID is a W3C span (parent) id: 8 bytes, written as 16 lowercase hex digits.
// The zero value means "no span".
type SpanID [8]byte

// ErrBadTraceContext reports a trace id, span id or traceparent header that is
// not in W3C form.
var ErrBadTraceContext = errors.New("malformed trace context")

// NewTraceID returns a random, valid trace id.
func NewTraceID() TraceID {
	var t TraceID
	for t.IsZero() {
		putUint64(t[:8], rand.Uint64())
		putUint64(t[8:], rand.Uint64())
	}
	return t
}

// NewSpanID returns a random, valid span id.
func NewSpanID() SpanID {
	var s SpanID
	for s.IsZero() {
		putUint64(s[:], rand.Uint64())
	}
	return s
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// IsZero reports whether t is the all-zero (absent) id.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// IsZero reports whether s is the all-zero (absent) id.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// String returns t as 32 lowercase hex digits.
func (t TraceID) String() string { return string(t.appendHex(nil)) }

// String returns s as 16 lowercase hex digits.
func (s SpanID) String() string { return string(s.appendHex(nil)) }

func (t TraceID) appendHex(dst []byte) []byte { return appendHex(dst, t[:]) }
func (s SpanID) appendHex(dst []byte) []byte  { return appendHex(dst, s[:]) }

func appendHex(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return dst
}

// ParseTraceID parses 32 lowercase hex digits. The all-zero id is invalid (W3C).
func ParseTraceID(s string) (TraceID, error) {
	var t TraceID
	if err := parseHexID(t[:], s); err != nil {
		return TraceID{}, err
	}
	return t, nil
}

// ParseSpanID parses 16 lowercase hex digits. The all-zero id is invalid (W3C).
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if err := parseHexID(id[:], s); err != nil {
		return SpanID{}, err
	}
	return id, nil
}

func parseHexID[S string | []byte](dst []byte, s S) error {
	if len(s) != 2*len(dst) {
		return ErrBadTraceContext
	}
	var or, bad byte
	_ = s[2*len(dst)-1]
	for i := range dst {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
		or |= dst[i]
	}
	if bad&0xf0 != 0 || or == 0 {
		return ErrBadTraceContext
	}
	return nil
}

// hexValue maps lowercase hex digits to their value and every other byte to
// 0xff, so that one OR over a whole id tells whether any digit was bad.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// unhex accepts lowercase hex only, as W3C trace context requires.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// TraceContext is the W3C trace context an event belongs to: the trace, the
// event's own span and the span that caused it.
type TraceContext struct {
	TraceID      TraceID
	SpanID       SpanID
	ParentSpanID SpanID
	// Sampled is the traceparent "sampled" flag.
	Sampled bool
}

// IsValid reports whether tc has both a trace id and a span id.
func (tc TraceContext) IsValid() bool { return !tc.TraceID.IsZero() && !tc.SpanID.IsZero() }

// NewRootTrace returns the context of a new trace's root span, sampled.
func NewRootTrace() TraceContext {
	return TraceContext{TraceID: NewTraceID(), SpanID: NewSpanID(), Sampled: true}
}

// Child returns the context of a new span in the same trace whose parent is tc's
// span. A tc without a trace starts a new root trace instead.
func (tc TraceContext) Child() TraceContext {
	if !tc.IsValid() {
		return NewRootTrace()
	}
	return TraceContext{TraceID: tc.TraceID, SpanID: NewSpanID(), ParentSpanID: tc.SpanID, Sampled: tc.Sampled}
}

// Traceparent returns tc as a W3C traceparent header value
// ("00-<trace id>-<span id>-<flags>"), or "" when tc is not valid.
func (tc TraceContext) Traceparent() string {
	if !tc.IsValid() {
		return ""
	}
	b := make([]byte, 0, 55)
	b = append(b, "00-"...)
	b = tc.TraceID.appendHex(b)
	b = append(b, '-')
	b = tc.SpanID.appendHex(b)
	if tc.Sampled {
		b = append(b, "-01"...)
	} else {
		b = append(b, "-00"...)
	}
	return string(b)
}

// ParseTraceparent parses a W3C traceparent header value. The returned
// context's SpanID is the caller's span (the header's parent-id); use
// [TraceContext.Child] to start a span under it. Errors wrap [ErrBadTraceContext].
func ParseTraceparent(h string) (TraceContext, error) {
	// version(2) - trace(32) - parent(16) - flags(2); future versions may append fields.
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' || (len(h) > 55 && h[55] != '-') {
		return TraceContext{}, ErrBadTraceContext
	}
	if h[:2] == "ff" || (h[:2] == "00" && len(h) != 55) {
		return TraceContext{}, ErrBadTraceContext
	}
	var tc TraceContext
	if err := parseHexID(tc.TraceID[:], h[3:35]); err != nil {
		return TraceContext{}, err
	}
	if err := parseHexID(tc.SpanID[:], h[36:52]); err != nil {
		return TraceContext{}, err
	}
	hi, ok1 := unhex(h[53])
	lo, ok2 := unhex(h[54])
	if !ok1 || !ok2 {
		return TraceContext{}, ErrBadTraceContext
	}
	tc.Sampled = (hi<<4|lo)&1 == 1
	return tc, nil
}

type traceKey struct{}

// ContextWithTrace returns a copy of ctx that carries tc. Events created with
// [TraceFromContext] join the trace.
func ContextWithTrace(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, traceKey{}, tc)
}

// TraceFromContext returns the trace context carried by ctx, if any.
func TraceFromContext(ctx context.Context) (TraceContext, bool) {
	tc, ok := ctx.Value(traceKey{}).(TraceContext)
	return tc, ok && tc.IsValid()
}
