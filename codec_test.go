package rtstream_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
)

// The hand-written encoders must agree with encoding/json byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 28, 1, 2, 3, 4005, time.UTC)
	for _, s := range []string{"s", "a.b-c_d", "quote\"back\\slash", "ctl\x01\n\t\r\b\f\x7f", "<script>&", "é\u2028\u2029", "bad\xffutf8"} {
		for _, data := range []string{`{"a":1}`, `[1,"x",null]`, `"str\n"`, `3.5e10`, `true`} {
			r := rtstream.Result{StreamID: s, EventID: s + "e", ReceivedAt: at, ProcessedAt: at.Add(time.Millisecond), Data: json.RawMessage(data)}
			want, _ := json.Marshal(r)
			if got := r.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("Result %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
			eb := rtstream.EventBatch{StreamID: s, Events: []rtstream.Event{{ID: "1", ReceivedAt: at, Data: json.RawMessage(data)}, {ID: "2", ReceivedAt: at}}}
			want, _ = json.Marshal(eb)
			if got := eb.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("EventBatch %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
			rb := rtstream.ResultBatch{StreamID: s, Source: rtstream.Position{Partition: 3, Offset: 99}, Results: []rtstream.Result{r, r}}
			want, _ = json.Marshal(rb)
			if got := rb.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("ResultBatch %q/%s:\n got %s\nwant %s", s, data, got, want)
			}
		}
	}
}

func FuzzResultAppendJSON(f *testing.F) {
	f.Add("s", "e", `{"a":1}`)
	f.Add("\x00\u2028", "<>", `[]`)
	f.Fuzz(func(t *testing.T, stream, event, data string) {
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(data)) != nil {
			t.Skip() // the API only lets valid JSON through, compacted
		}
		r := rtstream.Result{StreamID: stream, EventID: event, Data: compact.Bytes()}
		got := r.AppendJSON(nil)
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

// FuzzParseCursor: a cursor either parses and prints back to a string that
// parses to the same cursor, or is refused with ErrInvalid — never a panic.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0-0-0", "7-2-0", "11-123456789-999", "", "-", "1-2", "1-2-3-4", "-1-0-0", "a-b-c", "0-9223372036854775808-0", " 1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := rtstream.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, rtstream.ErrInvalid) {
				t.Fatalf("ParseCursor(%q): %v, not ErrInvalid", s, err)
			}
			return
		}
		again, err := rtstream.ParseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCursor(%q) = %+v; its String %q parses to %+v, %v", s, c, c.String(), again, err)
		}
	})
}
