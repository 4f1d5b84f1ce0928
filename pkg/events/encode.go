package events

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The wire form is one flat JSON object per event (docs/wire-format.md). The
// encoders below append it field by field: no reflection, no intermediate maps,
// and no allocation beyond growing dst.

// AppendBatch appends the batch wire form of evs — a JSON array of events — to
// dst. A batch should hold events of one subject (one event type and source).
func AppendBatch(dst []byte, evs []Event) []byte {
	dst = append(dst, '[')
	for i, ev := range evs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = ev.AppendJSON(dst)
	}
	return append(dst, ']')
}

// Marshal returns the wire form of ev after validating it.
func Marshal(ev Event) ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev.AppendJSON(make([]byte, 0, 512)), nil
}

// appendMeta opens the object and writes the common fields, event_type first
// (decoders find the type without scanning the object).
func (m *Meta) appendMeta(dst []byte) []byte {
	dst = append(dst, `{"event_type":`...)
	dst = appendString(dst, string(m.Type))
	dst = appendStringField(dst, `,"id":`, m.ID)
	dst = appendStringField(dst, `,"source":`, m.Source)
	if !m.Timestamp.IsZero() {
		dst = append(dst, `,"timestamp":"`...)
		dst = appendTime(dst, m.Timestamp)
		dst = append(dst, '"')
	}
	if !m.TraceID.IsZero() {
		dst = append(dst, `,"trace_id":"`...)
		dst = append(m.TraceID.appendHex(dst), '"')
	}
	if !m.SpanID.IsZero() {
		dst = append(dst, `,"span_id":"`...)
		dst = append(m.SpanID.appendHex(dst), '"')
	}
	if !m.ParentSpanID.IsZero() {
		dst = append(dst, `,"parent_span_id":"`...)
		dst = append(m.ParentSpanID.appendHex(dst), '"')
	}
	return appendStringField(dst, `,"context_id":`, m.ContextID)
}

// closeMeta writes the attributes, sorted by key, and closes the object.
func (m *Meta) closeMeta(dst []byte) []byte {
	if len(m.Attributes) > 0 {
		dst = append(dst, `,"attributes":`...)
		dst = appendStringMap(dst, m.Attributes)
	}
	return append(dst, '}')
}

// AppendJSON appends e's wire form to dst.
func (e *PerformanceEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"field_path":`, e.FieldPath)
	dst = appendStringField(dst, `,"operation":`, e.Operation)
	switch e.Type {
	case PhaseEnd, OperationComplete, OperationFailed:
		dst = appendNumber(append(dst, `,"duration_ms":`...), e.DurationMS)
	default:
		dst = appendNumberField(dst, `,"duration_ms":`, e.DurationMS)
	}
	dst = appendStringField(dst, `,"phase":`, e.Phase)
	dst = appendStringField(dst, `,"status":`, e.Status)
	dst = appendStringField(dst, `,"metric":`, e.Metric)
	if e.Type == MetricRecorded {
		dst = appendNumber(append(dst, `,"value":`...), e.Value)
	} else {
		dst = appendNumberField(dst, `,"value":`, e.Value)
	}
	dst = appendStringField(dst, `,"unit":`, e.Unit)
	dst = appendStringField(dst, `,"resource":`, e.Resource)
	dst = appendStringField(dst, `,"error":`, e.Error)
	return e.closeMeta(dst)
}

// AppendJSON appends e's wire form to dst.
func (e *HealthEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"component":`, e.Component)
	dst = appendStringField(dst, `,"status":`, e.Status)
	dst = appendStringField(dst, `,"message":`, e.Message)
	dst = appendNumberField(dst, `,"latency_ms":`, e.LatencyMS)
	dst = appendStringField(dst, `,"metric":`, e.Metric)
	dst = appendNumberField(dst, `,"value":`, e.Value)
	dst = appendNumberField(dst, `,"threshold":`, e.Threshold)
	return e.closeMeta(dst)
}

// AppendJSON appends e's wire form to dst.
func (e *ControlEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"mode":`, e.Mode)
	dst = appendStringField(dst, `,"previous_mode":`, e.PreviousMode)
	if e.Type == MonitoringSampled {
		dst = appendNumber(append(dst, `,"sample_rate":`...), e.SampleRate)
	} else {
		dst = appendNumberField(dst, `,"sample_rate":`, e.SampleRate)
	}
	dst = appendStringField(dst, `,"scope":`, e.Scope)
	dst = appendStringField(dst, `,"reason":`, e.Reason)
	if len(e.Config) > 0 {
		dst = append(dst, `,"config":`...)
		dst = appendStringMap(dst, e.Config)
	}
	return e.closeMeta(dst)
}

// AppendJSON appends e's wire form to dst.
func (e *ValidationEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"field_path":`, e.FieldPath)
	dst = appendStringField(dst, `,"status":`, e.Status)
	dst = appendNumberField(dst, `,"duration_ms":`, e.DurationMS)
	if len(e.Errors) > 0 {
		dst = append(dst, `,"errors":[`...)
		for i, s := range e.Errors {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, ']')
	}
	dst = appendStringField(dst, `,"message":`, e.Message)
	return e.closeMeta(dst)
}

// AppendJSON appends e's wire form to dst.
func (e *SystemEvent) AppendJSON(dst []byte) []byte {
	dst = e.appendMeta(dst)
	dst = appendStringField(dst, `,"component":`, e.Component)
	dst = appendStringField(dst, `,"error":`, e.Error)
	dst = appendStringField(dst, `,"message":`, e.Message)
	return e.closeMeta(dst)
}

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *PerformanceEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *HealthEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *ControlEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *ValidationEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

// MarshalJSON returns e's wire form; it fails like [Event.Validate] would.
func (e *SystemEvent) MarshalJSON() ([]byte, error) { return Marshal(e) }

func appendStringField(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, key...), v)
}

func appendNumberField(dst []byte, key string, v float64) []byte {
	if v == 0 {
		return dst
	}
	return appendNumber(append(dst, key...), v)
}

// appendTime writes t in UTC as RFC 3339 with trailing-zero-trimmed
// nanoseconds — exactly what time.RFC3339Nano gives — without the general
// formatter's cost for the common case (years 0000-9999).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	hour, minute, sec := t.Clock()
	dst = append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 'Z')
}

// appendNumber writes v the way encoding/json does; non-finite values become null.
func appendNumber(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	// Fast path: durations and metrics usually have at most three decimals.
	// When v is exactly n/1000 for an integer n of moderate size, the
	// shortest round-tripping form is n's digits with the point moved —
	// the same text strconv would produce, at a fraction of the cost.
	if a := math.Abs(v); a >= 1e-3 && a < 1e12 {
		if n := math.Round(v * 1000); n/1000 == v {
			return appendMilli(dst, int64(n))
		}
	}
	abs := math.Abs(v)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	dst = strconv.AppendFloat(dst, v, fmt, -1, 64)
	if fmt == 'e' {
		// Two-digit negative exponents lose their leading zero, as in
		// encoding/json: 1e-07 becomes 1e-7.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendMilli writes n/1000 in decimal with trailing zeros trimmed.
func appendMilli(dst []byte, n int64) []byte {
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/1000, 10)
	if f := n % 1000; f != 0 {
		d := [4]byte{'.', byte('0' + f/100), byte('0' + f/10%10), byte('0' + f%10)}
		k := 4
		for d[k-1] == '0' {
			k--
		}
		dst = append(dst, d[:k]...)
	}
	return dst
}

func appendStringMap(dst []byte, m map[string]string) []byte {
	keys := make([]string, 0, 16)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, m[k])
	}
	return append(dst, '}')
}

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, and
// U+2028/U+2029 are escaped, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Fast path: printable ASCII needs no escaping.
	i := plainPrefixString(s)
	if i == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainPrefixString is plainPrefix for a string.
func plainPrefixString(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, bs := w^('"'*ones), w^('\\'*ones)
		if ((w-' '*ones)&^w|(q-ones)&^q|(bs-ones)&^bs|w)&highs != 0 {
			break
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}
