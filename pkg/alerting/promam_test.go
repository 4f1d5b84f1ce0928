package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetmon/jetmon/internal/testutil"
	"github.com/jetmon/jetmon/pkg/alerting"
)

// startPrometheusAlertmanager runs the real Prometheus Alertmanager (Debian
// package prometheus-alertmanager) on a loopback port. Without it the test
// skips, except under CI=true, where it fails.
func startPrometheusAlertmanager(t *testing.T) string {
	t.Helper()
	bin := testutil.Tool(t, "apt-get install prometheus-alertmanager", "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.CommandContext(context.Background(), bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	testutil.WaitFor(t, 20*time.Second, func() bool {
		resp, err := testutil.Get(t, url+"/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "prometheus-alertmanager ready")
	return url
}

type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, url string) []gettableAlert {
	t.Helper()
	resp, err := testutil.Get(t, url+"/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var as []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

func TestForwardToPrometheusAlertmanager(t *testing.T) {
	am := startPrometheusAlertmanager(t)
	cfg, err := alerting.Parse("am.yaml", []byte(fmt.Sprintf(`
rules:
  - alert: CheckoutSlow
    field: p95
    threshold: 250
    labels: {severity: page}
    annotations: {summary: "p95 is {{ .Value }} ms"}
route: {receiver: am, group_wait: 0s, group_interval: 1s}
receivers:
  - name: am
    alertmanager: {url: %q}
`, am)))
	if err != nil {
		t.Fatal(err)
	}
	svc, ctx := runService(t, alerting.Options{Config: cfg, Instance: "t"})

	if err := svc.Observe(ctx, window("checkout", "charge", 400)); err != nil {
		t.Fatal(err)
	}
	var got []gettableAlert
	testutil.WaitFor(t, 10*time.Second, func() bool { got = amAlerts(t, am); return len(got) == 1 }, "the alert in Alertmanager")
	a := got[0]
	if a.Labels["alertname"] != "CheckoutSlow" || a.Labels["source"] != "checkout" || a.Labels["severity"] != "page" ||
		a.Annotations["summary"] != "p95 is 400 ms" || a.Status.State != "active" {
		t.Fatalf("alert as Alertmanager sees it: %+v", a)
	}
	if err := svc.Observe(ctx, window("checkout", "charge", 100)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool {
		got = amAlerts(t, am)
		return len(got) == 0 || (!got[0].EndsAt.IsZero() && got[0].EndsAt.Before(time.Now().Add(time.Second)))
	}, "the alert resolved in Alertmanager")
}
