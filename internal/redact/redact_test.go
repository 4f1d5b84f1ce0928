package redact_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jetmon/jetmon/internal/redact"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		gone           []string
	}{
		{"password and token", "http://user:pass@127.0.0.1:9000/hook?token=SECRET", "http://user:REDACTED@127.0.0.1:9000/hook?token=REDACTED", []string{"pass@", "SECRET"}},
		{"every query value", "https://h/x?a=1&sig=abc&X-Amz-Signature=def&flag", "https://h/x?a=REDACTED&sig=REDACTED&X-Amz-Signature=REDACTED&flag", []string{"abc", "def"}},
		{"fragment", "https://h/cb#access_token=tok", "https://h/cb#REDACTED", []string{"tok"}},
		{"slack path token", "https://hooks.slack.com/services/T0001/B0001/Xk3kfj39sdkfj3kSDKfj3k2d", "https://hooks.slack.com/services/T0001/B0001/REDACTED", []string{"Xk3kfj39"}},
		{"user without password", "http://user@h/p", "http://user@h/p", nil},
		{"plain", "http://127.0.0.1:9093/api/v2/alerts", "http://127.0.0.1:9093/api/v2/alerts", nil},
		{"unparsable", "http://user:pa ss@h:port/x?token=SECRET", "", []string{"pa ss", "SECRET"}},
		{"escaped password", "nats://u:p%40ss@h:4222", "nats://u:REDACTED@h:4222", []string{"p%40ss"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redact.URL(tc.in)
			if tc.want != "" && got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, g := range tc.gone {
				if strings.Contains(got, g) {
					t.Errorf("URL(%q) = %q still holds %q", tc.in, got, g)
				}
			}
		})
	}
}

func TestString(t *testing.T) {
	in := `POST "http://u:pw1234@h/hook?token=SECRET": 500 Internal Server Error: bad key hunter22, see https://h/x?k=v.`
	got := redact.String(in, "hunter22")
	for _, g := range []string{"pw1234", "SECRET", "hunter22", "k=v"} {
		if strings.Contains(got, g) {
			t.Errorf("String = %q still holds %q", got, g)
		}
	}
	if !strings.Contains(got, `"http://u:REDACTED@h/hook?token=REDACTED": 500`) || !strings.HasSuffix(got, "k=REDACTED.") {
		t.Errorf("String = %q; the text around the URLs changed", got)
	}
	if got := redact.String("short secret ab", "ab"); got != "short secret ab" {
		t.Errorf("a 2-byte secret was masked: %q", got)
	}
}

func TestErrorFromNetHTTP(t *testing.T) {
	// A real *url.Error: net/http strips the password but keeps the query.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://user:pass@127.0.0.1:1/hook?token=SECRET", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("posting to port 1 succeeded")
	}
	red := redact.Error(fmt.Errorf("notify: %w", err))
	if s := red.Error(); strings.Contains(s, "SECRET") || strings.Contains(s, "pass") {
		t.Errorf("redacted error %q still holds a credential", s)
	}
	if _, ok := errors.AsType[*url.Error](red); !ok {
		t.Errorf("the redacted error lost its *url.Error")
	}
	if redact.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	plain := errors.New("nothing secret")
	if got := redact.Error(plain); got != plain { //nolint:errorlint // the very same value, not one wrapping it
		t.Error("an error without credentials was wrapped")
	}
}

func FuzzURL(f *testing.F) {
	f.Add("http://user:pass@127.0.0.1:9000/hook?token=SECRET#frag")
	f.Add("::not a url")
	f.Fuzz(func(t *testing.T, s string) {
		got := redact.URL(s)
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			return
		}
		if p, ok := u.User.Password(); ok && len(p) >= 4 && p != redact.Mask && strings.Contains(got, ":"+p+"@") {
			t.Errorf("URL(%q) = %q keeps the password", s, got)
		}
	})
}

func ExampleURL() {
	fmt.Println(redact.URL("https://bot:hunter2@example.com/hook?token=abc&team=ops"))
	// Output: https://bot:REDACTED@example.com/hook?token=REDACTED&team=REDACTED
}

func TestSecrets(t *testing.T) {
	got := redact.Secrets("http://u:p%40ssword@h/services/T1/B1/Xk3kfj39sdkfj3kSDKfj3k2d?token=SECRET&x=ab")
	want := map[string]bool{"p@ssword": true, "p%40ssword": true, "Xk3kfj39sdkfj3kSDKfj3k2d": true, "SECRET": true}
	for _, s := range got {
		delete(want, s)
		if s == "ab" {
			t.Errorf("Secrets returned the 2-byte value %q", s)
		}
	}
	if len(want) > 0 {
		t.Errorf("Secrets = %q; missing %v", got, want)
	}
	body := redact.String("echo: u:p@ssword SECRET", redact.Secrets("http://u:p%40ssword@h/?token=SECRET")...)
	if strings.Contains(body, "ssword") || strings.Contains(body, "SECRET") {
		t.Errorf("String with Secrets = %q", body)
	}
}
