package alerting_test

import (
	"strings"
	"testing"

	"github.com/jetmon/jetmon/pkg/alerting"
)

func TestParseValid(t *testing.T) {
	cfg, err := alerting.Parse("rules.yaml", []byte(`
rules:
  - alert: CheckoutSlow
    match: {type: performance.operation.complete, source: checkout, operation: charge}
    field: p95
    threshold: 250
    recover: 200
    for: 30s
    keep_firing_for: 1m
    labels: {severity: page}
    annotations:
      summary: "{{ .Labels.operation }} p95 is {{ .Value }} ms"
  - alert: ComponentDown
    kind: health
  - alert: Errors
    kind: rate
    match: {type: system.error}
    window: 1m
    threshold: 10
  - alert: LatencyAnomaly
    kind: anomaly
    field: p99
route:
  receiver: ops
  group_by: [alertname]
receivers:
  - name: ops
    webhook: {url: "http://127.0.0.1:9999/hook"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 4 || cfg.Rules[1].Status != "failed" || cfg.Rules[1].Match.Type != "health.component.*" {
		t.Fatalf("defaults not applied: %+v", cfg.Rules[1])
	}
	if a := cfg.Rules[3].Anomaly; a == nil || a.K != 3 || a.MinSamples != 20 || a.Method != "mad" {
		t.Fatalf("anomaly defaults: %+v", a)
	}
}

func TestParseNamesFileLineAndField(t *testing.T) {
	src := `rules:
  - alert: Slow
    field: p42
    threshold: 250
  - alert: Slow
    kind: rate
    match: {type: system.error}
    threshold: 5
  - alert: Bad
    op: "=="
    field: p95
    threshold: 10
    recover: 20
    annotations:
      summary: "{{ .Labels.x "
route:
  receiver: nobody
receivers:
  - name: ops
    webhook: {url: "ftp://x"}
`
	_, err := alerting.Parse("r.yaml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`r.yaml:3: rules[0].field: "p42" is not one of`,
		`r.yaml:5: rules[1].alert: alert "Slow" is already defined by rules[0]`,
		`r.yaml:5: rules[1].window: a positive window is required`,
		`r.yaml:10: rules[2].op: "==" is not one of`,
		`r.yaml:15: rules[2].annotations.summary: template:`,
		`r.yaml:17: route.receiver: no receiver is named "nobody"`,
		`r.yaml:20: receivers[0].webhook.url: "ftp://x" is not an http(s) URL`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestParseRejectsUnknownFieldsAndBadDurations(t *testing.T) {
	_, err := alerting.Parse("r.yaml", []byte("rules:\n  - alert: A\n    field: p95\n    treshold: 3\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:4: field treshold not found") {
		t.Fatalf("err = %v", err)
	}
	_, err = alerting.Parse("r.yaml", []byte("rules:\n  - alert: A\n    field: p95\n    threshold: 3\n    for: soon\n"))
	if err == nil || !strings.Contains(err.Error(), `r.yaml:5: "soon" is not a duration`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := alerting.Parse("r.yaml", nil); err == nil || !strings.Contains(err.Error(), "r.yaml") {
		t.Fatalf("empty file: %v", err)
	}
}

func TestMatchers(t *testing.T) {
	for _, c := range []struct {
		spec string
		l    alerting.Labels
		want bool
	}{
		{"severity=page", alerting.Labels{"severity": "page"}, true},
		{"severity=page", alerting.Labels{"severity": "ticket"}, false},
		{"severity!=page", alerting.Labels{}, true},
		{"source=~check.*", alerting.Labels{"source": "checkout"}, true},
		{"source=~check", alerting.Labels{"source": "checkout"}, false},
		{"source!~check.*", alerting.Labels{"source": "cart"}, true},
	} {
		m, err := alerting.ParseMatcher(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Matches(c.l); got != c.want {
			t.Errorf("%s on %v = %v", c.spec, c.l, got)
		}
	}
	if _, err := alerting.ParseMatcher("nope"); err == nil {
		t.Error("bad matcher accepted")
	}
}
