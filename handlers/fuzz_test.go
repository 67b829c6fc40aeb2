package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream"
)

// FuzzDecodeFrame: a WebSocket client frame is either events (each valid,
// one-line JSON, as many as allowed) or a problem with a 4xx status — never a
// panic.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, `{"events":[1,{"b":2}]}`, `{"events":[]}`, `{"events":1}`,
		`{"events":[1],"x":2}`, "  \n", `{bad`, `"str\n"`, `{"events":[{"events":[1]}]}`} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte{0xff, 0x00}, true)
	const maxBatch = 5
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		typ := websocket.MessageText
		if binary {
			typ = websocket.MessageBinary
		}
		events, p := decodeFrame(typ, data, maxBatch)
		if p != nil {
			if p.Status < 400 || p.Status > 499 || events != nil {
				t.Fatalf("decodeFrame(%q): status %d with %d events", data, p.Status, len(events))
			}
			return
		}
		if len(events) == 0 || len(events) > maxBatch {
			t.Fatalf("decodeFrame(%q): %d events", data, len(events))
		}
		for _, e := range events {
			if !json.Valid(e) || bytes.ContainsAny(e, "\r\n") {
				t.Fatalf("decodeFrame(%q): event %q is not one line of JSON", data, e)
			}
		}
	})
}

// FuzzDecodeStream: a stream definition body is accepted, or refused with
// 400, 413 or 415 as problem+json — never a panic or a 500.
func FuzzDecodeStream(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":"x"}`, `{"name":"x","processor":{"filter":"data.a > 1","map":"data"}}`,
		`{"name":1}`, `{"nam":"x"}`, `{"name":"x"} {}`, `{"processor":{"filter":"data.a >"}}`, `{"name":"\u0001"}`, `[]`} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`name=x`), "application/x-www-form-urlencoded")
	s := &server{cfg: Config{}, log: discardLogger()}
	s.cfg.setDefaults()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/streams", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		if _, ok := s.decodeStream(w, r); ok {
			return
		}
		switch w.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("body %q (%s): status %d, want 400/413/415", body, contentType, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("body %q: refusal with Content-Type %q", body, ct)
		}
	})
}

// FuzzResultFrames: the SSE frame and the WebSocket frame of any result are
// well formed — the SSE frame is exactly id, event and data lines (no line
// break can come in through the data), and both data objects are JSON that
// says what the result says.
func FuzzResultFrames(f *testing.F) {
	f.Add("s1", "e1", []byte(`{"a":1}`), int32(3), int64(17), 2)
	f.Add("s\n2", "e\u2028", []byte(`"x\ny"`), int32(0), int64(0), 0)
	at := time.Date(2026, 11, 28, 1, 2, 3, 4, time.UTC)
	f.Fuzz(func(t *testing.T, streamID, eventID string, data []byte, part int32, off int64, idx int) {
		if !json.Valid(data) || part < 0 || off < 0 || idx < 0 {
			return // results carry compacted JSON and cursors are not negative
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			return
		}
		d := rtstream.Delivery{
			Cursor: rtstream.Cursor{Partition: part, Offset: off, Index: idx},
			Result: rtstream.Result{StreamID: streamID, EventID: eventID, ReceivedAt: at, ProcessedAt: at, Data: compact.Bytes()},
		}
		var sse bytes.Buffer
		bw := bufio.NewWriter(&sse)
		if _, err := writeResult(bw, nil, &d); err != nil {
			t.Fatal(err)
		}
		_ = bw.Flush()
		lines := bytes.Split(bytes.TrimSuffix(sse.Bytes(), []byte("\n\n")), []byte("\n"))
		if len(lines) != 3 || !bytes.HasPrefix(lines[0], []byte("id: ")) || string(lines[1]) != "event: result" || !bytes.HasPrefix(lines[2], []byte("data: ")) {
			t.Fatalf("SSE frame %q is not id, event and data lines", sse.Bytes())
		}
		check := func(what string, obj []byte, wantCursor bool) {
			var got struct {
				Cursor   *string         `json:"cursor"`
				StreamID string          `json:"stream_id"`
				EventID  string          `json:"event_id"`
				Data     json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(obj, &got); err != nil {
				t.Fatalf("%s %q: %v", what, obj, err)
			}
			if wantCursor && (got.Cursor == nil || *got.Cursor != d.Cursor.String()) {
				t.Fatalf("%s %q: cursor %v, want %s", what, obj, got.Cursor, d.Cursor)
			}
			var a, b any
			_ = json.Unmarshal(got.Data, &a)
			_ = json.Unmarshal(compact.Bytes(), &b)
			if got.EventID != jsonString(eventID) || got.StreamID != jsonString(streamID) || !jsonSame(a, b) {
				t.Fatalf("%s %q does not say what the result says", what, obj)
			}
		}
		check("SSE data", bytes.TrimPrefix(lines[2], []byte("data: ")), false)
		check("WebSocket frame", appendDelivery(nil, &d), true)
	})
}

// jsonString is s as a JSON string decodes back: invalid UTF-8 becomes U+FFFD.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func jsonSame(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
