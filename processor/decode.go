package processor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"
)

// decodeData decodes an event's data into what an expression sees:
// map[string]any, []any, string, bool, nil, and numbers as numbers() makes
// them. It gives what decodeStd gives, value and error alike, in one pass and
// with fewer allocations: decoding was half of the processor's cost, and a
// filter over an event usually reads one field of it. Whatever the fast
// decoder does not take (data that is not one JSON value, nesting deeper than
// maxFastDepth) goes to decodeStd, for its result and its error message.
func decodeData(p []byte) (any, error) {
	if v, ok := decodeFast(p); ok {
		return v, nil
	}
	return decodeStd(p)
}

// decodeStd is encoding/json's decoding: one value read by a Decoder (so
// what follows a complete value after whitespace is not looked at), numbers
// kept as json.Number and then made ints or floats.
func decodeStd(p []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

// maxFastDepth is how deeply decodeFast nests before it hands the data to
// decodeStd: far below encoding/json's limit of 10000, so that the fast
// decoder never has to know that limit, and far above what events hold.
const maxFastDepth = 500

// decodeFast decodes p if it is exactly one JSON value with optional
// whitespace around it (what json.Valid accepts), nested at most
// maxFastDepth deep. ok is false for anything else, and the caller then asks
// encoding/json.
func decodeFast(p []byte) (v any, ok bool) {
	d := decoders.Get().(*decoder)
	defer d.release()
	d.p = p
	d.skipSpace()
	if v, ok = d.value(); !ok {
		return nil, false
	}
	if d.skipSpace(); d.i != len(p) {
		return nil, false
	}
	return v, true
}

// decoders are reused for their members and elems, which would otherwise
// grow afresh for every event.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// maxPooledScratch bounds the members and elems a pooled decoder keeps, so
// that one huge event does not pin its scratch space for good.
const maxPooledScratch = 1 << 10

// release puts d back in decoders, holding on to none of the data.
func (d *decoder) release() {
	clear(d.members)
	clear(d.elems)
	if cap(d.members) > maxPooledScratch || cap(d.elems) > maxPooledScratch {
		return
	}
	*d = decoder{members: d.members[:0], elems: d.elems[:0]}
	decoders.Put(d)
}

// decoder is one decodeFast: p is the data and i the next byte to read.
type decoder struct {
	p     []byte
	i     int
	depth int
	// s is p as a string, made on the first string that needs no
	// unescaping: such strings are then slices of it, one allocation for
	// all of them rather than one each.
	s string
	// members and elems hold the members and elements of the objects and
	// arrays being decoded, from the outermost in, so that each map and
	// slice is made once at its final size.
	members []member
	elems   []any
}

type member struct {
	key string
	val any
}

func (d *decoder) skipSpace() {
	for d.i < len(d.p) {
		switch d.p[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i, which is not whitespace.
func (d *decoder) value() (any, bool) {
	if d.i >= len(d.p) {
		return nil, false
	}
	switch c := d.p[d.i]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		return s, true
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.number()
		}
		return nil, false
	}
}

func (d *decoder) literal(lit string) bool {
	if len(d.p)-d.i < len(lit) || string(d.p[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

func (d *decoder) object() (any, bool) {
	if d.depth++; d.depth > maxFastDepth {
		return nil, false
	}
	d.i++ // {
	d.skipSpace()
	if d.i < len(d.p) && d.p[d.i] == '}' {
		d.i++
		d.depth--
		return map[string]any{}, true
	}
	base := len(d.members)
	for {
		if d.i >= len(d.p) || d.p[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.i >= len(d.p) || d.p[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.skipSpace()
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		d.members = append(d.members, member{k, v})
		d.skipSpace()
		if d.i >= len(d.p) {
			return nil, false
		}
		c := d.p[d.i]
		d.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, false
		}
		d.skipSpace()
	}
	ms := d.members[base:]
	m := make(map[string]any, len(ms))
	for _, mb := range ms {
		m[mb.key] = mb.val // the last of duplicate keys wins, as in encoding/json
	}
	clear(ms)
	d.members = d.members[:base]
	d.depth--
	return m, true
}

func (d *decoder) array() (any, bool) {
	if d.depth++; d.depth > maxFastDepth {
		return nil, false
	}
	d.i++ // [
	d.skipSpace()
	if d.i < len(d.p) && d.p[d.i] == ']' {
		d.i++
		d.depth--
		return []any{}, true
	}
	base := len(d.elems)
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		d.elems = append(d.elems, v)
		d.skipSpace()
		if d.i >= len(d.p) {
			return nil, false
		}
		c := d.p[d.i]
		d.i++
		if c == ']' {
			break
		}
		if c != ',' {
			return nil, false
		}
		d.skipSpace()
	}
	es := d.elems[base:]
	a := make([]any, len(es))
	copy(a, es)
	clear(es)
	d.elems = d.elems[:base]
	d.depth--
	return a, true
}

// str decodes the string whose opening quote is at d.i.
func (d *decoder) str() (string, bool) {
	start := d.i + 1
	ascii := true
	for i := start; i < len(d.p); i++ {
		switch c := d.p[i]; {
		case c == '"':
			if i == start {
				d.i = i + 1
				return "", true
			}
			if !ascii && !utf8.Valid(d.p[start:i]) {
				return d.unquote(start)
			}
			if d.s == "" {
				d.s = string(d.p)
			}
			d.i = i + 1
			return d.s[start:i], true
		case c == '\\':
			return d.unquote(start)
		case c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// unquote decodes the string that begins at start (after its opening quote)
// and has escapes or bytes that are not UTF-8, as encoding/json's unquote
// does: a \u escape of half a surrogate pair that is not followed by the
// other half, and each byte that is not part of UTF-8, become U+FFFD.
func (d *decoder) unquote(start int) (string, bool) {
	p := d.p
	b := make([]byte, 0, 32)
	for i := start; i < len(p); {
		switch c := p[i]; {
		case c == '"':
			d.i = i + 1
			return string(b), true
		case c == '\\':
			if i+1 >= len(p) {
				return "", false
			}
			switch e := p[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(p, i)
				if r < 0 {
					return "", false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r := utf16.DecodeRune(r, hex4(p, i)); r != unicode.ReplacementChar {
						b = utf8.AppendRune(b, r)
						i += 6
						continue
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return "", false
			}
			i += 2
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			// The closing quote is not a continuation byte, so a rune never
			// runs past it.
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, p[i:i+size]...)
			}
			i += size
		}
	}
	return "", false
}

// hex4 is the rune of the \uXXXX escape at p[i], or -1 if there is none.
func hex4(p []byte, i int) rune {
	if len(p)-i < 6 || p[i] != '\\' || p[i+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range p[i+2 : i+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number decodes the number at d.i as numbers() would, the number's grammar
// being jsonscan's.
func (d *decoder) number() (any, bool) {
	p, start := d.p, d.i
	i, ok := jsonscan.Number(p, start)
	if !ok {
		return nil, false
	}
	neg := p[start] == '-'
	integer := bytes.IndexAny(p[start:i], ".eE") < 0
	digits := i - start
	if neg {
		digits--
	}
	d.i = i
	if integer && digits <= 18 {
		// Fits in an int64 whatever the digits: what ParseInt would say.
		var n int64
		for _, c := range p[start:i] {
			if c != '-' {
				n = n*10 + int64(c-'0')
			}
		}
		if neg {
			n = -n
		}
		return int(n), true
	}
	// What json.Number's Int64 and then Float64 do; a float out of range is
	// ±Inf with an error, and numbers() keeps the ±Inf.
	s := string(p[start:i])
	if integer {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return int(n), true
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f, true
}
