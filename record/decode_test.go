package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"

	"github.com/rtstream/rtstream"
)

// checkDecode decodes p with DecodeEventBatch and with json.Unmarshal and
// fails unless both give the same batch or the same error. It reports
// whether the fast path read p.
func checkDecode(t *testing.T, p []byte) (fast bool) {
	t.Helper()
	var probe EventBatch
	fast = decodeEventBatchFast(p, &probe)
	got := EventBatch{StreamID: "stale", Events: []rtstream.Event{{ID: "stale"}}}
	gotErr := DecodeEventBatch(p, &got)
	var want EventBatch
	wantErr := json.Unmarshal(p, &want)
	// Where the two differ on purpose (issue 17): data that is not UTF-8
	// comes out with U+FFFD in its place, never raw.
	want.Replaced = want.validEvents()
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("DecodeEventBatch(%q) error %v; json.Unmarshal error %v", p, gotErr, wantErr)
	case gotErr != nil:
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("DecodeEventBatch(%q) error %q; json.Unmarshal error %q", p, gotErr, wantErr)
		}
		if fast {
			t.Fatalf("fast path read %q, which json.Unmarshal rejects: %v", p, wantErr)
		}
	default:
		if d := diffBatch(got, want); d != "" {
			t.Fatalf("DecodeEventBatch(%q): %s", p, d)
		}
		if fast {
			if d := diffBatch(probe, want); d != "" {
				t.Fatalf("fast path on %q: %s", p, d)
			}
		}
	}
	return fast
}

// diffBatch says how two batches differ, or "" when they are the same to
// every reader: nil and empty slices differ, times compare with their zones.
func diffBatch(got, want EventBatch) string {
	if got.StreamID != want.StreamID {
		return fmt.Sprintf("stream id %q; want %q", got.StreamID, want.StreamID)
	}
	if (got.Events == nil) != (want.Events == nil) || len(got.Events) != len(want.Events) {
		return fmt.Sprintf("events %#v; want %#v", got.Events, want.Events)
	}
	for i := range got.Events {
		g, w := got.Events[i], want.Events[i]
		gName, gOff := g.ReceivedAt.Zone()
		wName, wOff := w.ReceivedAt.Zone()
		switch {
		case g.ID != w.ID:
			return fmt.Sprintf("event %d id %q; want %q", i, g.ID, w.ID)
		case !g.ReceivedAt.Equal(w.ReceivedAt) || gName != wName || gOff != wOff || g.ReceivedAt.Location().String() != w.ReceivedAt.Location().String():
			return fmt.Sprintf("event %d time %v; want %v", i, g.ReceivedAt, w.ReceivedAt)
		case (g.Data == nil) != (w.Data == nil) || !bytes.Equal(g.Data, w.Data):
			return fmt.Sprintf("event %d data %q; want %q", i, g.Data, w.Data)
		}
	}
	return ""
}

func TestDecodeEventBatchMatchesUnmarshal(t *testing.T) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	encoded := func(b EventBatch) string { return string(b.AppendJSON(nil)) }
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	// Nesting that json.Unmarshal accepts in a record: the record, its
	// events array and the event hold the data.
	const dataDepth = jsonscan.MaxDepth - 3
	tests := []struct {
		name string
		in   string
		fast bool // the fast path must read it
	}{
		{"one event", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "01J", ReceivedAt: at, Data: json.RawMessage(`{"a":1}`)}}}), true},
		{"no events", encoded(EventBatch{StreamID: "s"}), true},
		{"null data", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "e", ReceivedAt: at}}}), true},
		{"zero time", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "e", Data: json.RawMessage(`1`)}}}), true},
		{"empty ids", encoded(EventBatch{Events: []rtstream.Event{{ReceivedAt: at, Data: json.RawMessage(`""`)}}}), true},
		{"time with offset", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "e", ReceivedAt: at.In(time.FixedZone("X", 5*3600+1800)), Data: json.RawMessage(`2`)}}}), true},
		{"unicode ids", encoded(EventBatch{StreamID: "é✓😀", Events: []rtstream.Event{{ID: "ü", ReceivedAt: at, Data: json.RawMessage(`3`)}}}), true},
		{"many events", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{
			{ID: "1", ReceivedAt: at, Data: json.RawMessage(`{"a":{"b":[1,2.5e-3,-0,"x\"y\\z\u00e9\ud83d\ude00",true,false,null]},"c":{}}`)},
			{ID: "2", ReceivedAt: at, Data: json.RawMessage(`"<script>&\u2028"`)},
			{ID: "3", ReceivedAt: at, Data: json.RawMessage(`[ 1 , { "a" : [ ] } ]`)},
			{ID: "4", ReceivedAt: at, Data: json.RawMessage("\"é\"")},
			{ID: "5", ReceivedAt: at, Data: json.RawMessage(`-12.5E+10`)},
		}}), true},
		// Written by an older version or another producer: the slow path
		// replaces the bytes (issue 17).
		{"data not UTF-8", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "4", ReceivedAt: at, Data: json.RawMessage("\"é\xff\"")}}}), false},
		{"data with line breaks", "{\"stream_id\":\"s\",\"events\":[{\"event_id\":\"e\",\"received_at\":\"2026-01-02T03:04:05Z\",\"data\":[1,\r\n2]}]}", true},
		{"data at the depth limit", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":` + deep(dataDepth) + `}]}`, true},
		{"data over the depth limit", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":` + deep(dataDepth+1) + `}]}`, false},

		// Escapes in ids: json.Unmarshal decodes them.
		{"escaped ids", encoded(EventBatch{StreamID: "q\"<&>\n\x01\u2028", Events: []rtstream.Event{{ID: "\\", ReceivedAt: at, Data: json.RawMessage(`4`)}}}), false},
		{"invalid UTF-8 id", encoded(EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "a\xffb", ReceivedAt: at, Data: json.RawMessage(`4`)}}}), false},
		{"raw invalid UTF-8 id", "{\"stream_id\":\"s\xff\",\"events\":[]}", false},
		{"unicode escape id", `{"stream_id":"\u0073","events":[]}`, false},

		// Other layouts of a good record.
		{"whitespace", `{ "stream_id":"s","events":[]}`, false},
		{"space before data", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data": 1}]}`, false},
		{"trailing newline", "{\"stream_id\":\"s\",\"events\":[]}\n", false},
		{"keys swapped", `{"events":[],"stream_id":"s"}`, false},
		{"event keys swapped", `{"stream_id":"s","events":[{"received_at":"2026-01-02T03:04:05Z","event_id":"e","data":1}]}`, false},
		{"unknown field", `{"stream_id":"s","events":[],"x":1}`, false},
		{"unknown event field", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":1,"x":2}]}`, false},
		{"no data", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z"}]}`, false},
		{"duplicate key", `{"stream_id":"s","events":[],"stream_id":"t"}`, false},
		{"other case", `{"Stream_ID":"s","EVENTS":[]}`, false},
		{"null events", `{"stream_id":"s","events":null}`, false},
		{"no events", `{"stream_id":"s"}`, false},
		{"empty object", `{}`, false},
		{"null record", `null`, false},
		{"null time", `{"stream_id":"s","events":[{"event_id":"e","received_at":null,"data":1}]}`, false},

		// Records json.Unmarshal rejects.
		{"empty", ``, false},
		{"not JSON", `not json`, false},
		{"array", `[]`, false},
		{"truncated", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":{"a":`, false},
		{"trailing garbage", `{"stream_id":"s","events":[]}x`, false},
		{"two records", `{"stream_id":"s","events":[]}{}`, false},
		{"bad data", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":[1,]}]}`, false},
		{"bad data literal", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":nul}]}`, false},
		{"bad time", `{"stream_id":"s","events":[{"event_id":"e","received_at":"yesterday","data":1}]}`, false},
		{"time not a string", `{"stream_id":"s","events":[{"event_id":"e","received_at":5,"data":1}]}`, false},
		{"escaped time", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05\u005a","data":1}]}`, false},
		{"time with bad escape", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026\x","data":1}]}`, false},
		{"lenient time", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05.Z","data":1}]}`, false},
		{"id not a string", `{"stream_id":1,"events":[]}`, false},
		{"trailing comma", `{"stream_id":"s","events":[{"event_id":"e","received_at":"2026-01-02T03:04:05Z","data":1},]}`, false},
		{"control byte in id", "{\"stream_id\":\"a\x01\",\"events\":[]}", false},
		{"time with control byte", "{\"stream_id\":\"s\",\"events\":[{\"event_id\":\"e\",\"received_at\":\"2026\x01\",\"data\":1}]}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast := checkDecode(t, []byte(tt.in))
			if tt.fast && !fast {
				t.Errorf("the fast path did not read %q", tt.in)
			}
		})
	}
}

// TestDecodeEventBatchDataIsItsOwn checks that appending to one event's data
// writes over neither the record nor the next event's data.
func TestDecodeEventBatchDataIsItsOwn(t *testing.T) {
	p := []byte(`{"stream_id":"s","events":[{"event_id":"1","received_at":"2026-01-02T03:04:05Z","data":1},{"event_id":"2","received_at":"2026-01-02T03:04:05Z","data":2}]}`)
	orig := string(p)
	var b EventBatch
	if err := DecodeEventBatch(p, &b); err != nil {
		t.Fatal(err)
	}
	_ = append(b.Events[0].Data, "xxxxxxxx"...)
	if string(p) != orig || string(b.Events[1].Data) != "2" {
		t.Fatalf("appending to data changed the record: %s", p)
	}
}

// plainID reports whether AppendJSON writes s without escapes, so that the
// fast path must read it back.
func plainID(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "\"\\<>&\u2028\u2029") && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 }) < 0
}

// FuzzDecodeEventBatch: DecodeEventBatch gives what json.Unmarshal gives on
// any input, and AppendJSON's records of any batch decode back on the fast
// path.
func FuzzDecodeEventBatch(f *testing.F) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	b := EventBatch{StreamID: "s", Events: []rtstream.Event{{ID: "01J", ReceivedAt: at, Data: json.RawMessage(`{"a":[1,"x"]}`)}, {ID: "2", ReceivedAt: at}}}
	for _, seed := range []string{string(b.AppendJSON(nil)), `{"stream_id":"s","events":[]}`, `{"events":[],"stream_id":"s"}`, `not json`, ``} {
		f.Add([]byte(seed), "s", "e", []byte(`{"a":1}`), at.Unix(), uint32(at.Nanosecond()), int16(0))
	}
	f.Add([]byte(`{"stream_id":"\u0073","events":[]}`), "a\"<\xff", "\u2028", []byte(` [1, {"b":null}] `), int64(-1e12), uint32(999999999), int16(-330))
	f.Fuzz(func(t *testing.T, p []byte, stream, id string, data []byte, sec int64, nsec uint32, offMin int16) {
		checkDecode(t, p)

		if !json.Valid(data) {
			return
		}
		data = bytes.Trim(data, " \t\r\n") // AppendJSON copies data as it is
		zone := time.FixedZone("", int(offMin)%(24*60)*60)
		at := time.Unix(sec, int64(nsec%1e9)).In(zone)
		batch := EventBatch{StreamID: stream, Events: []rtstream.Event{{ID: id, ReceivedAt: at, Data: data}, {ID: id + "2", ReceivedAt: at}}}
		rec := batch.AppendJSON(nil)
		fast := checkDecode(t, rec)
		// Data that is not UTF-8 leaves the fast path on purpose (issue 17):
		// the slow path replaces its bytes.
		if y := at.Year(); !fast && utf8.Valid(data) && plainID(stream) && plainID(id) && 0 <= y && y <= 9999 {
			t.Fatalf("the fast path did not read %q", rec)
		}
	})
}

// benchmarkRecord is a record of 100 events of about 100 bytes each, as a
// batch send makes it.
func benchmarkRecord() []byte {
	at := time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC)
	b := EventBatch{StreamID: "bench-stream", Events: make([]rtstream.Event, 100)}
	for i := range b.Events {
		b.Events[i] = rtstream.Event{
			ID:         fmt.Sprintf("01JDQ7Z8X9%016d", i),
			ReceivedAt: at,
			Data:       json.RawMessage(fmt.Sprintf(`{"user":"user-%05d","action":"click","value":%d.25,"tags":["web","eu"],"ok":true,"ref":null}`, i, i*7)),
		}
	}
	return b.AppendJSON(nil)
}

func BenchmarkDecodeEventBatch(b *testing.B) {
	p := benchmarkRecord()
	decoders := []struct {
		name   string
		decode func([]byte, *EventBatch) error
	}{
		{"encoding_json", func(p []byte, b *EventBatch) error { return json.Unmarshal(p, b) }},
		{"fast", DecodeEventBatch},
	}
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				var batch EventBatch
				if err := d.decode(p, &batch); err != nil || len(batch.Events) != 100 {
					b.Fatalf("decoded %d events: %v", len(batch.Events), err)
				}
			}
		})
	}
}
