package events_test

import (
	"testing"

	"github.com/jetmon/jetmon/pkg/events"
)

func TestSubject(t *testing.T) {
	cases := []struct {
		typ    events.Type
		source string
		want   string
	}{
		{events.PhaseStart, "checkout", "performance.phase.start.checkout"},
		{events.SystemError, "svc.eu-1", "system.error.svc_eu-1"},
		{events.SystemError, "a b*>\t", "system.error.a_b___"},
		{events.SystemError, "", "system.error._"},
		{events.SystemError, "zürich", "system.error.zürich"},
	}
	for _, c := range cases {
		if got := events.Subject(c.typ, c.source); got != c.want {
			t.Errorf("Subject(%s, %q) = %q, want %q", c.typ, c.source, got, c.want)
		}
		if got := events.TypeOfSubject(c.want); got != c.typ {
			t.Errorf("TypeOfSubject(%q) = %q", c.want, got)
		}
	}
}

// TestFilterSubjectAgreesWithMatch checks that NATS subject matching of
// FilterSubject(pattern) against Subject(type, source) gives the same answer
// as Match(pattern, type), for every pattern and type pair.
func TestFilterSubjectAgreesWithMatch(t *testing.T) {
	patterns := []string{
		">", "*", "*.*", "*.*.*", "performance.>", "performance.*", "performance.*.start",
		"validation.*", "validation.>", "system.error", "health.component.*", "*.enabled", "monitoring.>",
		"system.error.>", "performance.phase.start.>", "*.>", "*.*.>",
	}
	for _, p := range patterns {
		filter := events.FilterSubject(p)
		for _, typ := range append(events.Types(), "performance", "system.error.extra") {
			subject := events.Subject(typ, "src")
			if got, want := natsMatch(filter, subject), events.Match(p, typ); got != want {
				t.Errorf("pattern %q: filter %q on %q = %v, Match = %v", p, filter, subject, got, want)
			}
		}
	}
}

// natsMatch is NATS subject matching, written from the NATS rules, so the
// test does not lean on events.Match.
func natsMatch(filter, subject string) bool {
	f, s := split(filter), split(subject)
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func split(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
