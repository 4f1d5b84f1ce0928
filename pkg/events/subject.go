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

// FilterSubject returns the subject filter that selects the events whose type
// matches pattern (see [ValidatePattern]), given subjects made by [Subject]:
// a pattern ending in ">" already covers the source token; any other gets one
// "*" for it, so "*" keeps meaning exactly one event-type token.
func FilterSubject(pattern string) string {
	if pattern == ">" || strings.HasSuffix(pattern, ".>") {
		return pattern
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
