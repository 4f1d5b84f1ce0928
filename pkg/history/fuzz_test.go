package history_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/history"
)

// FuzzParseTime: any input is a time or an ErrBadQuery, never a panic.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "now-24h", "now--1h", "2026-12-01T00:00:00Z", "1764547200", "1e300", "NaN", "-1", "now-9999999h", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := history.ParseTime(s, now); err != nil && !errors.Is(err, history.ErrBadQuery) {
			t.Fatalf("%q: %v is not ErrBadQuery", s, err)
		}
	})
}

// FuzzWindowsQuery: any query string is answered 400 or read within the
// bounds; the reader is over a server with no windows, so only the
// parameter checks can refuse.
func FuzzWindowsQuery(f *testing.F) {
	r, _ := setup(f)
	srv := httptest.NewServer(handler(r, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	f.Cleanup(srv.Close)
	for _, s := range []string{"from=now-1h&step=1s", "from=now-720h&step=1s", "step=0", "source=a.>", "from=now-1h&to=now-2h", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if _, err := url.ParseQuery(q); err != nil {
			return
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/history/windows?"+q, nil)
		if err != nil {
			return // not a URL a client can send
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // a query the client refuses to send
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %d", q, resp.StatusCode)
		}
	})
}
