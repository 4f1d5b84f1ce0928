package events

import "strings"

// Subject returns the subject an event of type t from source travels on: the
// event type token for token, then the source as one more token. So
// `nats sub 'performance.>'` sees every performance event, and a source is
// something partitioning and permissions can hold on to.
func Subject(t Type, source string) string {
	return string(t) + "." + SubjectToken(source)
}

// SubjectOf returns [Subject] for ev.
func SubjectOf(ev Event) string {
	m := ev.Metadata()
	return Subject(m.Type, m.Source)
}

// SubjectToken turns s into one subject token: '.', '*', '>', whitespace and
// control characters become '_', and "" becomes "_".
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// FilterSubject returns the NATS subject filter that selects exactly the
// events whose type matches pattern (see [ValidatePattern]) among subjects
// made by [Subject]. The source token needs one more token in the filter: a
// pattern ending in ">" (one or more type tokens) becomes "*.>" at that place
// (one or more type tokens, then the source), any other pattern gets ".*".
func FilterSubject(pattern string) string {
	if pattern == ">" {
		return "*.>"
	}
	if p, ok := strings.CutSuffix(pattern, ".>"); ok {
		return p + ".*.>"
	}
	return pattern + ".*"
}

// TypeOfSubject returns the event type part of a subject made by [Subject].
func TypeOfSubject(subject string) Type {
	if i := strings.LastIndexByte(subject, '.'); i > 0 {
		return Type(subject[:i])
	}
	return Type(subject)
}
