package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// FuzzAcceptedLeavesAsUTF8: every body a send accepts, as JSON or NDJSON,
// comes out of every transport as valid UTF-8 JSON: its events through the
// events and results records (the router passes data through), then the SSE
// frame's data line, and the object a WebSocket frame and a poll page carry.
// A body that is not UTF-8 must not be accepted at all (issue 17).
func FuzzAcceptedLeavesAsUTF8(f *testing.F) {
	for _, s := range []string{`{"a":"é"}`, "[1,\"\xe2\x82\xac\"]", "{\"a\":\"\xff\xfe\"}", "{\"x\":1}\n{\"y\":\"\xc3\"}\n", `"\ud800"`, "[\"a\",\r\n\"\xf0\x9f\x98\x80\"]"} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	at := time.Date(2026, 12, 4, 1, 2, 3, 4, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		kind := kindJSON
		if ndjson {
			kind = kindNDJSON
		}
		events, err := decodeEvents(kind, body)
		if err != nil {
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted %q, which is not UTF-8", body)
		}
		in := record.EventBatch{StreamID: "s"}
		for i, ev := range events {
			in.Events = append(in.Events, rtstream.Event{ID: string(rune('a' + i%26)), ReceivedAt: at, Data: ev})
		}
		var stored record.EventBatch
		if err := record.DecodeEventBatch(in.AppendJSON(nil), &stored); err != nil {
			t.Fatalf("events record of %q: %v", body, err)
		}
		out := record.ResultBatch{StreamID: "s"}
		for _, ev := range stored.Events {
			out.Results = append(out.Results, rtstream.Result{StreamID: "s", EventID: ev.ID, ReceivedAt: at, ProcessedAt: at, Data: ev.Data})
		}
		var read record.ResultBatch
		if err := record.DecodeResultBatch(out.AppendJSON(nil), &read); err != nil {
			t.Fatalf("results record of %q: %v", body, err)
		}
		for i := range read.Results {
			d := rtstream.Delivery{Cursor: rtstream.Cursor{Offset: int64(i)}, Result: read.Results[i]}
			var sse bytes.Buffer
			bw := bufio.NewWriter(&sse)
			if _, err := writeResult(bw, nil, &d); err != nil {
				t.Fatal(err)
			}
			_ = bw.Flush()
			lines := bytes.Split(bytes.TrimSuffix(sse.Bytes(), []byte("\n\n")), []byte("\n"))
			data := bytes.TrimPrefix(lines[len(lines)-1], []byte("data: "))
			for what, obj := range map[string][]byte{"SSE data": data, "WebSocket frame and poll page": appendDelivery(nil, &d)} {
				if !utf8.Valid(obj) || !json.Valid(obj) {
					t.Fatalf("%s of %q is not valid UTF-8 JSON: %q", what, body, obj)
				}
			}
		}
	})
}
