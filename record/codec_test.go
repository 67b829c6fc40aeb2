package record_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// The hand-written encoders must agree with encoding/json byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	for _, s := range []string{"s", "a.b-c_d", "quote\"back\\slash", "ctl\x01\n\t\r\b\f\x7f", "<script>&", "é\u2028\u2029", "bad\xffutf8"} {
		for _, data := range []string{`{"a":1}`, `[1,"x",null]`, `"str\n"`, `3.5e10`, `true`} {
			r := rtstream.Result{StreamID: s, EventID: s + "e", ReceivedAt: at, ProcessedAt: at.Add(time.Millisecond), Data: json.RawMessage(data)}
			want, _ := json.Marshal(r)
			if got := record.AppendResult(nil, &r); !bytes.Equal(got, want) {
				t.Errorf("Result %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
			eb := record.EventBatch{StreamID: s, Events: []rtstream.Event{{ID: "1", ReceivedAt: at, Data: json.RawMessage(data)}, {ID: "2", ReceivedAt: at}}}
			want, _ = json.Marshal(eb)
			if got := eb.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("EventBatch %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
			rb := record.ResultBatch{StreamID: s, Source: record.Position{Partition: 3, Offset: 99}, Results: []rtstream.Result{r, r}}
			want, _ = json.Marshal(rb)
			if got := rb.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("ResultBatch %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
		}
	}
}

func FuzzAppendResult(f *testing.F) {
	f.Add("s", "e", `{"a":1}`)
	f.Add("\x00\u2028", "<>", `[]`)
	f.Fuzz(func(t *testing.T, stream, event, data string) {
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(data)) != nil {
			t.Skip() // the API only lets valid JSON through, compacted
		}
		r := rtstream.Result{StreamID: stream, EventID: event, Data: compact.Bytes()}
		got := record.AppendResult(nil, &r)
		if bytes.ContainsAny(got, "\r\n") {
			t.Fatalf("line break in %q", got)
		}
		var back, want rtstream.Result
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q does not decode: %v", got, err)
		}
		// encoding/json HTML-escapes inside data it re-encodes; the data is
		// copied as sent, so compare meaning, not bytes.
		ref, _ := json.Marshal(r)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		var gotData, wantData any
		_ = json.Unmarshal(back.Data, &gotData)
		_ = json.Unmarshal(want.Data, &wantData)
		if back.StreamID != want.StreamID || back.EventID != want.EventID || !reflect.DeepEqual(gotData, wantData) {
			t.Fatalf("got %s want %s", got, ref)
		}
	})
}
