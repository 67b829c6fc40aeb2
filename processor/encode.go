package processor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// maxFastEncodeDepth is how deeply appendJSON nests before it gives up and
// leaves the value to encoding/json, whose cycle detection then says whether
// the value refers to itself.
const maxFastEncodeDepth = 500

// appendJSON appends v as json.Encoder with SetEscapeHTML(false) writes it
// (without the newline), byte for byte, for the values a map usually makes:
// nil, bool, int, int64, float64, string, []any and map[string]any of those.
// ok is false for anything else (another type anywhere in v, a NaN or an
// infinity, nesting deeper than maxFastEncodeDepth): encoding/json then
// encodes it, or says why it cannot. Going through reflection for every value
// was a third of a map's cost.
func appendJSON(b []byte, v any, depth int) (_ []byte, ok bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		return strconv.AppendBool(b, x), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case float64:
		return appendFloat(b, x)
	case string:
		return appendString(b, x), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		if depth >= maxFastEncodeDepth {
			return b, false
		}
		b = append(b, '[')
		for i, e := range x {
			if len(b) > MaxResultBytes {
				return b, false // marshal refuses it
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendJSON(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		if depth >= maxFastEncodeDepth {
			return b, false
		}
		var buf [16]string
		keys := buf[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json sorts keys by their bytes
		b = append(b, '{')
		for i, k := range keys {
			if len(b) > MaxResultBytes {
				return b, false // marshal refuses it
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			if b, ok = appendJSON(b, x[k], depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	}
	return b, false
}

// appendFloat formats f as encoding/json does: the shortest representation,
// in exponent form only for very small or very large magnitudes, with a
// one-digit negative exponent written e-7 rather than e-07.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does without HTML escaping: control
// bytes, the quote and the backslash escaped, U+2028 and U+2029 escaped (they
// end lines in JavaScript), each byte that is not part of UTF-8 written as
// \ufffd, and everything else as it is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// marshalStd is marshal's encoding by encoding/json.
func marshalStd(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("result is not JSON: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
