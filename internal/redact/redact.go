// Package redact removes credentials from URLs, strings and errors before
// they reach a log line, an HTTP answer or a metric.
//
// What it removes from a URL: the password of its userinfo, the value of
// every query parameter (any name may carry a token: token, sig, key,
// X-Amz-Signature, code, ...), the fragment (OAuth puts tokens there), and
// path segments that look like generated secrets (a run of 20 or more
// letters, digits, '-' or '_' mixing letters and digits, as in Slack and
// Discord webhook URLs). Scheme, user name, host, port, the rest of the path
// and the query parameter names stay, so a log line still says where a
// request went. The functions are safe for concurrent use.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every removed value.
const Mask = "REDACTED"

// URL returns raw with its credentials masked (see the package comment).
// A string that does not parse as a URL is scrubbed like [String].
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return scrubLoose(raw)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		u.RawQuery = maskQuery(u.RawQuery)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	if u.Path != "" {
		segs := strings.Split(u.Path, "/")
		changed := false
		for i, s := range segs {
			if secretLooking(s) {
				segs[i], changed = Mask, true
			}
		}
		if changed {
			u.Path, u.RawPath = strings.Join(segs, "/"), ""
		}
	}
	return u.String()
}

// Secrets returns the credentials [URL] masks in raw — the password, the
// query values, the fragment and token-like path segments — for [String] and
// [Error] to mask wherever else they show up, e.g. in a server's answer that
// echoes the request. Values shorter than 4 bytes are left out.
func Secrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v)
			if esc := url.QueryEscape(v); esc != v {
				out = append(out, esc)
			}
		}
	}
	if u.User != nil {
		p, _ := u.User.Password()
		add(p)
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	add(u.Fragment)
	for s := range strings.SplitSeq(u.Path, "/") {
		if secretLooking(s) {
			add(s)
		}
	}
	return out
}

// maskQuery keeps the parameter names of a raw query and masks the values,
// in their order.
func maskQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok {
			parts[i] = name + "=" + Mask
		} else if p != "" && secretLooking(p) {
			parts[i] = Mask
		}
	}
	return strings.Join(parts, "&")
}

// secretLooking reports a path segment that looks like a generated token.
func secretLooking(s string) bool {
	if len(s) < 20 {
		return false
	}
	letter, digit := false, false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '=' || c == '%':
		default:
			return false
		}
	}
	return letter && digit
}

// urlPattern finds URLs inside free text: a scheme, "://", and everything up
// to white space or a quote.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// looseUserinfo and looseQuery scrub what [url.Parse] refused.
var (
	looseUserinfo = regexp.MustCompile(`(://[^/@\s:]*):.*@`) // up to the last @: masking too much is fine
	looseQuery    = regexp.MustCompile(`([?&][^=&#\s]*)=[^&#\s]*`)
	looseFragment = regexp.MustCompile(`#\S*`)
)

func scrubLoose(s string) string {
	s = looseUserinfo.ReplaceAllString(s, "${1}:"+Mask+"@")
	s = looseQuery.ReplaceAllString(s, "${1}="+Mask)
	return looseFragment.ReplaceAllString(s, "#"+Mask)
}

// String returns s with every URL in it redacted like [URL] and every
// occurrence of each non-empty secret replaced by [Mask]. Secrets shorter
// than 4 bytes are ignored: masking them would mangle the text and hide
// nothing.
func String(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	if strings.Contains(s, "://") {
		s = urlPattern.ReplaceAllStringFunc(s, func(m string) string {
			// A URL quoted by %q or ending a sentence keeps its punctuation.
			trail := len(m) - len(strings.TrimRight(m, ".,;:)]}"))
			return URL(m[:len(m)-trail]) + m[len(m)-trail:]
		})
	}
	return s
}

// Error returns err with its message redacted like [String]; nil stays nil.
// The result unwraps to err, so [errors.Is] and [errors.As] still see the
// original — whose own message is not redacted: print the result, not what
// errors.As finds. net/http's *url.Error, which strips only the password,
// is covered: its query values and the given secrets are masked too.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := String(msg, secrets...)
	if red == msg {
		return err
	}
	return &redacted{msg: red, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
