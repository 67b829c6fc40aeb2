package record

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream"
)

// The Append methods write the records' JSON by hand. encoding/json would
// re-validate and re-compact every event's data at each hop (API → events
// record → router → results record → SSE frame), and that was most of the
// server's CPU under load. Data is checked and compacted once, where it enters
// (the API's decoder), so these methods copy it as it is. DecodeEventBatch
// and DecodeResultBatch read events and results records back the same way
// (codec_decode.go), falling back to encoding/json for any other layout.

// AppendJSON appends the batch as the JSON that json.Unmarshal reads back.
// Every event's Data must be valid JSON without line breaks.
func (b *EventBatch) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"stream_id":`...)
	dst = appendString(dst, b.StreamID)
	dst = append(dst, `,"events":[`...)
	for i := range b.Events {
		if i > 0 {
			dst = append(dst, ',')
		}
		e := &b.Events[i]
		dst = append(dst, `{"event_id":`...)
		dst = appendString(dst, e.ID)
		dst = append(dst, `,"received_at":`...)
		dst = appendTime(dst, e.ReceivedAt)
		dst = append(dst, `,"data":`...)
		dst = appendRaw(dst, e.Data)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// AppendResult appends the result as one line of JSON, as the contract shows
// it: also the body of an SSE frame. r.Data must be valid JSON without line
// breaks.
func AppendResult(dst []byte, r *rtstream.Result) []byte {
	dst = append(dst, `{"stream_id":`...)
	dst = appendString(dst, r.StreamID)
	dst = append(dst, `,"event_id":`...)
	dst = appendString(dst, r.EventID)
	dst = append(dst, `,"received_at":`...)
	dst = appendTime(dst, r.ReceivedAt)
	dst = append(dst, `,"processed_at":`...)
	dst = appendTime(dst, r.ProcessedAt)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, r.Data)
	return append(dst, '}')
}

// AppendJSON appends the results record.
func (b *ResultBatch) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"stream_id":`...)
	dst = appendString(dst, b.StreamID)
	dst = fmt.Appendf(dst, `,"source":{"partition":%d,"offset":%d},"results":[`, b.Source.Partition, b.Source.Offset)
	for i := range b.Results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendResult(dst, &b.Results[i])
	}
	return append(dst, "]}"...)
}

func appendRaw(dst []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires and
// what must never reach an SSE frame or a browser's script context raw.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
