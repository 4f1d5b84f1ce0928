package events

import (
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError reports input that is not the JSON the wire format requires. It
// matches [ErrMalformed].
type SyntaxError struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "malformed event payload at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Is makes every SyntaxError match [ErrMalformed].
func (e *SyntaxError) Is(target error) bool { return target == ErrMalformed }

// maxDepth bounds the nesting of values the decoder will skip over, so hostile
// input cannot exhaust the stack.
const maxDepth = 64

// scanner is a small, allocation-averse JSON reader for the flat objects of
// the wire format. It never panics on any input: every index is bounds-checked.
type scanner struct {
	data []byte
	str  string // data as a string, when set: unescaped values are sliced from it without allocating
	pos  int
	buf  []byte // scratch space for unescaping strings
}

// stringValue consumes a string and returns it as a Go string. Strings
// without escapes share the memory of s.str.
func (s *scanner) stringValue() (string, error) {
	s.ws()
	start := s.pos + 1
	b, err := s.stringBytes()
	if err != nil {
		return "", err
	}
	if s.str != "" && len(b) > 0 && &b[0] == &s.data[start] {
		return s.str[start : start+len(b)], nil
	}
	return string(b), nil
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Offset: s.pos, Msg: msg} }

func (s *scanner) ws() {
	for s.pos < len(s.data) && s.data[s.pos] <= ' ' {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// plainPrefix returns how many leading bytes of b are plain: printable ASCII
// other than '"' and '\\'. It tests eight bytes at a time.
func plainPrefix(b []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q, bs := w^('"'*ones), w^('\\'*ones)
		// A high bit survives for a byte < 0x20, a zero byte of q or bs (a
		// quote or a backslash), or a byte >= 0x80.
		if ((w-' '*ones)&^w|(q-ones)&^q|(bs-ones)&^bs|w)&highs != 0 {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// plain marks the bytes a string may hold without the slow path: printable
// ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// peek returns the next non-space byte without consuming it, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) consume(c byte) bool {
	if s.peek() == c {
		s.pos++
		return true
	}
	return false
}

// member advances to the next member of the object being read and returns
// its key, with the scanner placed at the value; it reports false after the
// closing brace. Call it with first set to true for the first member. The key
// is only valid until the next read.
//
//	for first := true; ; first = false {
//		key, ok, err := s.member(first)
//		if err != nil || !ok { ... }
//		... consume the value ...
//	}
func (s *scanner) member(first bool) ([]byte, bool, error) {
	if first {
		if !s.consume('{') {
			return nil, false, s.fail("expected '{'")
		}
		if s.consume('}') {
			return nil, false, nil
		}
	} else {
		if s.consume('}') {
			return nil, false, nil
		}
		if !s.consume(',') {
			return nil, false, s.fail("expected ',' or '}'")
		}
	}
	if s.peek() != '"' {
		return nil, false, s.fail("expected a string key")
	}
	key, err := s.stringBytes()
	if err != nil {
		return nil, false, err
	}
	if !s.consume(':') {
		return nil, false, s.fail("expected ':' after key")
	}
	s.ws()
	return key, true, nil
}

// element advances to the next element of the array being read, like member.
func (s *scanner) element(first bool) (bool, error) {
	if first {
		if !s.consume('[') {
			return false, s.fail("expected '['")
		}
		if s.consume(']') {
			return false, nil
		}
	} else {
		if s.consume(']') {
			return false, nil
		}
		if !s.consume(',') {
			return false, s.fail("expected ',' or ']'")
		}
	}
	s.ws()
	return true, nil
}

// literal consumes word (true, false or null).
func (s *scanner) literal(word string) bool {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// null consumes a null if one is next.
func (s *scanner) null() bool {
	s.ws()
	return s.literal("null")
}

// skip consumes any one value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.fail("nesting deeper than " + strconv.Itoa(maxDepth))
	}
	switch s.peek() {
	case '"':
		_, err := s.stringBytes()
		return err
	case '{':
		for first := true; ; first = false {
			_, ok, err := s.member(first)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case '[':
		for first := true; ; first = false {
			ok, err := s.element(first)
			if err != nil || !ok {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case 't':
		if s.literal("true") {
			return nil
		}
	case 'f':
		if s.literal("false") {
			return nil
		}
	case 'n':
		if s.literal("null") {
			return nil
		}
	default:
		if _, ok := s.numberBytes(); ok {
			return nil
		}
	}
	return s.fail("expected a value")
}

// numberBytes consumes a number in strict JSON grammar and returns its text.
func (s *scanner) numberBytes() ([]byte, bool) {
	d, i := s.data, s.pos
	start := i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], true
}

// stringBytes consumes a string and returns its unescaped bytes. The result
// aliases the input when the string has no escapes and is valid UTF-8, and the
// scanner's scratch buffer otherwise; either way it is valid only until the
// next call.
func (s *scanner) stringBytes() ([]byte, error) {
	if !s.consume('"') {
		return nil, s.fail("expected a string")
	}
	d := s.data
	start := s.pos
	// Fast path: printable ASCII up to the closing quote.
	i := start + plainPrefix(d[start:])
	if i < len(d) && d[i] == '"' {
		s.pos = i + 1
		return d[start:i], nil
	}
	return s.slowString(start)
}

func (s *scanner) slowString(start int) ([]byte, error) {
	d := s.data
	out := s.buf[:0]
	i := start
	for {
		if i >= len(d) {
			s.pos = i
			return nil, s.fail("unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.buf = out
			return out, nil
		case c < ' ':
			s.pos = i
			return nil, s.fail("control character in string")
		case c == '\\':
			if i+1 >= len(d) {
				s.pos = i
				return nil, s.fail("unterminated escape")
			}
			switch e := d[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i += 2
			case 'b':
				out, i = append(out, '\b'), i+2
			case 'f':
				out, i = append(out, '\f'), i+2
			case 'n':
				out, i = append(out, '\n'), i+2
			case 'r':
				out, i = append(out, '\r'), i+2
			case 't':
				out, i = append(out, '\t'), i+2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					s.pos = i
					return nil, s.fail("bad \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(-1), false
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						r2, ok2 = hex4(d, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				s.pos = i
				return nil, s.fail("unknown escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\ufffd"...)
			} else {
				out = append(out, d[i:i+size]...)
			}
			i += size
		}
	}
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
