package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"

	"github.com/rtstream/rtstream"
)

// checkResultDecode decodes p with DecodeResultBatch and with json.Unmarshal
// and fails unless both give the same batch or the same error. It reports
// whether the fast path read p.
func checkResultDecode(t *testing.T, p []byte) (fast bool) {
	t.Helper()
	var probe ResultBatch
	fast = decodeResultBatchFast(p, &probe)
	got := ResultBatch{StreamID: "stale", Source: Position{Partition: 9, Offset: 9}, Results: []rtstream.Result{{EventID: "stale"}}}
	gotErr := DecodeResultBatch(p, &got)
	var want ResultBatch
	wantErr := json.Unmarshal(p, &want)
	// Where the two differ on purpose (issue 17): data that is not UTF-8
	// comes out with U+FFFD in its place, never raw.
	want.Replaced = want.validResults()
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("DecodeResultBatch(%q) error %v; json.Unmarshal error %v", p, gotErr, wantErr)
	case gotErr != nil:
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("DecodeResultBatch(%q) error %q; json.Unmarshal error %q", p, gotErr, wantErr)
		}
		if fast {
			t.Fatalf("fast path read %q, which json.Unmarshal rejects: %v", p, wantErr)
		}
	default:
		if d := diffResultBatch(got, want); d != "" {
			t.Fatalf("DecodeResultBatch(%q): %s", p, d)
		}
		if fast {
			if d := diffResultBatch(probe, want); d != "" {
				t.Fatalf("fast path on %q: %s", p, d)
			}
		}
	}
	return fast
}

// diffResultBatch says how two batches differ, or "" when they are the same
// to every reader: nil and empty slices differ, times compare with their
// zones.
func diffResultBatch(got, want ResultBatch) string {
	if got.StreamID != want.StreamID || got.Source != want.Source {
		return fmt.Sprintf("stream %q at %+v; want %q at %+v", got.StreamID, got.Source, want.StreamID, want.Source)
	}
	if (got.Results == nil) != (want.Results == nil) || len(got.Results) != len(want.Results) {
		return fmt.Sprintf("results %#v; want %#v", got.Results, want.Results)
	}
	for i := range got.Results {
		g, w := got.Results[i], want.Results[i]
		switch {
		case g.StreamID != w.StreamID || g.EventID != w.EventID:
			return fmt.Sprintf("result %d ids %q, %q; want %q, %q", i, g.StreamID, g.EventID, w.StreamID, w.EventID)
		case !sameTime(g.ReceivedAt, w.ReceivedAt):
			return fmt.Sprintf("result %d received %v; want %v", i, g.ReceivedAt, w.ReceivedAt)
		case !sameTime(g.ProcessedAt, w.ProcessedAt):
			return fmt.Sprintf("result %d processed %v; want %v", i, g.ProcessedAt, w.ProcessedAt)
		case (g.Data == nil) != (w.Data == nil) || !bytes.Equal(g.Data, w.Data):
			return fmt.Sprintf("result %d data %q; want %q", i, g.Data, w.Data)
		}
	}
	return ""
}

// sameTime reports whether two times are the same instant in the same zone.
func sameTime(a, b time.Time) bool {
	aName, aOff := a.Zone()
	bName, bOff := b.Zone()
	return a.Equal(b) && aName == bName && aOff == bOff && a.Location().String() == b.Location().String()
}

func TestDecodeResultBatchMatchesUnmarshal(t *testing.T) {
	received := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	processed := received.Add(1234567 * time.Nanosecond)
	encoded := func(b ResultBatch) string { return string(b.AppendJSON(nil)) }
	one := func(r rtstream.Result) string {
		return encoded(ResultBatch{StreamID: "s", Source: Position{Partition: 1, Offset: 2}, Results: []rtstream.Result{r}})
	}
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	// Nesting that json.Unmarshal accepts in a record: the record, its
	// results array and the result hold the data.
	const dataDepth = jsonscan.MaxDepth - 3
	rec := func(source, results string) string {
		return `{"stream_id":"s","source":` + source + `,"results":` + results + `}`
	}
	const src = `{"partition":1,"offset":2}`
	result := func(data string) string {
		return `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":` + data + `}]`
	}
	tests := []struct {
		name string
		in   string
		fast bool // the fast path must read it
	}{
		{"one result", one(rtstream.Result{StreamID: "s", EventID: "01J", ReceivedAt: received, ProcessedAt: processed, Data: json.RawMessage(`{"a":1}`)}), true},
		{"no results", encoded(ResultBatch{StreamID: "s", Source: Position{Partition: 3, Offset: 4}}), true},
		{"zero record", encoded(ResultBatch{}), true},
		{"null data", one(rtstream.Result{StreamID: "s", EventID: "e", ReceivedAt: received, ProcessedAt: processed}), true},
		{"zero times", one(rtstream.Result{StreamID: "s", EventID: "e", Data: json.RawMessage(`1`)}), true},
		{"empty ids", one(rtstream.Result{ReceivedAt: received, Data: json.RawMessage(`""`)}), true},
		{"other stream in a result", one(rtstream.Result{StreamID: "t", EventID: "e", Data: json.RawMessage(`1`)}), true},
		{"times with offsets", one(rtstream.Result{StreamID: "s", EventID: "e", ReceivedAt: received.In(time.FixedZone("X", 5*3600+1800)), ProcessedAt: processed.In(time.FixedZone("", -7*3600)), Data: json.RawMessage(`2`)}), true},
		{"unicode ids", encoded(ResultBatch{StreamID: "é✓😀", Results: []rtstream.Result{{StreamID: "é✓😀", EventID: "ü", ReceivedAt: received, Data: json.RawMessage(`3`)}}}), true},
		{"negative position", encoded(ResultBatch{StreamID: "s", Source: Position{Partition: -1, Offset: -2}}), true},
		{"smallest position", encoded(ResultBatch{StreamID: "s", Source: Position{Partition: math.MinInt32, Offset: math.MinInt64}}), true},
		{"largest position", encoded(ResultBatch{StreamID: "s", Source: Position{Partition: math.MaxInt32, Offset: math.MaxInt64}}), true},
		{"many results", encoded(ResultBatch{StreamID: "s", Source: Position{Partition: 7, Offset: 123456789012}, Results: []rtstream.Result{
			{StreamID: "s", EventID: "1", ReceivedAt: received, ProcessedAt: processed, Data: json.RawMessage(`{"a":{"b":[1,2.5e-3,-0,"x\"y\\z\u00e9\ud83d\ude00",true,false,null]},"c":{}}`)},
			{StreamID: "s", EventID: "2", ReceivedAt: received, ProcessedAt: processed, Data: json.RawMessage(`"<script>&\u2028"`)},
			{StreamID: "s", EventID: "3", ReceivedAt: processed, ProcessedAt: processed, Data: json.RawMessage(`[ 1 , { "a" : [ ] } ]`)},
			{StreamID: "t", EventID: "4", ReceivedAt: received, ProcessedAt: received, Data: json.RawMessage("\"é\"")},
			{StreamID: "s", EventID: "5", ReceivedAt: received, ProcessedAt: processed, Data: json.RawMessage(`-12.5E+10`)},
		}}), true},
		// Written by an older version or another producer: the slow path
		// replaces the bytes (issue 17).
		{"data not UTF-8", rec(src, result("\"é\xff\"")), false},
		{"data with line breaks", rec(src, result("[1,\r\n2]")), true},
		{"data at the depth limit", rec(src, result(deep(dataDepth))), true},
		{"data over the depth limit", rec(src, result(deep(dataDepth+1))), false},
		{"negative zero", rec(`{"partition":-0,"offset":-0}`, `[]`), true},

		// Escapes in ids: json.Unmarshal decodes them.
		{"escaped ids", encoded(ResultBatch{StreamID: "q\"<&>\n\x01\u2028", Results: []rtstream.Result{{StreamID: "q\"<&>\n\x01\u2028", EventID: "\\", Data: json.RawMessage(`4`)}}}), false},
		{"escaped event id", one(rtstream.Result{StreamID: "s", EventID: "a<b", Data: json.RawMessage(`4`)}), false},
		{"invalid UTF-8 id", one(rtstream.Result{StreamID: "s", EventID: "a\xffb", Data: json.RawMessage(`4`)}), false},
		{"raw invalid UTF-8 id", "{\"stream_id\":\"s\xff\",\"source\":{\"partition\":1,\"offset\":2},\"results\":[]}", false},
		{"unicode escape id", `{"stream_id":"\u0073","source":{"partition":1,"offset":2},"results":[]}`, false},

		// Other layouts of a good record.
		{"whitespace", ` {"stream_id":"s","source":{"partition":1,"offset":2},"results":[]}`, false},
		{"space in source", rec(`{"partition": 1,"offset":2}`, `[]`), false},
		{"trailing newline", rec(src, `[]`) + "\n", false},
		{"keys swapped", `{"results":[],"stream_id":"s","source":{"partition":1,"offset":2}}`, false},
		{"source keys swapped", rec(`{"offset":2,"partition":1}`, `[]`), false},
		{"result keys swapped", rec(src, `[{"event_id":"e","stream_id":"s","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"unknown field", `{"stream_id":"s","source":{"partition":1,"offset":2},"results":[],"x":1}`, false},
		{"unknown source field", rec(`{"partition":1,"offset":2,"x":3}`, `[]`), false},
		{"no source", `{"stream_id":"s","results":[]}`, false},
		{"null source", rec(`null`, `[]`), false},
		{"null results", rec(src, `null`), false},
		{"null time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":null,"processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"null processed time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":null,"data":1}]`), false},
		{"null ids", `{"stream_id":null,"source":{"partition":1,"offset":2},"results":[]}`, false},
		{"no data", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z"}]`), false},
		{"duplicate key", `{"stream_id":"s","source":{"partition":1,"offset":2},"results":[],"stream_id":"t"}`, false},
		{"other case", `{"Stream_ID":"s","SOURCE":{"Partition":1,"offset":2},"results":[]}`, false},
		{"float position", rec(`{"partition":1.0,"offset":2}`, `[]`), false},
		{"exponent position", rec(`{"partition":1,"offset":2e3}`, `[]`), false},
		{"string position", rec(`{"partition":"1","offset":2}`, `[]`), false},
		{"empty object", `{}`, false},
		{"null record", `null`, false},

		// Records json.Unmarshal rejects.
		{"empty", ``, false},
		{"not JSON", `not json`, false},
		{"array", `[]`, false},
		{"truncated", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":{"a":`)[:150], false},
		{"truncated number", `{"stream_id":"s","source":{"partition":1`, false},
		{"trailing garbage", rec(src, `[]`) + "x", false},
		{"two records", rec(src, `[]`) + "{}", false},
		{"bad data", rec(src, result(`[1,]`)), false},
		{"bad data literal", rec(src, result(`nul`)), false},
		{"leading zero", rec(`{"partition":01,"offset":2}`, `[]`), false},
		{"plus sign", rec(`{"partition":+1,"offset":2}`, `[]`), false},
		{"lone minus", rec(`{"partition":-,"offset":2}`, `[]`), false},
		{"partition over int32", rec(`{"partition":2147483648,"offset":2}`, `[]`), false},
		{"partition under int32", rec(`{"partition":-2147483649,"offset":2}`, `[]`), false},
		{"offset over int64", rec(`{"partition":1,"offset":9223372036854775808}`, `[]`), false},
		{"offset under int64", rec(`{"partition":1,"offset":-9223372036854775809}`, `[]`), false},
		{"offset of 20 digits", rec(`{"partition":1,"offset":12345678901234567890}`, `[]`), false},
		{"bad time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"yesterday","processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"bad processed time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"today","data":1}]`), false},
		{"time not a string", rec(src, `[{"stream_id":"s","event_id":"e","received_at":5,"processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"escaped time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05\u005a","processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"lenient time", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05.Z","processed_at":"2026-01-02T03:04:06Z","data":1}]`), false},
		{"id not a string", `{"stream_id":1,"source":{"partition":1,"offset":2},"results":[]}`, false},
		{"trailing comma", rec(src, `[{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":1},]`), false},
		{"control byte in id", "{\"stream_id\":\"a\x01\",\"source\":{\"partition\":1,\"offset\":2},\"results\":[]}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast := checkResultDecode(t, []byte(tt.in))
			if tt.fast && !fast {
				t.Errorf("the fast path did not read %q", tt.in)
			}
		})
	}
}

// TestDecodeResultBatchDataIsItsOwn checks that the results' data does not
// share the record's bytes (the fan-out history keeps it), and that
// appending to one result's data does not write over the next's.
func TestDecodeResultBatchDataIsItsOwn(t *testing.T) {
	p := []byte(`{"stream_id":"s","source":{"partition":0,"offset":1},"results":[` +
		`{"stream_id":"s","event_id":"1","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":1},` +
		`{"stream_id":"s","event_id":"2","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:06Z","data":2}]}`)
	var b ResultBatch
	if !decodeResultBatchFast(p, &b) {
		t.Fatal("the fast path did not read the record")
	}
	_ = append(b.Results[0].Data, "xxxxxxxx"...)
	clear(p)
	if string(b.Results[0].Data) != "1" || string(b.Results[1].Data) != "2" {
		t.Fatalf("data changed with the record or its neighbour: %q, %q", b.Results[0].Data, b.Results[1].Data)
	}
}

// FuzzDecodeResultBatch: DecodeResultBatch gives what json.Unmarshal gives on
// any input, and AppendJSON's records of any batch decode back on the fast
// path.
func FuzzDecodeResultBatch(f *testing.F) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	b := ResultBatch{StreamID: "s", Source: Position{Partition: 1, Offset: 2}, Results: []rtstream.Result{
		{StreamID: "s", EventID: "01J", ReceivedAt: at, ProcessedAt: at, Data: json.RawMessage(`{"a":[1,"x"]}`)},
		{StreamID: "s", EventID: "2", ReceivedAt: at},
	}}
	for _, seed := range []string{
		string(b.AppendJSON(nil)),
		`{"stream_id":"s","source":{"partition":-1,"offset":9223372036854775807},"results":[]}`,
		`{"results":[],"stream_id":"s","source":{"partition":1,"offset":2}}`,
		`not json`, ``,
	} {
		f.Add([]byte(seed), "s", "e", []byte(`{"a":1}`), at.Unix(), uint32(at.Nanosecond()), int16(0), int32(1), int64(2))
	}
	f.Add([]byte(`{"stream_id":"\u0073","source":{"partition":01,"offset":2},"results":[]}`), "a\"<\xff", "\u2028", []byte(` [1, {"b":null}] `), int64(-1e12), uint32(999999999), int16(-330), int32(math.MinInt32), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, p []byte, stream, id string, data []byte, sec int64, nsec uint32, offMin int16, partition int32, offset int64) {
		checkResultDecode(t, p)

		if !json.Valid(data) {
			return
		}
		data = bytes.Trim(data, " \t\r\n") // AppendJSON copies data as it is
		zone := time.FixedZone("", int(offMin)%(24*60)*60)
		at := time.Unix(sec, int64(nsec%1e9)).In(zone)
		batch := ResultBatch{StreamID: stream, Source: Position{Partition: partition, Offset: offset}, Results: []rtstream.Result{
			{StreamID: stream, EventID: id, ReceivedAt: at, ProcessedAt: at.Add(time.Millisecond), Data: data},
			{StreamID: id, EventID: id + "2", ReceivedAt: at},
		}}
		rec := batch.AppendJSON(nil)
		fast := checkResultDecode(t, rec)
		y, y2 := at.Year(), at.Add(time.Millisecond).Year()
		// Data that is not UTF-8 leaves the fast path on purpose (issue 17):
		// the slow path replaces its bytes.
		if !fast && utf8.Valid(data) && plainID(stream) && plainID(id) && 0 <= y && y <= 9999 && 0 <= y2 && y2 <= 9999 {
			t.Fatalf("the fast path did not read %q", rec)
		}
	})
}

// benchmarkResults is a results record of n results of about 100 bytes of
// data each, as the router writes one for a batch send.
func benchmarkResults(n int) []byte {
	received := time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC)
	processed := received.Add(1234567 * time.Nanosecond)
	b := ResultBatch{StreamID: "bench-stream", Source: Position{Partition: 3, Offset: 1234567}, Results: make([]rtstream.Result, n)}
	for i := range b.Results {
		b.Results[i] = rtstream.Result{
			StreamID:    b.StreamID,
			EventID:     fmt.Sprintf("01JDQ7Z8X9%016d", i),
			ReceivedAt:  received,
			ProcessedAt: processed,
			Data:        json.RawMessage(fmt.Sprintf(`{"user":"user-%05d","action":"click","value":%d.25,"tags":["web","eu"],"ok":true,"ref":null}`, i, i*7)),
		}
	}
	return b.AppendJSON(nil)
}

func BenchmarkDecodeResultBatch(b *testing.B) {
	decoders := []struct {
		name   string
		decode func([]byte, *ResultBatch) error
	}{
		{"encoding_json", func(p []byte, b *ResultBatch) error { return json.Unmarshal(p, b) }},
		{"fast", DecodeResultBatch},
	}
	for _, n := range []int{100, 1} {
		p := benchmarkResults(n)
		for _, d := range decoders {
			b.Run(fmt.Sprintf("results=%d/%s", n, d.name), func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					var batch ResultBatch
					if err := d.decode(p, &batch); err != nil || len(batch.Results) != n {
						b.Fatalf("decoded %d results: %v", len(batch.Results), err)
					}
				}
			})
		}
	}
}
