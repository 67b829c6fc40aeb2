package record

import (
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"

	"github.com/rtstream/rtstream"
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
	if err := json.Unmarshal(p, b); err != nil {
		return err
	}
	b.Replaced = b.validEvents()
	return nil
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
	d := eventsDecoder{p: p}
	i, end, ok := plainString(p, len(batchHead))
	if !ok || !hasAt(p, end+1, batchEvents) {
		return false
	}
	spans = append(spans, i, end)
	d.size = end - i
	i = end + 1 + len(batchEvents)
	// json.Unmarshal makes an empty slice, not nil, of "events":[].
	events := []rtstream.Event{}
	var more bool
	i, more = firstItem(p, i)
	for first := i; more; {
		var e rtstream.Event
		if e, i, spans, ok = d.event(i, spans); !ok {
			return false
		}
		if len(events) == 0 {
			events = make([]rtstream.Event, 0, guessItems(p, first, i))
		}
		events = append(events, e)
		if i, more, ok = nextItem(p, i); !ok {
			return false
		}
	}
	if i != len(p)-1 || p[i] != '}' {
		return false
	}
	ids := joinSpans(p, spans, d.size)
	b.StreamID, ids = ids[:spans[1]-spans[0]], ids[spans[1]-spans[0]:]
	for k := range events {
		n := spans[2*k+3] - spans[2*k+2]
		events[k].ID, ids = ids[:n], ids[n:]
	}
	b.Events = events
	return true
}

// eventsDecoder is what decoding an events record keeps between events.
// The spans of the ids (where each is in p, start and end) are passed along
// rather than kept here, so that their buffer can stay on the caller's stack.
type eventsDecoder struct {
	p    []byte
	size int // the ids' bytes together
	// Events of one request share their time: parse it once.
	received timeCache
}

// event reads the event at p[i], adding where its id is to spans.
func (d *eventsDecoder) event(i int, spans []int) (e rtstream.Event, next int, _ []int, ok bool) {
	p := d.p
	if !hasAt(p, i, eventHead) {
		return e, 0, spans, false
	}
	start, end, ok := plainString(p, i+len(eventHead))
	if !ok || !hasAt(p, end+1, eventReceived) {
		return e, 0, spans, false
	}
	spans = append(spans, start, end)
	d.size += end - start
	if e.ReceivedAt, i, ok = d.received.read(p, end+len(eventReceived)); !ok || !hasAt(p, i, eventData) {
		return e, 0, spans, false
	}
	i += len(eventData)
	// Inside the record, the events array and the event.
	end, _, ok = jsonscan.Value(p, i, 3)
	if !ok || end >= len(p) || p[end] != '}' {
		return e, 0, spans, false
	}
	e.Data = p[i:end:end]
	return e, end + 1, spans, true
}

// firstItem reports whether the array whose items begin at p[i] has any,
// and returns the index after its ']' if not.
func firstItem(p []byte, i int) (next int, any bool) {
	if i < len(p) && p[i] == ']' {
		return i + 1, false
	}
	return i, true
}

// nextItem returns the index after the ',' before the next item (more) or
// the ']' that ends the array; anything else is not the layout.
func nextItem(p []byte, i int) (next int, more, ok bool) {
	if i < len(p) && (p[i] == ',' || p[i] == ']') {
		return i + 1, p[i] == ',', true
	}
	return i, false, false
}

// guessItems guesses how many items an array holds from the size of its
// first, p[first:end], rather than grow the slice many times.
func guessItems(p []byte, first, end int) int { return 2 + (len(p)-end)/(end-first) }

// joinSpans copies the spans of p into one string: one allocation for all
// of a record's ids. A span starting at -1 is skipped.
func joinSpans(p []byte, spans []int, size int) string {
	var all strings.Builder
	all.Grow(size)
	for k := 0; k < len(spans); k += 2 {
		if spans[k] >= 0 {
			all.Write(p[spans[k]:spans[k+1]])
		}
	}
	return all.String()
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

// DecodeResultBatch decodes a results record into *b, which it replaces: the
// result and the error are those of json.Unmarshal into a zero ResultBatch.
// Like DecodeEventBatch it reads AppendJSON's layout in one pass and hands
// anything else to json.Unmarshal.
//
// Unlike DecodeEventBatch, it copies the results' Data, all of a record's
// into one allocation (each cut to its length, so appending to one cannot
// write over the next); the ids share another. Aliasing p would be safe with
// Sarama, which never reuses a message's bytes (each fetch response is read
// into a new buffer, and decompressed batches are cloned out of its pools),
// but a ConsumerMessage's Value is a sub-slice of that whole response or
// batch. The fan-out history keeps recent results and bounds its memory by
// counting len(Data): results aliasing the response would keep every record
// fetched with them alive, those of unwatched streams included, far beyond
// what the history counts.
func DecodeResultBatch(p []byte, b *ResultBatch) error {
	if decodeResultBatchFast(p, b) {
		return nil
	}
	*b = ResultBatch{}
	if err := json.Unmarshal(p, b); err != nil {
		return err
	}
	b.Replaced = b.validResults()
	return nil
}

// The parts of (*ResultBatch).AppendJSON's layout between the values; the
// stream id's comes first, as in an events record.
const (
	resultsPartition = `,"source":{"partition":`
	resultsOffset    = `,"offset":`
	resultsList      = `},"results":[`
	resultHead       = `{"stream_id":"`
	resultEvent      = `,"event_id":"`
	resultReceived   = `,"received_at":`
	resultProcessed  = `,"processed_at":`
	resultData       = `,"data":`
)

// decodeResultBatchFast reads exactly (*ResultBatch).AppendJSON's layout into
// *b and reports whether p was in it; *b is not changed when it was not.
func decodeResultBatchFast(p []byte, b *ResultBatch) bool {
	if !hasAt(p, 0, batchHead) {
		return false
	}
	// Where the ids are in p, start and end: the stream's first, then per
	// result its stream id and event id; then where each result's data is.
	// A result's stream id is the record's (always, as the router writes
	// them): start -1 says so, and the result shares the record's string.
	var idBuf [2 + 4*128]int
	var dataBuf [2 * 128]int
	ids, data := idBuf[:0], dataBuf[:0]
	i, end, ok := plainString(p, len(batchHead))
	if !ok || !hasAt(p, end+1, resultsPartition) {
		return false
	}
	ids = append(ids, i, end)
	stream := p[i:end]
	d := resultsDecoder{p: p, idSize: end - i}
	var src Position
	if src, i, ok = readSource(p, end+1); !ok {
		return false
	}
	// json.Unmarshal makes an empty slice, not nil, of "results":[].
	results := []rtstream.Result{}
	var more bool
	i, more = firstItem(p, i)
	for first := i; more; {
		var r rtstream.Result
		if !hasAt(p, i, resultHead) {
			return false
		}
		start, end, ok := plainString(p, i+len(resultHead))
		if !ok || !hasAt(p, end+1, resultEvent) {
			return false
		}
		if string(p[start:end]) == string(stream) {
			ids = append(ids, -1, -1)
		} else {
			ids = append(ids, start, end)
			d.idSize += end - start
		}
		start, end, ok = plainString(p, end+1+len(resultEvent))
		if !ok || !hasAt(p, end+1, resultReceived) {
			return false
		}
		ids = append(ids, start, end)
		d.idSize += end - start
		if r, i, ok = d.times(end + 1); !ok {
			return false
		}
		// Inside the record, the results array and the result.
		if end, _, ok = jsonscan.Value(p, i, 3); !ok || end >= len(p) || p[end] != '}' {
			return false
		}
		data = append(data, i, end)
		d.size += end - i
		i = end + 1
		if len(results) == 0 {
			results = make([]rtstream.Result, 0, guessItems(p, first, i))
		}
		results = append(results, r)
		if i, more, ok = nextItem(p, i); !ok {
			return false
		}
	}
	if i != len(p)-1 || p[i] != '}' {
		return false
	}
	d.fill(b, results, ids, data)
	b.Source, b.Results = src, results
	return true
}

// readSource reads the record's source position, from its partition's
// member at p[i], and returns the index of its first result.
func readSource(p []byte, i int) (src Position, next int, ok bool) {
	n, i, ok := readInt(p, i+len(resultsPartition), math.MinInt32, math.MaxInt32)
	if !ok || !hasAt(p, i, resultsOffset) {
		return src, 0, false
	}
	src.Partition = int32(n)
	if src.Offset, i, ok = readInt(p, i+len(resultsOffset), math.MinInt64, math.MaxInt64); !ok || !hasAt(p, i, resultsList) {
		return src, 0, false
	}
	return src, i + len(resultsList), true
}

// resultsDecoder is what decoding a results record keeps between results.
type resultsDecoder struct {
	p      []byte
	idSize int // the ids' bytes together
	size   int // the data's bytes together
	// A record's results share their processing time, and those of one
	// request their receiving time: parse each once.
	received, processed timeCache
}

// times reads a result's times, from its received_at member at p[i], and
// returns the index of its data.
func (d *resultsDecoder) times(i int) (r rtstream.Result, next int, ok bool) {
	p := d.p
	if r.ReceivedAt, i, ok = d.received.read(p, i+len(resultReceived)); !ok || !hasAt(p, i, resultProcessed) {
		return r, 0, false
	}
	if r.ProcessedAt, i, ok = d.processed.read(p, i+len(resultProcessed)); !ok || !hasAt(p, i, resultData) {
		return r, 0, false
	}
	return r, i + len(resultData), true
}

// fill sets b's stream id and the results' ids and data, copied out of p:
// the ids into one string, the data into one allocation.
func (d *resultsDecoder) fill(b *ResultBatch, results []rtstream.Result, idSpans, dataSpans []int) {
	ids := joinSpans(d.p, idSpans, d.idSize)
	data := make([]byte, 0, d.size)
	b.StreamID, ids = ids[:idSpans[1]-idSpans[0]], ids[idSpans[1]-idSpans[0]:]
	for k := range results {
		r, s := &results[k], idSpans[2+4*k:6+4*k]
		r.StreamID = b.StreamID
		if s[0] >= 0 {
			r.StreamID, ids = ids[:s[1]-s[0]], ids[s[1]-s[0]:]
		}
		r.EventID, ids = ids[:s[3]-s[2]], ids[s[3]-s[2]:]
		at := len(data)
		data = append(data, d.p[dataSpans[2*k]:dataSpans[2*k+1]]...)
		r.Data = data[at:len(data):len(data)]
	}
}

// readInt reads the integer that begins at p[i] when json.Unmarshal would
// read it into an integer in [lo, hi] as it is: -?(0|[1-9][0-9]*), no
// fraction or exponent. It returns the index after it.
func readInt(p []byte, i int, lo, hi int64) (n int64, end int, ok bool) {
	neg := i < len(p) && p[i] == '-'
	if neg {
		i++
	}
	start := i
	var u uint64
	for ; i < len(p) && '0' <= p[i] && p[i] <= '9'; i++ {
		if i-start == 19 { // more than int64 holds; Kafka never gets there
			return 0, 0, false
		}
		u = u*10 + uint64(p[i]-'0')
	}
	switch {
	case i == start, p[start] == '0' && i > start+1:
		return 0, 0, false
	case neg && u <= uint64(-(lo+1))+1: // -lo may not fit
		return -int64(u), i, true // wraps to math.MinInt64 as it should
	case !neg && u <= uint64(hi):
		return int64(u), i, true
	}
	return 0, 0, false
}
