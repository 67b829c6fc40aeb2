package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/rtstream/rtstream/jsonscan"
	"github.com/rtstream/rtstream/problem"
)

type bodyKind int

const (
	kindJSON bodyKind = iota
	kindNDJSON
)

// contentKind maps a Content-Type header to the body kinds the API reads.
func contentKind(header string) (bodyKind, bool) {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return 0, false
	}
	switch {
	case mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")):
		return kindJSON, true
	case mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl" || mt == "application/x-jsonlines":
		return kindNDJSON, true
	}
	return 0, false
}

// decodeError is a request body that is not what the content type says.
type decodeError struct {
	detail string
	fields []problem.FieldError
}

func (e *decodeError) Error() string { return e.detail }

// errEmpty is a body with no event in it.
var errEmpty = errors.New("the request has no event")

// decodeEvents splits a body into events: one JSON value is one event, a
// top-level array is a batch, and NDJSON is one event per non-blank line.
// Every event is checked to be valid JSON, so nothing invalid reaches Kafka.
//
// Valid bodies are checked and split by jsonscan in one pass; encoding/json
// only explains the invalid ones, with the line and column of the error.
// Events are sub-slices of body: it is read for this request alone and never
// written to.
func decodeEvents(kind bodyKind, body []byte) ([]json.RawMessage, error) {
	if kind == kindNDJSON {
		return decodeNDJSON(body)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errEmpty
	}
	if trimmed[0] == '[' {
		batch, ok := splitArray(trimmed)
		if !ok && json.Valid(trimmed) {
			if off := firstInvalidUTF8(trimmed); off >= 0 {
				return nil, utf8Error(trimmed, off, "", "")
			}
		}
		if !ok {
			// Invalid: json.Unmarshal says where. (Were it valid after
			// all, it would decode the batch just as well.)
			if err := json.Unmarshal(trimmed, &batch); err != nil {
				return nil, &decodeError{detail: "invalid JSON: " + jsonErrorDetail(trimmed, err)}
			}
			for i := range batch {
				batch[i] = oneLine(batch[i])
			}
		}
		if len(batch) == 0 {
			return nil, errEmpty
		}
		return batch, nil
	}
	end, multiline, ok := jsonscan.Value(trimmed, 0, 0)
	if !ok || end != len(trimmed) {
		if off := firstInvalidUTF8(trimmed); off >= 0 && json.Valid(trimmed) {
			return nil, utf8Error(trimmed, off, "", "")
		}
		var v json.RawMessage
		err := json.Unmarshal(trimmed, &v)
		return nil, &decodeError{detail: "invalid JSON: " + jsonErrorDetail(trimmed, err)}
	}
	if multiline {
		return []json.RawMessage{oneLine(trimmed)}, nil
	}
	return []json.RawMessage{trimmed}, nil
}

// splitArray splits a valid JSON array into its elements, each made one line,
// as json.Unmarshal into []json.RawMessage and oneLine would; ok is false
// when arr is not one valid array. An element's capacity is cut to its
// length, so that appending to it cannot write over the next.
func splitArray(arr []byte) (elems []json.RawMessage, ok bool) {
	i, _ := jsonscan.SkipSpace(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return []json.RawMessage{}, i == len(arr)-1
	}
	for {
		end, multiline, ok := jsonscan.Value(arr, i, 1)
		if !ok {
			return nil, false
		}
		if elems == nil {
			// Guess the length from the first element's size, rather
			// than grow the slice many times.
			elems = make([]json.RawMessage, 0, 2+len(arr)/(end-i+1))
		}
		elem := json.RawMessage(arr[i:end:end])
		if multiline {
			elem = oneLine(elem)
		}
		elems = append(elems, elem)
		if i, _ = jsonscan.SkipSpace(arr, end); i >= len(arr) {
			return nil, false
		}
		switch arr[i] {
		case ',':
			i, _ = jsonscan.SkipSpace(arr, i+1)
		case ']':
			return elems, i == len(arr)-1
		default:
			return nil, false
		}
	}
}

// oneLine compacts valid JSON that has line breaks between its tokens: every
// later hop copies event data as it is, and an SSE data line must be one line.
func oneLine(data []byte) json.RawMessage {
	if bytes.IndexAny(data, "\r\n") < 0 {
		return data
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return data // unreachable: data was checked to be valid
	}
	return buf.Bytes()
}

func decodeNDJSON(body []byte) ([]json.RawMessage, error) {
	events := make([]json.RawMessage, 0, bytes.Count(body, []byte("\n"))+1)
	n := -1
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		end, multiline, ok := jsonscan.Value(line, 0, 0)
		if !ok || end != len(line) {
			if off := firstInvalidUTF8(line); off >= 0 && json.Valid(line) {
				return nil, utf8Error(line, off, fmt.Sprintf("/%d", len(events)), fmt.Sprintf(" on line %d", n+1))
			}
			var v json.RawMessage
			msg, _, col, ok := jsonErrorPos(line, json.Unmarshal(line, &v))
			where := fmt.Sprintf("line %d", n+1)
			if ok {
				where += fmt.Sprintf(", column %d", col)
			}
			return nil, &decodeError{
				detail: fmt.Sprintf("invalid JSON on %s: %s", where, msg),
				fields: []problem.FieldError{{Pointer: fmt.Sprintf("/%d", len(events)), Detail: fmt.Sprintf("line %d is not valid JSON", n+1)}},
			}
		}
		if multiline { // a CR between tokens
			line = oneLine(line)
		}
		events = append(events, line)
	}
	if len(events) == 0 {
		return nil, errEmpty
	}
	return events, nil
}

// jsonErrorDetail says where in data a JSON error is, as line and column of
// the offending byte.
func jsonErrorDetail(data []byte, err error) string {
	msg, line, col, ok := jsonErrorPos(data, err)
	if !ok {
		return msg
	}
	return fmt.Sprintf("%s (line %d, column %d)", msg, line, col)
}

// jsonErrorPos finds the line and column (from 1) of a JSON error.
// encoding/json's offsets count the bytes read, the offending one included.
func jsonErrorPos(data []byte, err error) (msg string, line, col int, ok bool) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err.Error(), 0, 0, false
	}
	at := int(off) - 1 // index of the offending byte
	if at < 0 {
		at = 0
	}
	if at > len(data) {
		at = len(data)
	}
	line = 1 + bytes.Count(data[:at], []byte("\n"))
	col = at - bytes.LastIndexByte(data[:at], '\n')
	return err.Error(), line, col, true
}
