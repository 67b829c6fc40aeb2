package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rtstream/rtstream/problem"
)

// firstInvalidUTF8 is the offset of the first byte of p that does not begin
// a UTF-8 sequence, or -1.
func firstInvalidUTF8(p []byte) int {
	for i := 0; i < len(p); {
		if p[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// utf8Error is the 400 of a body that is JSON but not UTF-8 (RFC 8259 §8.1
// requires it; encoding/json would take it and the SSE frames would carry
// the raw bytes). where is "" or " on line N"; prefix is the pointer of
// doc within the body ("" or "/3" for an NDJSON line).
func utf8Error(doc []byte, off int, prefix, where string) error {
	ptr := prefix + pointerAt(doc, off)
	at := "the value at " + ptr
	if ptr == "" {
		at = "the top-level value" // the pointer "" is the whole document
	}
	return &decodeError{
		detail: fmt.Sprintf("the body is not valid UTF-8%s: byte %d (0x%02X), in %s", where, off+1, doc[off], at),
		fields: []problem.FieldError{{Pointer: ptr, Detail: "not valid UTF-8"}},
	}
}

// level is one open container while pointerAt walks a document.
type level struct {
	array     bool
	n         int    // the current element's index (arrays)
	key       string // the current member's name (objects)
	expectKey bool
}

// pointerAt is the JSON pointer of the innermost value (or member name) of
// doc, valid JSON but for its UTF-8, that holds byte off. encoding/json's
// tokenizer reads such strings (turning the bytes into U+FFFD), so it can
// walk the document and say where each token ends.
func pointerAt(doc []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(doc))
	var st []level
	for {
		prev := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		in := int64(off) >= prev && int64(off) < dec.InputOffset()
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			st = st[:len(st)-1]
			continue
		}
		if n := len(st); n > 0 {
			top := &st[n-1]
			switch {
			case !top.array && top.expectKey:
				top.key, top.expectKey = tok.(string), false
				if in {
					return pointerOf(st)
				}
				continue
			case top.array:
				top.n++
			default:
				top.expectKey = true
			}
		}
		if d, ok := tok.(json.Delim); ok {
			st = append(st, level{array: d == '[', n: -1, expectKey: d == '{'})
			continue
		}
		if in {
			return pointerOf(st)
		}
	}
}

// pointerOf is the RFC 6901 pointer of the current value of each level.
func pointerOf(st []level) string {
	var b strings.Builder
	for _, l := range st {
		b.WriteByte('/')
		if l.array {
			b.WriteString(strconv.Itoa(l.n))
		} else {
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(l.key, "~", "~0"), "/", "~1"))
		}
	}
	return b.String()
}
