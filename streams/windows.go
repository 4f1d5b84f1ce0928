package streams

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/jetmon/jetmon/pkg/events"
)

// Windows is the stream that keeps every aggregated window a second time,
// under a subject that names its series ([WindowSubject]), so that the
// history of one series is read with a server-side subject filter instead of
// scanning every window of every series.
const Windows = "WINDOWS"

// WindowsPrefix starts the subject of every window in [Windows].
const WindowsPrefix = "windows."

// SeriesDigest identifies a series (aggregated event type, source, operation
// or metric) in 32 hex digits: a digest, so that any operation name makes one
// subject token.
func SeriesDigest(aggregated events.Type, source, name string) string {
	h := sha256.New()
	for _, s := range []string{string(aggregated), source, name} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// WindowSubject returns the subject a window of the series is stored under
// in [Windows]: windows.<source token>.<series digest>. The filter
// windows.<source token>.* selects the windows of one source.
func WindowSubject(aggregated events.Type, source, name string) string {
	return WindowsPrefix + events.SubjectToken(source) + "." + SeriesDigest(aggregated, source, name)
}
