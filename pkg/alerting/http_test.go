package alerting_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetmon/jetmon/pkg/alerting"
)

// apiServer runs a service with its API mounted on a real HTTP server.
func apiServer(t *testing.T, o alerting.Options) *httptest.Server {
	t.Helper()
	cfg, err := alerting.ParseEmbedded("api.yaml", []byte(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
route: {receiver: log}
receivers:
  - name: log
    log: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.Instance = cfg, "api"
	svc, _ := runService(t, o)
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAPIWritesRefuseCrossSiteAndNonJSON(t *testing.T) {
	srv := apiServer(t, alerting.Options{})
	self := srv.URL // the page a same-origin browser request comes from
	ok := `{"matchers":{"alertname":"Slow"},"duration":"1h"}`
	for _, tc := range []struct {
		name, method, path, body string
		headers                  map[string]string
		want                     int
		why                      string
	}{
		{
			"the finding: text/plain from a foreign page, everything for 10 years", "POST", "/api/v1/silences", `{"matchers":{"alertname":"=~.*"},"duration":"87600h"}`,
			map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"},
			403, "cross-origin",
		},
		{"text/plain without Origin", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "text/plain"}, 415, "application/json"},
		{"form", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"JSON from a foreign page", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, 403, "cross-origin"},
		{"JSON from another port of the same host", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403, "cross-origin"},
		{"Sec-Fetch-Site cross-site", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"},
		{"null Origin", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/json", "Origin": "null"}, 403, "cross-origin"},
		{"no Content-Type from a browser", "POST", "/api/v1/silences", ok, map[string]string{"Origin": self}, 415, "application/json"},
		{"DELETE from a foreign page", "DELETE", "/api/v1/silences/x", "", map[string]string{"Origin": "http://evil.example"}, 403, "cross-origin"},
		{"JSON from the same origin", "POST", "/api/v1/silences", ok, map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": self, "Sec-Fetch-Site": "same-origin"}, 200, `"id"`},
		{"no Content-Type from a CLI", "POST", "/api/v1/silences", ok, nil, 200, `"id"`},
		{"match-anything regex", "POST", "/api/v1/silences", `{"matchers":{"alertname":"=~.*"},"duration":"1h"}`, map[string]string{"Content-Type": "application/json"}, 400, "must not match every alert"},
		{"match-anything regexes only", "POST", "/api/v1/silences", `{"matchers":{"alertname":"=~.+","team":"=~.*|x"},"duration":"1h"}`, map[string]string{"Content-Type": "application/json"}, 400, "must not match every alert"},
		{"no matchers", "POST", "/api/v1/silences", `{"matchers":{},"duration":"1h"}`, map[string]string{"Content-Type": "application/json"}, 400, "at least one matcher"},
		{"a regex that names something", "POST", "/api/v1/silences", `{"matchers":{"team":"=~pay.*"},"duration":"1h"}`, map[string]string{"Content-Type": "application/json"}, 200, `"id"`},
		{"ten years", "POST", "/api/v1/silences", `{"matchers":{"alertname":"Slow"},"duration":"87600h"}`, map[string]string{"Content-Type": "application/json"}, 400, "silence too long"},
		{"thirty days", "POST", "/api/v1/silences", `{"matchers":{"alertname":"Slow"},"duration":"719h"}`, map[string]string{"Content-Type": "application/json"}, 200, `"id"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tc.want || !strings.Contains(body.String(), tc.why) {
				t.Errorf("%s %s: %d %s; want %d mentioning %q", tc.method, tc.path, resp.StatusCode, body.String(), tc.want, tc.why)
			}
		})
	}
}

func TestMaxSilenceIsConfigurable(t *testing.T) {
	srv := apiServer(t, alerting.Options{MaxSilence: 2 * time.Hour})
	post := func(dur string) (int, string) {
		body, _ := json.Marshal(alerting.SilenceRequest{Matchers: map[string]string{"alertname": "Slow"}, Duration: dur})
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/api/v1/silences", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post("3h"); code != 400 || !strings.Contains(body, "limit of 2h0m0s") {
		t.Errorf("3h silence with a 2h limit: %d %s", code, body)
	}
	if code, body := post("90m"); code != 200 {
		t.Errorf("90m silence with a 2h limit: %d %s", code, body)
	}
}
