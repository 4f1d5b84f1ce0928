package httpd_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/httpd"
	"github.com/jetmon/jetmon/internal/testutil"
)

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		insecure    bool
		exposed     bool
	}{
		{"127.0.0.1:9100", "", false, false},
		{"localhost:9100", "", false, false},
		{"[::1]:9100", "", false, false},
		{"127.0.0.2:80", "", false, false},
		{":9100", "", false, true},
		{"0.0.0.0:9100", "", false, true},
		{"[::]:9100", "", false, true},
		{"10.1.2.3:9100", "", false, true},
		{"example.com:9100", "", false, true},
		{"0.0.0.0:9100", "s3cret", false, false},
		{"0.0.0.0:9100", "", true, false},
		{"", "", false, false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := httpd.CheckExposure(tc.addr, tc.token, tc.insecure)
			if got := errors.Is(err, httpd.ErrExposed); got != tc.exposed {
				t.Fatalf("CheckExposure(%q, token %t, insecure %t) = %v, want exposed=%t", tc.addr, tc.token != "", tc.insecure, err, tc.exposed)
			}
			if tc.exposed && !strings.Contains(err.Error(), tc.addr) {
				t.Errorf("error %q does not name the address", err)
			}
		})
	}
}

func serve(t *testing.T, h http.Handler, lim httpd.Limits) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- httpd.ServeLimits(ctx, "127.0.0.1:0", h, func(a net.Addr) { addrc <- a }, lim) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return ""
}

func do(t *testing.T, method, url, ct, token, origin, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestGuardTokenAndWrites(t *testing.T) {
	var served int
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		served++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	base := serve(t, httpd.Guard{Token: "tok", OtherTokens: []string{"", "grant"}}.Wrap(h), httpd.DefaultLimits)
	for _, tc := range []struct {
		name, method, path, ct, token, origin string
		want                                  int
	}{
		{"probe open", "GET", "/healthz", "", "", "", 204},
		{"ready open", "GET", "/readyz", "", "", "", 204},
		{"read needs token", "GET", "/api/v1/alerts", "", "", "", 401},
		{"wrong token", "GET", "/metrics", "", "nope", "", 401},
		{"read with token", "GET", "/metrics", "", "tok", "", 204},
		{"read with the other token", "GET", "/metrics", "", "grant", "", 204},
		{"empty token", "GET", "/metrics", "", " ", "", 401},
		{"json write", "POST", "/v1/events", "application/json", "tok", "", 204},
		{"ndjson write", "POST", "/v1/events", "application/x-ndjson; charset=utf-8", "tok", "", 204},
		{"cli write without type", "POST", "/v1/events", "", "tok", "", 204},
		{"otlp protobuf write", "POST", "/v1/traces", "application/x-protobuf", "tok", "", 204},
		{"form write", "POST", "/v1/events", "application/x-www-form-urlencoded", "tok", "", 415},
		{"text write", "POST", "/api/v1/silences", "text/plain", "tok", "", 415},
		{"multipart write", "POST", "/api/v1/silences", "multipart/form-data; boundary=x", "tok", "", 415},
		{"foreign origin", "POST", "/api/v1/silences", "application/json", "tok", "http://evil.example", 403},
		{"null origin", "POST", "/api/v1/silences", "application/json", "tok", "null", 403},
		{"same origin", "POST", "/api/v1/silences", "application/json", "tok", base, 204},
		{"foreign origin delete", "DELETE", "/api/v1/silences/x", "", "tok", "http://evil.example", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			before := served
			mu.Unlock()
			if got := do(t, tc.method, base+tc.path, tc.ct, tc.token, tc.origin, `{"a":1}`); got != tc.want {
				t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, got, tc.want)
			}
			mu.Lock()
			reached := served > before
			mu.Unlock()
			if reached != (tc.want == 204) {
				t.Errorf("handler reached = %t for status %d", reached, tc.want)
			}
		})
	}
}

// A page that rebinds its name to 127.0.0.1 sends its own name as Host (and
// as Origin, so the write rules alone would let it through).
func TestGuardRefusesForeignHostOnLoopback(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	base := serve(t, httpd.ForAddr("127.0.0.1:0", "").Wrap(h), httpd.DefaultLimits)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"", 204}, // the client's own: 127.0.0.1:port
		{"localhost:9100", 204},
		{"[::1]:9100", 204},
		{"evil.example:9100", 403},
		{"127.0.0.1.evil.example", 403},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/events", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if tc.host != "" {
			req.Host = tc.host
			req.Header.Set("Origin", "http://"+tc.host)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q: HTTP %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
	}
	if g := httpd.ForAddr("0.0.0.0:9100", "tok"); g.LoopbackHost {
		t.Error("ForAddr(0.0.0.0) checks the Host")
	}
}

func TestGuardBoundsRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	base := serve(t, httpd.Guard{MaxInFlight: 2}.Wrap(h), httpd.DefaultLimits)
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() { codes <- do(t, "GET", base+"/x", "", "", "", "") })
	}
	<-entered
	<-entered
	if got := do(t, "GET", base+"/x", "", "", "", ""); got != http.StatusServiceUnavailable {
		t.Fatalf("third request while two are in flight = %d, want 503", got)
	}
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusNoContent {
			t.Errorf("held request = %d, want 204", c)
		}
	}
	if got := do(t, "GET", base+"/x", "", "", "", ""); got != http.StatusNoContent {
		t.Errorf("after the others finished = %d, want 204", got)
	}
}

// A client that trickles its body is cut off at ReadTimeout: slow clients
// cannot hold connections open.
func TestSlowBodyIsCutOff(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	lim := httpd.DefaultLimits
	lim.ReadTimeout, lim.ReadHeaderTimeout = 500*time.Millisecond, 500*time.Millisecond
	base := serve(t, h, lim)
	const conns = 20
	var wg sync.WaitGroup
	closedAt := make(chan time.Duration, conns)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(t.Context(), "tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = c.Close() }()
			_, _ = io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
			// One byte every 100 ms; the server must give up long before the
			// 100 s this would take.
			for range 1000 {
				if _, err := c.Write([]byte{' '}); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, _ := c.Read(make([]byte, 512)); n > 0 {
					break // the server answered (and will close)
				}
				if time.Since(start) > 20*time.Second {
					t.Error("connection still held after 20 s")
					return
				}
			}
			closedAt <- time.Since(start)
		})
	}
	wg.Wait()
	close(closedAt)
	n := 0
	for range closedAt {
		n++
	}
	if n != conns {
		t.Fatalf("%d of %d slow connections were cut off", n, conns)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { return do(t, "POST", base+"/v1/events", "application/json", "", "", "{}") == 204 }, "a normal request served")
}
