package schema

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// Helpers over raw JSON that was checked to be valid (by the handlers'
// scanner) and is trimmed: the fast evaluator reads events in place,
// without decoding them.

// strEnd returns the index just after the string that starts at p[i] (a
// quote), and whether it holds escapes.
func strEnd(p []byte, i int) (end int, escaped bool) {
	for i++; i < len(p); i++ {
		if c := p[i]; c == '"' || c == '\\' {
			if p[i] == '"' {
				return i + 1, false
			}
			return strEndSlow(p, i)
		}
	}
	return len(p), false
}

// strEndSlow is strEnd past an escape, from p[i].
func strEndSlow(p []byte, i int) (end int, escaped bool) {
	for ; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(p), true
}

// skipSpace returns the index of the first byte from i that is not JSON
// whitespace.
func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
		i++
	}
	return i
}

// unquote is the value of the string literal s (quotes included).
func unquote(s []byte) string {
	if !escapes(s) {
		return string(s[1 : len(s)-1])
	}
	var v string
	_ = json.Unmarshal(s, &v) // valid: checked before
	return v
}

// escapes reports whether the string literal s holds an escape.
func escapes(s []byte) bool { return bytes.IndexByte(s, '\\') >= 0 }

// valueEnd returns the index just after the value at p[i]: a walk that
// trusts the JSON to be valid, faster than a scanner that checks it.
func valueEnd(p []byte, i int) int {
	switch p[i] {
	case '"':
		end, _ := strEnd(p, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				i, _ = strEnd(p, i)
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(p)
	}
	for i < len(p) {
		switch p[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// memberIter walks the members of an object, for loops that a callback
// would slow down (the fast evaluator's).
type memberIter struct {
	p []byte
	i int
}

func newMemberIter(p []byte) memberIter { return memberIter{p: p, i: skipSpace(p, 1)} }

// next returns the next member: its key's literal, its name (unescaped) and
// its value; ok is false after the last.
func (it *memberIter) next() (key, name, val []byte, ok bool) {
	p, i := it.p, it.i
	if i >= len(p) || p[i] != '"' {
		return nil, nil, nil, false
	}
	kend, escaped := strEnd(p, i)
	key = p[i:kend]
	name = key[1 : len(key)-1]
	if escaped {
		name = []byte(unquote(key))
	}
	i = skipSpace(p, skipSpace(p, kend)+1) // past the colon
	vend := valueEnd(p, i)
	val = p[i:vend]
	if i = skipSpace(p, vend); i < len(p) && p[i] == ',' {
		i = skipSpace(p, i+1)
	}
	it.i = i
	return key, name, val, true
}

// eachMember calls f with each member of the object p: the key's literal
// (quotes included), the member's name (unescaped) and the value. It stops
// when f returns false, and reports whether it went through.
func eachMember(p []byte, f func(key, name, val []byte) bool) bool {
	i := skipSpace(p, 1)
	for i < len(p) && p[i] == '"' {
		kend, escaped := strEnd(p, i)
		key := p[i:kend]
		name := key[1 : len(key)-1]
		if escaped {
			name = []byte(unquote(key))
		}
		i = skipSpace(p, kend)
		i = skipSpace(p, i+1) // the colon
		vend := valueEnd(p, i)
		if !f(key, name, p[i:vend]) {
			return false
		}
		i = skipSpace(p, vend)
		if i < len(p) && p[i] == ',' {
			i = skipSpace(p, i+1)
		}
	}
	return true
}

// eachElem calls f with each element of the array p and its index, like
// eachMember.
func eachElem(p []byte, f func(i int, val []byte) bool) bool {
	i := skipSpace(p, 1)
	for n := 0; i < len(p) && p[i] != ']'; n++ {
		end := valueEnd(p, i)
		if !f(n, p[i:end]) {
			return false
		}
		i = skipSpace(p, end)
		if i < len(p) && p[i] == ',' {
			i = skipSpace(p, i+1)
		}
	}
	return true
}

// appendCanonical appends the raw value p in a form equal for equal JSON
// values (numbers by value, members in key order): the key that enum,
// const and uniqueItems compare.
func appendCanonical(b, p []byte) []byte {
	switch p[0] {
	case '"':
		return strconv.AppendQuote(b, unquote(p))
	case '[':
		b = append(b, '[')
		eachElem(p, func(i int, v []byte) bool {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, v)
			return true
		})
		return append(b, ']')
	case '{':
		type member struct{ key, val []byte }
		var ms []member
		eachMember(p, func(_, name, v []byte) bool { ms = append(ms, member{name, v}); return true })
		// Sorted by key; of duplicate keys the last wins, as in a decoder.
		slices.SortStableFunc(ms, func(x, y member) int { return slices.Compare(x.key, y.key) })
		b = append(b, '{')
		first := true
		for i, m := range ms {
			if i+1 < len(ms) && string(ms[i+1].key) == string(m.key) {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = strconv.AppendQuote(b, string(m.key))
			b = append(b, ':')
			b = appendCanonical(b, m.val)
		}
		return append(b, '}')
	case 't', 'f', 'n':
		return append(b, p[0])
	}
	return append(append(b, 'd'), parseDecimal(p).appendKey(nil)...)
}

// appendCanonicalOf appends v, a value of a compiled schema (decoded by
// decode), in appendCanonical's form.
func appendCanonicalOf(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return strconv.AppendQuote(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalOf(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(strconv.AppendQuote(b, k), ':')
			b = appendCanonicalOf(b, v[k])
		}
		return append(b, '}')
	case bool:
		if v {
			return append(b, 't')
		}
		return append(b, 'f')
	case nil:
		return append(b, 'n')
	case json.Number:
		return append(append(b, 'd'), parseDecimal([]byte(v)).appendKey(nil)...)
	}
	return b
}

// exponentWithin reports whether a number literal's exponent is within
// ±maxExponent.
func exponentWithin(lit []byte) bool {
	for i, c := range lit {
		if c == 'e' || c == 'E' {
			e := parseExponent(lit[i+1:])
			return e <= maxExponent && e >= -maxExponent
		}
	}
	return true
}
