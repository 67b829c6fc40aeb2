// Package jsonscan checks JSON text in one pass without decoding it, and
// says where each value ends. It accepts what encoding/json's Valid accepts,
// nesting limit included, except strings that are not UTF-8: RFC 8259 §8.1
// requires UTF-8 for JSON exchanged between systems, and encoding/json lets
// such bytes through (Valid) or turns them into U+FFFD (Unmarshal) in silence.
// A caller can take a fast path on what it accepts and hand everything else
// to encoding/json for the usual result and error (after checking
// utf8.Valid, which encoding/json does not). It exists because encoding/json scans a byte at a time through a
// state machine, then decodes what it has just scanned: for records that are
// mostly raw JSON (events' data) that was most of the router's CPU.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays and objects may nest: encoding/json's limit.
const MaxDepth = 10000

// Valid reports whether p is one JSON value, optionally surrounded by
// whitespace, as json.Valid does.
func Valid(p []byte) bool {
	i, _ := SkipSpace(p, 0)
	end, _, ok := Value(p, i, 0)
	if !ok {
		return false
	}
	end, _ = SkipSpace(p, end)
	return end == len(p)
}

// Value scans the JSON value that begins at p[start] (not at whitespace) and
// returns the index just after it. The value is nested inside depth arrays
// and objects, which counts against MaxDepth as it would in a whole document.
// ok is false when no valid value begins at start; what follows the value is
// not looked at. multiline reports whether the whitespace between the value's
// tokens has a CR or LF in it (valid JSON has none anywhere else): such a
// value needs compacting before it can be one line of an SSE frame.
func Value(p []byte, start, depth int) (end int, multiline, ok bool) {
	// The open containers, innermost last, as their opening bytes. A small
	// array keeps ordinary nesting off the heap.
	var buf [32]byte
	stack := buf[:0]
	ml := false
	i := start
	for {
		// A value begins at p[i].
		if i >= len(p) {
			return i, ml, false
		}
		switch c := p[i]; c {
		case '"':
			if i, ok = skipString(p, i+1); !ok {
				return i, ml, false
			}
		case '{', '[':
			if depth+len(stack) >= MaxDepth {
				return i, ml, false
			}
			i, ml = SkipSpaceFrom(p, i+1, ml)
			if i < len(p) && p[i] == c+2 { // '}' and ']' are '{' and '[' plus 2
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i, ml, ok = skipKey(p, i, ml); !ok {
					return i, ml, false
				}
			}
			continue
		case 't':
			if i, ok = skipLiteral(p, i, "true"); !ok {
				return i, ml, false
			}
		case 'f':
			if i, ok = skipLiteral(p, i, "false"); !ok {
				return i, ml, false
			}
		case 'n':
			if i, ok = skipLiteral(p, i, "null"); !ok {
				return i, ml, false
			}
		default:
			if i, ok = skipNumber(p, i); !ok {
				return i, ml, false
			}
		}
		// After a value: close what ends here, up to where the next value
		// of an open container begins.
		for {
			if len(stack) == 0 {
				return i, ml, true
			}
			if i < len(p) && p[i] <= ' ' {
				i, ml = SkipSpaceFrom(p, i, ml)
			}
			if i >= len(p) {
				return i, ml, false
			}
			top := stack[len(stack)-1]
			if p[i] == ',' {
				i, ml = SkipSpaceFrom(p, i+1, ml)
				if top == '{' {
					if i, ml, ok = skipKey(p, i, ml); !ok {
						return i, ml, false
					}
				}
				break
			}
			if p[i] != top+2 {
				return i, ml, false
			}
			i++
			stack = stack[:len(stack)-1]
		}
	}
}

// skipLiteral skips lit (true, false or null) at p[i]. Value calls it
// with a constant and it inlines, so the check stays a load and a compare:
// one function for all three literals, choosing lit by the first byte at run
// time, made documents of many literals more than twice as slow to scan.
func skipLiteral(p []byte, i int, lit string) (int, bool) {
	if !hasAt(p, i, lit) {
		return i, false
	}
	return i + len(lit), true
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (space, tab, CR, LF), and whether it skipped a CR or LF.
func SkipSpace(p []byte, i int) (int, bool) {
	return SkipSpaceFrom(p, i, false)
}

// SkipSpaceFrom is SkipSpace that carries multiline along: the result is
// true if multiline is or a CR or LF was skipped.
func SkipSpaceFrom(p []byte, i int, multiline bool) (int, bool) {
	for ; i < len(p); i++ {
		switch p[i] {
		case ' ', '\t':
		case '\n', '\r':
			multiline = true
		default:
			return i, multiline
		}
	}
	return i, multiline
}

// skipKey skips an object's key, the colon and the whitespace around it, up
// to the member's value.
func skipKey(p []byte, i int, ml bool) (int, bool, bool) {
	if i >= len(p) || p[i] != '"' {
		return i, ml, false
	}
	i, ok := skipString(p, i+1)
	if !ok {
		return i, ml, false
	}
	if i < len(p) && p[i] == ':' {
		i, ml = SkipSpaceFrom(p, i+1, ml)
		return i, ml, true
	}
	i, ml = SkipSpaceFrom(p, i, ml)
	if i >= len(p) || p[i] != ':' {
		return i, ml, false
	}
	i, ml = SkipSpaceFrom(p, i+1, ml)
	return i, ml, true
}

// plain marks the ASCII bytes a string may hold as they are: everything but
// control bytes, the quote and the backslash. Bytes from 0x80 are looked at
// by skipString, which checks that they form UTF-8.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString skips the rest of a string whose opening quote is at i-1 and
// returns the index after its closing quote.
func skipString(p []byte, i int) (int, bool) {
	for {
		i = skipPlain(p, i)
		if i >= len(p) {
			return i, false
		}
		switch p[i] {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 >= len(p) {
				return i, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		default:
			if p[i] < utf8.RuneSelf { // a control byte
				return i, false
			}
			// A rune outside ASCII: valid UTF-8 or the end (surrogates
			// and overlong forms are not UTF-8 either).
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, false
			}
			i += size
		}
	}
}

// skipPlain returns the index of the first byte at or after i that a
// string cannot hold as it is, or len(p). It looks at eight bytes at a time.
func skipPlain(p []byte, i int) int {
	for ; i+8 <= len(p); i += 8 {
		if m := special(binary.LittleEndian.Uint64(p[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(p) && plain[p[i]] {
		i++
	}
	return i
}

// special sets the high bit of each byte of x that is a control byte, a
// quote, a backslash or outside ASCII: the usual "has a zero or smaller byte"
// tricks, and the high bit itself. A borrow can also mark bytes above a
// marked one, never below, so the lowest mark (the first of the eight in
// little-endian order) is exact.
func special(x uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((x-ones*0x20) & ^x | (q-ones) & ^q | (b-ones) & ^b | x) & high
}

// Number returns the end of the JSON number that begins at p[i], for callers
// that read numbers themselves; ok is false when no number begins there.
func Number(p []byte, i int) (end int, ok bool) {
	if i >= len(p) {
		return i, false
	}
	return skipNumber(p, i)
}

// skipNumber skips the number that begins at p[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(p []byte, i int) (int, bool) {
	if p[i] == '-' {
		i++
		if i >= len(p) {
			return i, false
		}
	}
	switch c := p[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i = skipDigits(p, i+1)
	default:
		return i, false
	}
	if i < len(p) && p[i] == '.' {
		j := skipDigits(p, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		j := skipDigits(p, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(p []byte, i int) int {
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hasAt reports whether p holds s at i.
func hasAt(p []byte, i int, s string) bool {
	return len(p)-i >= len(s) && string(p[i:i+len(s)]) == s
}
