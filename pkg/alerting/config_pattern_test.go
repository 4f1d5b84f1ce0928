package alerting_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jetmon/jetmon/pkg/alerting"
)

func TestParsePatternAndReceiverErrors(t *testing.T) {
	src := `rules:
  - alert: Stuck
    kind: absence
    key: user_id
    first: {types: [validation.started]}
    within: 0s
    for: 10s
  - alert: Seq
    kind: sequence
    first: {types: ["system..error"], count: 5}
    then: {types: [health.component.failed], count: 2}
    within: 9000h
    max_keys: 99999999999
  - alert: Ratio
    kind: ratio
    numerator: {types: [validation.failed]}
    denominator: {types: []}
    window: 1m
    threshold: .inf
    match: {type: validation.failed}
route: {receiver: all}
receivers:
  - name: all
    slack: {webhook_url: {file: /a, env: B}}
    pagerduty: {url: "ftp://x"}
    email: {to: ["not an address"], from: a@b.c, smarthost: nohost, auth_username: u, require_tls: false}
    teams: {webhook_url: {env: T}, text: "{{ .Alerts "}
    webhook: {url: "http://x", body: "{{ end }}"}
`
	_, err := alerting.Parse("p.yaml", []byte(src))
	if _, ok := errors.AsType[*alerting.ConfigError](err); !ok {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`p.yaml:4: rules[0].key: "user_id" is not one of`,
		`p.yaml:2: rules[0].then: required for a absence rule`,
		`p.yaml:6: rules[0].within: a positive duration up to 168h0m0s is required`,
		`p.yaml:7: rules[0].for: not used by a absence rule`,
		`p.yaml:10: rules[1].first.types[0]:`,
		`p.yaml:10: rules[1].first.within: a positive duration up to 168h0m0s is required with count`,
		`p.yaml:11: rules[1].then: count and within are only for a sequence rule's first step`,
		`p.yaml:12: rules[1].within: a positive duration`,
		`p.yaml:13: rules[1].max_keys: must be between 1 and 10000000`,
		`p.yaml:17: rules[2].denominator.types: 1 to 32 event-type patterns required`,
		`p.yaml:19: rules[2].threshold: must be a finite number`,
		`p.yaml:20: rules[2].match: not used by a ratio rule`,
		`p.yaml:24: receivers[0].slack.webhook_url: set file or env, not both`,
		`p.yaml:25: receivers[0].pagerduty.routing_key: required`,
		`p.yaml:25: receivers[0].pagerduty.url: "ftp://x" is not an http(s) URL`,
		`p.yaml:26: receivers[0].email.to[0]: "not an address" is not an address`,
		`p.yaml:26: receivers[0].email.smarthost: "nohost" is not host:port`,
		`p.yaml:26: receivers[0].email.auth_password: required`,
		`p.yaml:26: receivers[0].email.require_tls: credentials are only sent over TLS`,
		`p.yaml:27: receivers[0].teams.text: template:`,
		`p.yaml:28: receivers[0].webhook.body: template:`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if t.Failed() {
		t.Log(err)
	}
}

// A rules file past the size limit is refused before it is parsed.
func TestParseRefusesHugeFile(t *testing.T) {
	big := "rules:\n" + strings.Repeat("  - {alert: A, field: p95, threshold: 1}\n", alerting.MaxRulesFileSize/40+1)
	_, err := alerting.Parse("big.yaml", []byte(big))
	if err == nil || !strings.Contains(err.Error(), "big.yaml: ") || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

// A number beyond float64 is refused with its line.
func TestParseRefusesOverflowingNumber(t *testing.T) {
	_, err := alerting.Parse("o.yaml", []byte("rules:\n  - alert: A\n    field: p95\n    threshold: 1e400\n"))
	if err == nil || !strings.Contains(err.Error(), "o.yaml:4: cannot unmarshal") {
		t.Fatalf("err = %v", err)
	}
}
