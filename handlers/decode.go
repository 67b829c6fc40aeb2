package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"

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
func decodeEvents(kind bodyKind, body []byte) ([]json.RawMessage, error) {
	if kind == kindNDJSON {
		return decodeNDJSON(body)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errEmpty
	}
	if trimmed[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(trimmed, &batch); err != nil {
			return nil, &decodeError{detail: "invalid JSON: " + jsonErrorDetail(trimmed, err)}
		}
		if len(batch) == 0 {
			return nil, errEmpty
		}
		for i := range batch {
			batch[i] = oneLine(batch[i])
		}
		return batch, nil
	}
	if !json.Valid(trimmed) {
		var v json.RawMessage
		err := json.Unmarshal(trimmed, &v)
		return nil, &decodeError{detail: "invalid JSON: " + jsonErrorDetail(trimmed, err)}
	}
	return []json.RawMessage{oneLine(trimmed)}, nil
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
	var events []json.RawMessage
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
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
		events = append(events, oneLine(line))
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
