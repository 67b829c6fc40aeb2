package record

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// ToValidUTF8 replaces each run of bytes of raw that is not UTF-8 with
// U+FFFD, and reports whether it replaced any. A record written before
// rtstream checked UTF-8 at the door, or by another producer, can hold such
// bytes inside its JSON strings; they must never leave rtstream raw (RFC 8259
// §8.1: strict readers fail on them, browsers change them in silence).
// Outside strings they could not be valid JSON, so the result is as valid as
// raw was.
func ToValidUTF8(raw json.RawMessage) (json.RawMessage, bool) {
	if utf8.Valid(raw) {
		return raw, false
	}
	return bytes.ToValidUTF8(raw, []byte("\uFFFD")), true
}

// validEvents makes every event's data UTF-8 and returns how many it changed.
// Only a record the fast path refused can need it: the fast path checks.
func (b *EventBatch) validEvents() int {
	n := 0
	for i := range b.Events {
		var changed bool
		if b.Events[i].Data, changed = ToValidUTF8(b.Events[i].Data); changed {
			n++
		}
	}
	return n
}

// validResults is validEvents for results.
func (b *ResultBatch) validResults() int {
	n := 0
	for i := range b.Results {
		var changed bool
		if b.Results[i].Data, changed = ToValidUTF8(b.Results[i].Data); changed {
			n++
		}
	}
	return n
}
