package events

import (
	"errors"
	"strings"
)

// ErrInvalidPattern reports a subscription pattern that breaks the NATS
// wildcard rules.
var ErrInvalidPattern = errors.New("invalid subscription pattern")

// ValidatePattern checks a subscription pattern. Patterns follow NATS subject
// rules applied to event types: tokens are separated by '.', "*" as a whole
// token matches exactly one token, and ">" as the last token matches one or
// more trailing tokens. Errors wrap [ErrInvalidPattern] and quote the pattern.
func ValidatePattern(p string) error {
	if p == "" {
		return patternError(p, "empty")
	}
	rest := p
	for {
		tok, tail, more := strings.Cut(rest, ".")
		switch {
		case tok == "":
			return patternError(p, "empty token")
		case tok == ">" && more:
			return patternError(p, "'>' must be the last token")
		case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
			return patternError(p, "wildcards must be whole tokens")
		case strings.ContainsAny(tok, " \t\r\n"):
			return patternError(p, "whitespace in token")
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

func patternError(p, why string) error {
	return &patternErr{pattern: p, why: why}
}

type patternErr struct{ pattern, why string }

func (e *patternErr) Error() string {
	return "invalid subscription pattern " + quote(e.pattern) + ": " + e.why
}

func (e *patternErr) Is(target error) bool { return target == ErrInvalidPattern }

// Match reports whether event type t matches pattern p under the rules of
// [ValidatePattern]. An invalid pattern matches nothing. Match does not
// allocate.
func Match(p string, t Type) bool {
	s := string(t)
	for {
		ptok, prest, pmore := strings.Cut(p, ".")
		if ptok == ">" {
			return !pmore && s != ""
		}
		stok, srest, smore := strings.Cut(s, ".")
		if ptok == "" || stok == "" || (ptok != "*" && ptok != stok) {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		p, s = prest, srest
	}
}
