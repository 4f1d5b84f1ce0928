package httpd

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Guard protects every daemon's HTTP server. The zero value still bounds
// concurrent requests and refuses cross-site writes.
type Guard struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on every
	// path except Open.
	Token string
	// OtherTokens are accepted like Token (e.g. the ingest's grant token,
	// whose holder need not also hold Token). They count only when Token is
	// set.
	OtherTokens []string
	// Open lists the paths served without the token (default /healthz and
	// /readyz, for probes).
	Open []string
	// LoopbackHost refuses (403) a request whose Host is not a loopback
	// address or localhost: set it when the server listens on loopback only,
	// so that a web page that rebinds its own name to 127.0.0.1 cannot talk
	// to the daemon through the visitor's browser. [ForAddr] sets it.
	LoopbackHost bool
	// MaxInFlight bounds the requests served at once (default 256); one more
	// is answered 503 with Retry-After at once instead of queueing.
	MaxInFlight int
}

// ForAddr returns the guard for a server on addr with token: LoopbackHost
// when addr is loopback.
func ForAddr(addr, token string, otherTokens ...string) Guard {
	return Guard{Token: token, OtherTokens: otherTokens, LoopbackHost: addr != "" && IsLoopback(addr)}
}

// DefaultMaxInFlight is Guard.MaxInFlight's default.
const DefaultMaxInFlight = 256

// ErrExposed reports an HTTP listener beyond loopback without a token.
var ErrExposed = errors.New("listening beyond loopback needs a token")

// CheckExposure returns [ErrExposed], naming addr, when addr listens beyond
// loopback (a non-loopback IP, a host name other than localhost, or no host,
// which is every interface) and no token protects it, unless insecure says
// that this is wanted.
func CheckExposure(addr, token string, insecure bool) error {
	if addr == "" || token != "" || insecure || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("http %s: %w (set a token file, or pass --insecure-http to serve it open)", addr, ErrExposed)
}

// IsLoopback reports whether addr (host:port) listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Wrap returns h behind the guard: the in-flight bound, then the token, then
// the write rules. A write (any method but GET, HEAD and OPTIONS) is refused
// with 415 unless its Content-Type is JSON or NDJSON (or absent, as from a
// CLI), and with 403 when it carries an Origin other than the request's own
// host: a browser page on another site cannot post to a daemon on the
// machine, since it can send only "simple" requests without a preflight.
func (g Guard) Wrap(h http.Handler) http.Handler {
	open := g.Open
	if open == nil {
		open = []string{"/healthz", "/readyz"}
	}
	limit := g.MaxInFlight
	if limit <= 0 {
		limit = DefaultMaxInFlight
	}
	slots := make(chan struct{}, limit)
	tokens := [][]byte{[]byte(g.Token)}
	for _, o := range g.OtherTokens {
		if o != "" {
			tokens = append(tokens, []byte(o))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "too many requests in flight (limit "+strconv.Itoa(limit)+"); retry")
			return
		}
		if g.LoopbackHost && !IsLoopback(r.Host) {
			writeError(w, http.StatusForbidden, "host "+strconv.Quote(r.Host)+" refused: this server answers to loopback names only")
			return
		}
		if g.Token != "" && !isOpen(open, r.URL.Path) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !anyEqual([]byte(got), tokens) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="jetmon"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		if IsWrite(r.Method) {
			if code, msg := CheckWrite(r); code != 0 {
				writeError(w, code, msg)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// anyEqual compares got with every token in constant time.
func anyEqual(got []byte, tokens [][]byte) bool {
	match := 0
	for _, t := range tokens {
		match |= subtle.ConstantTimeCompare(got, t)
	}
	return match == 1
}

func isOpen(open []string, path string) bool { return slices.Contains(open, path) }

// IsWrite reports whether method changes state.
func IsWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// CheckWrite applies the write rules of [Guard.Wrap] to r: it returns 0 for
// an acceptable write, or the status and message to refuse it with.
func CheckWrite(r *http.Request) (int, string) {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return http.StatusForbidden, "cross-origin write refused: Origin " + strconv.Quote(origin) + " is not this server (" + r.Host + ")"
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (!JSONMediaType(mt) && !ProtobufMediaType(mt)) {
			return http.StatusUnsupportedMediaType, "Content-Type " + strconv.Quote(ct) + " refused: send application/json (or application/x-ndjson)"
		}
	}
	return 0, ""
}

// ProtobufMediaType reports whether mt (lower-case, without parameters) is
// protobuf, as OTLP/HTTP sends it. Like JSON it is not a type a browser may
// send cross-site without a preflight, so the write rules take it.
func ProtobufMediaType(mt string) bool {
	mt = strings.ToLower(mt)
	return mt == "application/x-protobuf" || mt == "application/protobuf"
}

// JSONMediaType reports whether mt (lower-case, without parameters) is JSON
// or newline-delimited JSON.
func JSONMediaType(mt string) bool {
	mt = strings.ToLower(mt)
	switch mt {
	case "application/json", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
