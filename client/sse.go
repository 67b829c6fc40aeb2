package client

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"
)

// sseFrame is one thing read from an event stream: a comment line, or a
// dispatched event.
type sseFrame struct {
	// Comment is the text of a comment line (": ping" → "ping"); set only
	// when IsComment.
	Comment   string
	IsComment bool
	// Event is the event's type, "message" when the server named none.
	Event string
	// Data is the event's data lines joined by "\n".
	Data string
	// ID is the stream's last event ID when the event was dispatched: the
	// event's own id field, or the latest one before it.
	ID string
}

// sseReader parses a text/event-stream the way the HTML standard's
// EventSource does (section 9.2.6 "Interpreting an event stream"): lines end
// in CRLF, LF or CR; a leading BOM is dropped; "field: value" loses one
// space after the colon; an event is dispatched at a blank line, and not at
// all if it has no data line; an id containing NUL is ignored; a partial
// event at the end of the stream is dropped.
type sseReader struct {
	sc     *bufio.Scanner
	first  bool
	lastID string
	// retry is the reconnection time the server asked for in a "retry:"
	// field; 0 when it did not.
	retry time.Duration
	// onLine is called after each line is read, for an idle timer.
	onLine func()
}

// maxSSELine bounds one line of the stream. A result's data is one line,
// and an event may be 1 MiB (MAX_BODY_BYTES) before a map makes it bigger.
const maxSSELine = 16 << 20

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	sc.Split(splitSSELines)
	return &sseReader{sc: sc, first: true}
}

// splitSSELines is a bufio.SplitFunc for lines ending in CRLF, LF or CR.
// A CR at the end of the data read so far waits for the next byte, to tell
// CRLF from CR.
func splitSSELines(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		switch {
		case i+1 < len(data) && data[i+1] == '\n':
			return i + 2, data[:i], nil
		case i+1 < len(data) || atEOF:
			return i + 1, data[:i], nil
		}
		return 0, nil, nil
	}
	if atEOF {
		// The last line has no end: hand it on, but as it cannot be
		// followed by a blank line, no event it belongs to is dispatched.
		return len(data), data, nil
	}
	return 0, nil, nil
}

// next returns the next comment or event. At the end of the stream it
// returns io.EOF (or the read error), having dropped any partial event.
func (r *sseReader) next() (sseFrame, error) {
	var (
		event   string
		data    strings.Builder
		hasData bool
	)
	for r.sc.Scan() {
		if r.onLine != nil {
			r.onLine()
		}
		line := r.sc.Text()
		if r.first {
			line = strings.TrimPrefix(line, "\uFEFF")
			r.first = false
		}
		if line == "" {
			if !hasData {
				event = "" // nothing to dispatch; the type does not carry over
				continue
			}
			if event == "" {
				event = "message"
			}
			return sseFrame{Event: event, Data: data.String(), ID: r.lastID}, nil
		}
		if line[0] == ':' {
			return sseFrame{IsComment: true, Comment: strings.TrimPrefix(line[1:], " ")}, nil
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			event = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID = value
			}
		case "retry":
			if ms, err := strconv.ParseUint(value, 10, 32); err == nil && value != "" && strings.Trim(value, "0123456789") == "" {
				r.retry = time.Duration(ms) * time.Millisecond
			}
		}
		// Other fields are ignored, as the standard says.
	}
	if err := r.sc.Err(); err != nil {
		return sseFrame{}, err
	}
	return sseFrame{}, io.EOF
}
