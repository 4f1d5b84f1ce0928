package alerting

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Labels identify an alert: alertname, the rule's labels and the series'
// labels (source, operation, metric, component, ...).
type Labels map[string]string

// Fingerprint is a stable digest of the labels (hex, 16 characters).
func (l Labels) Fingerprint() string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(l)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(l[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// String renders the labels as {a="1", b="2"}, sorted.
func (l Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(l)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}

// Matcher tests one label. A value written "=~re" is an anchored regular
// expression, "!=v" is inequality, "!~re" a negated expression; any other
// value is an exact match. A missing label has the value "".
type Matcher struct {
	Name, Value string
	Op          string // "=", "!=", "=~", "!~"
	re          *regexp.Regexp
}

// Matches reports whether l satisfies the matcher.
func (m *Matcher) Matches(l Labels) bool {
	v := l[m.Name]
	switch m.Op {
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	case "!~":
		return !m.re.MatchString(v)
	}
	return v == m.Value
}

func (m *Matcher) String() string { return m.Name + m.Op + fmt.Sprintf("%q", m.Value) }

// Matchers match when every matcher does; none match everything.
type Matchers []*Matcher

// NewMatchers builds matchers from a name → value map (see [Matcher]).
func NewMatchers(spec map[string]string) (Matchers, error) {
	var ms Matchers
	for _, name := range slices.Sorted(maps.Keys(spec)) {
		m, err := NewMatcher(name, spec[name])
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// NewMatcher returns the matcher of name and value (see [Matcher]).
func NewMatcher(name, value string) (*Matcher, error) {
	if !labelName.MatchString(name) {
		return nil, fmt.Errorf("%q is not a label name", name)
	}
	m := &Matcher{Name: name, Op: "=", Value: value}
	for _, op := range []string{"=~", "!~", "!="} {
		if strings.HasPrefix(value, op) {
			m.Op, m.Value = op, value[len(op):]
			break
		}
	}
	if m.Op == "=~" || m.Op == "!~" {
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return nil, fmt.Errorf("matcher %s: %q is not a regular expression: %w", name, m.Value, err)
		}
		m.re = re
	}
	return m, nil
}

// Matches reports whether every matcher matches l.
func (ms Matchers) Matches(l Labels) bool {
	for _, m := range ms {
		if !m.Matches(l) {
			return false
		}
	}
	return true
}

// probes are label values no deliberate silence would match all of.
var probes = []string{"x", "0", "Slow", "jetmon", "a value with spaces", "ünïcødé", strings.Repeat("z", 300)}

// matchAll reports matchers that match every alert: none at all, or only
// regular expressions that match any value (".*"), or, for alertname,
// which every alert has, any non-empty value (".+").
func (ms Matchers) matchAll() bool {
	for _, m := range ms {
		if m.Op == "=" || m.Op == "!=" {
			return false
		}
		if m.Name != "alertname" && !m.Matches(Labels{}) {
			return false
		}
		for _, p := range probes {
			if !m.Matches(Labels{m.Name: p}) {
				return false
			}
		}
	}
	return true
}

// ParseMatcher parses "name=value", "name!=value", "name=~re" or
// "name!~re", as on the command line.
func ParseMatcher(s string) (*Matcher, error) {
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return nil, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	name, rest := s[:i], s[i:]
	switch {
	case strings.HasPrefix(rest, "=~"), strings.HasPrefix(rest, "!~"), strings.HasPrefix(rest, "!="):
		return NewMatcher(name, rest)
	case strings.HasPrefix(rest, "="):
		return NewMatcher(name, rest[1:])
	}
	return nil, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
}
