package alerting_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// TestReceiverCredentialsNeverLogged: webhook and Alertmanager receivers
// whose URLs carry a password and a token, one answering 500 (echoing the
// request URL in its body) and one refusing connections; the logs, at debug
// level, name the failures but hold neither the password nor the token.
func TestReceiverCredentialsNeverLogged(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		http.Error(w, "boom at "+r.URL.String()+" for "+u+":"+p, http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	host := strings.TrimPrefix(failing.URL, "http://")
	cfg, err := alerting.ParseEmbedded("r.yaml", []byte(fmt.Sprintf(`
rules:
  - alert: Slow
    field: p95
    threshold: 250
route:
  receiver: hooks
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  routes:
    - {receiver: hooks, continue: true}
    - {receiver: gone, continue: true}
    - {receiver: am}
receivers:
  - name: hooks
    webhook: {url: "http://user:pass@%s/hook?token=SECRET"}
  - name: gone
    webhook: {url: "http://user:pass@%s/hook?token=SECRET"}
  - name: am
    alertmanager: {url: "http://admin:pass@%s/?token=SECRET"}
`, host, closed, host)))
	if err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	log := zerolog.New(out).Level(zerolog.DebugLevel)
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t", RetryFor: 500 * time.Millisecond, Logger: &log})
	if err := svc.Observe(ctx, window("checkout", "charge", 400)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, func() bool {
		s := out.String()
		return strings.Count(s, "notification failed") >= 3
	}, "the failures to be logged")
	time.Sleep(time.Second)
	logs := out.String()
	for _, secret := range []string{"pass", "SECRET"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "/hook?token=REDACTED") {
		t.Errorf("the logs do not say which URL failed:\n%s", logs)
	}
}
