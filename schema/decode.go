package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Numbers are compared exactly (math/big) by the validator, from their
// literal, at a cost that grows with the exponent faster than linearly:
// 1e1000000 takes 29 ms for one comparison, and an event can hold thousands.
// Events and schemas may use every float64 and int64 and much more, but not
// that: longer literals or larger exponents are refused, at creation for a
// schema and at the door for an event.
const (
	maxNumberLen = 100
	maxExponent  = 1000
)

// Decoding costs, in steps (see cost.go): a value, a member of an object
// (a map insert, the key's string), an element of an array, and a byte of
// a string copied.
const (
	decodeValue  = 60
	decodeMember = 150
	decodeElem   = 16
	decodeByte4  = 1 // per 4 bytes
)

// limitError is a value the validator must not be given: too deep, or a
// number outside maxNumberLen or maxExponent.
type limitError struct {
	pointer string
	detail  string
}

func (e *limitError) Error() string { return e.pointer + ": " + e.detail }

// errSyntax is data that is not JSON; callers pass valid JSON only.
var errSyntax = errors.New("not valid JSON")

// step is one level of the location being decoded: a member's key or an
// element's index. It is formatted as a JSON pointer only for an error.
type step struct {
	key   string
	index int // -1 for a member
}

// decoder decodes JSON into what the validator takes (map[string]any,
// []any, string, json.Number, bool, nil), charging m as it allocates, so
// that decoding is part of an event's budget, and refusing what limitError
// names. Its input was checked to be valid JSON and UTF-8 already (by the
// handlers' scanner, or encoding/json for a stream definition).
type decoder struct {
	p        []byte
	i        int
	m        *meter // nil: nothing is charged (a schema, bounded by its size)
	maxDepth int
	path     []step
	// nodes counts the objects and booleans decoded: at most that many
	// subschemas compile from a schema.
	nodes int
}

// decode decodes p, one JSON value with optional space around it, and
// counts its objects and booleans.
func decode(p []byte, maxDepth int, m *meter) (v any, nodes int, err error) {
	d := decoder{p: p, m: m, maxDepth: maxDepth}
	d.space()
	if v, err = d.value(); err != nil {
		return nil, 0, err
	}
	if d.space(); d.i != len(p) {
		return nil, 0, errSyntax
	}
	return v, d.nodes, nil
}

// charge takes n steps from the meter, if any.
func (d *decoder) charge(n int64) error {
	if d.m == nil || d.m.charge(n) {
		return nil
	}
	return d.m.spent
}

func (d *decoder) space() {
	for d.i < len(d.p) {
		switch d.p[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	if err := d.charge(decodeValue); err != nil {
		return nil, err
	}
	if d.i >= len(d.p) {
		return nil, errSyntax
	}
	switch c := d.p[d.i]; {
	case c == '{':
		d.nodes++
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		d.nodes++
		return true, d.literal("true")
	case c == 'f':
		d.nodes++
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return d.number()
	}
}

func (d *decoder) literal(lit string) error {
	if !bytes.HasPrefix(d.p[d.i:], []byte(lit)) {
		return errSyntax
	}
	d.i += len(lit)
	return nil
}

// enter checks the depth of the container that starts here.
func (d *decoder) enter() error {
	if len(d.path) >= d.maxDepth {
		return &limitError{pointer: d.pointer(), detail: fmt.Sprintf("nested deeper than %d levels, the limit", d.maxDepth)}
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	obj := map[string]any{}
	d.i++ // {
	d.space()
	if d.i < len(d.p) && d.p[d.i] == '}' {
		d.i++
		return obj, nil
	}
	d.path = append(d.path, step{index: -1})
	for {
		if err := d.charge(decodeMember); err != nil {
			return nil, err
		}
		d.space()
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		d.path[len(d.path)-1].key = key.(string)
		if d.space(); d.i >= len(d.p) || d.p[d.i] != ':' {
			return nil, errSyntax
		}
		d.i++
		d.space()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		obj[key.(string)] = v
		if d.space(); d.i >= len(d.p) {
			return nil, errSyntax
		}
		d.i++
		switch d.p[d.i-1] {
		case ',':
		case '}':
			d.path = d.path[:len(d.path)-1]
			return obj, nil
		default:
			return nil, errSyntax
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	arr := []any{}
	d.i++ // [
	d.space()
	if d.i < len(d.p) && d.p[d.i] == ']' {
		d.i++
		return arr, nil
	}
	d.path = append(d.path, step{})
	for {
		if err := d.charge(decodeElem); err != nil {
			return nil, err
		}
		d.path[len(d.path)-1].index = len(arr)
		d.space()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		if d.space(); d.i >= len(d.p) {
			return nil, errSyntax
		}
		d.i++
		switch d.p[d.i-1] {
		case ',':
		case ']':
			d.path = d.path[:len(d.path)-1]
			return arr, nil
		default:
			return nil, errSyntax
		}
	}
}

// str decodes a string; it is returned as any to spare the callers a
// conversion.
func (d *decoder) str() (any, error) {
	if d.i >= len(d.p) || d.p[d.i] != '"' {
		return nil, errSyntax
	}
	start := d.i
	escaped := false
	for d.i++; d.i < len(d.p); d.i++ {
		switch d.p[d.i] {
		case '\\':
			escaped = true
			d.i++
		case '"':
			d.i++
			if err := d.charge(int64(d.i-start) / 4 * decodeByte4); err != nil {
				return nil, err
			}
			if !escaped {
				return string(d.p[start+1 : d.i-1]), nil
			}
			// Rare: encoding/json knows every escape.
			var s string
			if err := json.Unmarshal(d.p[start:d.i], &s); err != nil {
				return nil, errSyntax
			}
			return s, nil
		}
	}
	return nil, errSyntax
}

// number decodes a number literal into a json.Number, refusing one the
// validator would spend too long on (see maxNumberLen).
func (d *decoder) number() (any, error) {
	start := d.i
	exp := -1
	for ; d.i < len(d.p); d.i++ {
		c := d.p[d.i]
		if c == 'e' || c == 'E' {
			exp = d.i + 1
		} else if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.') {
			break
		}
	}
	lit := string(d.p[start:d.i])
	if lit == "" {
		return nil, errSyntax
	}
	if len(lit) > maxNumberLen {
		return nil, &limitError{pointer: d.pointer(), detail: fmt.Sprintf("a number literal of %d bytes; at most %d are checked against schemas", len(lit), maxNumberLen)}
	}
	if exp > 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(string(d.p[exp:d.i]), "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, &limitError{pointer: d.pointer(), detail: fmt.Sprintf("number %s: exponents beyond ±%d are not checked against schemas", lit, maxExponent)}
		}
	}
	return json.Number(lit), nil
}

// pointer is the JSON pointer (RFC 6901) of the value being decoded.
func (d *decoder) pointer() string {
	return formatPointer(d.path)
}

// formatPointer writes a location as a JSON pointer: "" is the whole
// value; "~" and "/" in keys are escaped as ~0 and ~1.
func formatPointer(path []step) string {
	var b strings.Builder
	for _, s := range path {
		b.WriteByte('/')
		if s.index >= 0 {
			b.WriteString(strconv.Itoa(s.index))
			continue
		}
		b.WriteString(escapeToken(s.key))
	}
	return b.String()
}

// escapeToken escapes one reference token of a JSON pointer.
func escapeToken(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}
