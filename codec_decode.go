package rtstream

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"
)

// DecodeEventBatch decodes an events record into *b, which it replaces: the
// result and the error are those of json.Unmarshal into a zero EventBatch.
//
// Records are written by AppendJSON, so it reads that layout in one pass
// (encoding/json scans the whole record, then decodes it while skipping
// every event's data a second time). Anything else (other key order,
// whitespace, escaped ids, unknown fields, an error) goes to json.Unmarshal.
//
// The events' Data may be sub-slices of p, where json.Unmarshal copies them:
// p must not change while b is in use. Their capacity is cut to their length,
// so appending to one cannot write over the record. The ids share one
// allocation.
func DecodeEventBatch(p []byte, b *EventBatch) error {
	if decodeEventBatchFast(p, b) {
		return nil
	}
	*b = EventBatch{}
	return json.Unmarshal(p, b)
}

// The parts of AppendJSON's layout between the values.
const (
	batchHead     = `{"stream_id":"`
	batchEvents   = `,"events":[`
	eventHead     = `{"event_id":"`
	eventReceived = `,"received_at":"`
	eventData     = `,"data":`
)

// decodeEventBatchFast reads exactly AppendJSON's layout into *b and reports
// whether p was in it; *b is not changed when it was not.
func decodeEventBatchFast(p []byte, b *EventBatch) bool {
	if !hasAt(p, 0, batchHead) {
		return false
	}
	// The ids become one string, one allocation for them all: spans holds
	// where each is in p, start and end, the stream's first.
	var spansBuf [2 * 128]int
	spans := spansBuf[:0]
	i, end, ok := plainString(p, len(batchHead))
	if !ok || !hasAt(p, end+1, batchEvents) {
		return false
	}
	spans = append(spans, i, end)
	size := end - i
	i = end + 1 + len(batchEvents)
	// json.Unmarshal makes an empty slice, not nil, of "events":[].
	events := []Event{}
	// Events of one request share their time: parse it once.
	var received timeCache
	if i < len(p) && p[i] == ']' {
		i++
	} else {
		for first := i; ; {
			var e Event
			if !hasAt(p, i, eventHead) {
				return false
			}
			start, end, ok := plainString(p, i+len(eventHead))
			if !ok || !hasAt(p, end+1, eventReceived) {
				return false
			}
			spans = append(spans, start, end)
			size += end - start
			if e.ReceivedAt, i, ok = received.read(p, end+len(eventReceived)); !ok {
				return false
			}
			if !hasAt(p, i, eventData) {
				return false
			}
			i += len(eventData)
			// Inside the record, the events array and the event.
			end, _, ok = jsonscan.Value(p, i, 3)
			if !ok || end >= len(p) || p[end] != '}' {
				return false
			}
			e.Data = p[i:end:end]
			i = end + 1
			if len(events) == 0 {
				// Guess the length from the first event's size,
				// rather than grow the slice many times.
				events = make([]Event, 0, 2+(len(p)-i)/(i-first))
			}
			events = append(events, e)
			if i < len(p) && p[i] == ',' {
				i++
				continue
			}
			if i < len(p) && p[i] == ']' {
				i++
				break
			}
			return false
		}
	}
	if i != len(p)-1 || p[i] != '}' {
		return false
	}
	var all strings.Builder
	all.Grow(size)
	for k := 0; k < len(spans); k += 2 {
		all.Write(p[spans[k]:spans[k+1]])
	}
	ids := all.String()
	b.StreamID, ids = ids[:spans[1]-spans[0]], ids[spans[1]-spans[0]:]
	for k := range events {
		n := spans[2*k+3] - spans[2*k+2]
		events[k].ID, ids = ids[:n], ids[n:]
	}
	b.Events = events
	return true
}

// timeCache reads one time field of a record's items, parsing each string
// once while the same string repeats (the items of one request share their
// times).
type timeCache struct {
	quoted []byte
	at     time.Time
}

// read reads the time whose string's opening quote is at p[start] and returns
// the index after its closing quote. It parses the string as json.Unmarshal
// hands it to Time.UnmarshalJSON, quotes included: same value, same errors.
// An escape could only make it fail to parse, so strings with one are not
// read.
func (c *timeCache) read(p []byte, start int) (t time.Time, end int, ok bool) {
	if start >= len(p) || p[start] != '"' {
		return time.Time{}, 0, false
	}
	end = start + 1
	for end < len(p) && plainASCII[p[end]] {
		end++
	}
	if end >= len(p) || p[end] != '"' {
		return time.Time{}, 0, false
	}
	quoted := p[start : end+1]
	if c.quoted != nil && string(quoted) == string(c.quoted) {
		return c.at, end + 1, true
	}
	if t.UnmarshalJSON(quoted) != nil {
		return time.Time{}, 0, false
	}
	c.quoted, c.at = quoted, t
	return t, end + 1, true
}

// plainString finds the string that starts at p[i], after its opening
// quote, and returns where it ends (its closing quote's index) when
// json.Unmarshal would take its bytes as they are: no escapes, no control
// bytes, valid UTF-8.
func plainString(p []byte, i int) (start, end int, ok bool) {
	start = i
	for i < len(p) && plainASCII[p[i]] {
		i++
	}
	if i < len(p) && p[i] >= utf8.RuneSelf {
		for i < len(p) && (plainASCII[p[i]] || p[i] >= utf8.RuneSelf) {
			i++
		}
		if !utf8.Valid(p[start:i]) {
			return 0, 0, false
		}
	}
	if i >= len(p) || p[i] != '"' {
		return 0, 0, false
	}
	return start, i, true
}

// plainASCII marks the ASCII bytes a JSON string holds as they are: all but
// control bytes, the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hasAt reports whether p holds s at i.
func hasAt(p []byte, i int, s string) bool {
	return len(p)-i >= len(s) && string(p[i:i+len(s)]) == s
}
