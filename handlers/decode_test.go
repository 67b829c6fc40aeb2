package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"
	"github.com/rtstream/rtstream/problem"
)

func TestDecodeEvents(t *testing.T) {
	tests := []struct {
		name    string
		kind    bodyKind
		body    string
		want    []string
		wantErr string
	}{
		{"one object", kindJSON, `{"a":1}`, []string{`{"a":1}`}, ""},
		{"one scalar", kindJSON, ` 42 `, []string{`42`}, ""},
		{"batch", kindJSON, `[1, {"b":2}, "x"]`, []string{`1`, `{"b":2}`, `"x"`}, ""},
		{"line breaks compacted", kindJSON, "{\n \"a\":\r\n [1,\n2]}", []string{`{"a":[1,2]}`}, ""},
		{"batch line breaks compacted", kindJSON, "[{\n\"a\": 1}, 2]", []string{`{"a":1}`, `2`}, ""},
		{"empty batch", kindJSON, `[]`, nil, "no event"},
		{"empty body", kindJSON, "  \n", nil, "no event"},
		{"broken", kindJSON, "{\n\"a\": }", nil, "line 2, column 6"},
		{"double comma", kindJSON, `{"a": 1,,}`, nil, "line 1, column 9"},
		{"bad literal at line end", kindJSON, "{\n  \"a\": 1,\n  \"b\": tru\n}", nil, "line 3, column 11"},
		{"trailing data", kindJSON, `{"a":1} {"b":2}`, nil, "invalid JSON"},
		{"broken batch", kindJSON, `[1, 2,]`, nil, "invalid JSON"},
		{"ndjson", kindNDJSON, "{\"a\":1}\n\n{\"a\":2}\r\n3\n", []string{`{"a":1}`, `{"a":2}`, `3`}, ""},
		{"ndjson broken line", kindNDJSON, "1\n{oops}\n", nil, "line 2, column 2"},
		{"ndjson double comma", kindNDJSON, "{\"a\":1}\n{\"a\":1,,}\n", nil, "line 2, column 8"},
		{"ndjson empty", kindNDJSON, "\n\n", nil, "no event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEvents(tt.kind, []byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events; want %d", len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("event %d = %s; want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestContentKind(t *testing.T) {
	tests := []struct {
		header string
		kind   bodyKind
		ok     bool
	}{
		{"application/json", kindJSON, true},
		{"application/json; charset=utf-8", kindJSON, true},
		{"application/cloudevents+json", kindJSON, true},
		{"application/x-ndjson", kindNDJSON, true},
		{"text/plain", 0, false},
		{"", 0, false},
		{"application/json;;", 0, false},
	}
	for _, tt := range tests {
		kind, ok := contentKind(tt.header)
		if ok != tt.ok || (ok && kind != tt.kind) {
			t.Errorf("contentKind(%q) = %v, %v; want %v, %v", tt.header, kind, ok, tt.kind, tt.ok)
		}
	}
}

func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, "1\n2\n", `[`, "\x00", `"\u2028"`} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, ndjson bool) {
		kind := kindJSON
		if ndjson {
			kind = kindNDJSON
		}
		events, err := decodeEvents(kind, []byte(body))
		var de *decodeError
		if err != nil && !errors.Is(err, errEmpty) && !errors.As(err, &de) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if err == nil && len(events) == 0 {
			t.Fatal("no error and no events")
		}
		for i, e := range events {
			if !json.Valid(e) || bytes.ContainsAny(e, "\r\n") {
				t.Fatalf("event %d is not valid one-line JSON: %q", i, e)
			}
		}
	})
}

// decodeEventsEncodingJSON is decodeEvents as it was before jsonscan: every
// check by encoding/json. It is the reference the faster decodeEvents must
// agree with on every body, errors and their positions included.
func decodeEventsEncodingJSON(kind bodyKind, body []byte) ([]json.RawMessage, error) {
	if kind == kindNDJSON {
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

// benchmarkBodies are request bodies of 100 events of about 100 bytes each,
// in each form a client may send them, and one event alone.
func benchmarkBodies() []struct {
	name string
	kind bodyKind
	body []byte
} {
	var batch, pretty, nd bytes.Buffer
	batch.WriteByte('[')
	pretty.WriteString("[\n")
	for i := range 100 {
		ev := fmt.Sprintf(`{"user":"user-%05d","action":"click","value":%d.25,"tags":["web","eu"],"ok":true,"ref":null}`, i, i*7)
		if i > 0 {
			batch.WriteString(", ")
			pretty.WriteString(",\n")
		}
		batch.WriteString(ev)
		pretty.WriteString("  " + strings.ReplaceAll(ev, `,"`, ",\n    \""))
		nd.WriteString(ev + "\n")
	}
	batch.WriteByte(']')
	pretty.WriteString("\n]\n")
	return []struct {
		name string
		kind bodyKind
		body []byte
	}{
		{"batch", kindJSON, batch.Bytes()},
		{"batch_pretty", kindJSON, pretty.Bytes()},
		{"ndjson", kindNDJSON, nd.Bytes()},
		{"one", kindJSON, []byte(`{"user":"user-00001","action":"click","value":7.25,"tags":["web","eu"],"ok":true,"ref":null}`)},
	}
}

func BenchmarkDecodeEvents(b *testing.B) {
	decoders := []struct {
		name   string
		decode func(bodyKind, []byte) ([]json.RawMessage, error)
	}{
		{"encoding_json", decodeEventsEncodingJSON},
		{"fast", decodeEvents},
	}
	for _, body := range benchmarkBodies() {
		for _, d := range decoders {
			b.Run(body.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(body.body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.decode(body.kind, body.body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// checkSameDecode fails unless decodeEvents and the encoding/json reference
// give the same events, or the same error with the same details.
func checkSameDecode(t *testing.T, kind bodyKind, body []byte) {
	t.Helper()
	got, gotErr := decodeEvents(kind, body)
	if !utf8.Valid(body) {
		// Where the two differ on purpose (issue 17): encoding/json takes
		// strings that are not UTF-8, decodeEvents refuses every such body.
		var de *decodeError
		if gotErr == nil || !errors.As(gotErr, &de) {
			t.Fatalf("decodeEvents(%v, %q) = %v, %v; want a decodeError: the body is not UTF-8", kind, body, got, gotErr)
		}
		return
	}
	want, wantErr := decodeEventsEncodingJSON(kind, body)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("decodeEvents(%v, %q) error %v; reference error %v", kind, body, gotErr, wantErr)
	}
	if gotErr != nil {
		var gotDE, wantDE *decodeError
		if errors.As(gotErr, &gotDE) != errors.As(wantErr, &wantDE) || gotErr.Error() != wantErr.Error() ||
			(gotDE != nil && fmt.Sprint(gotDE.fields) != fmt.Sprint(wantDE.fields)) {
			t.Fatalf("decodeEvents(%v, %q) error %#v; reference error %#v", kind, body, gotErr, wantErr)
		}
		return
	}
	if len(got) != len(want) {
		t.Fatalf("decodeEvents(%v, %q) = %q; reference %q", kind, body, got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("decodeEvents(%v, %q) = %q; reference %q", kind, body, got, want)
		}
	}
}

func TestDecodeEventsMatchesEncodingJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	bodies := []string{
		``, ` `, "\n\n", `[]`, `[ ]`, ` [ ] `, `[`, `]`, `[1`, `[1,`, `[1,]`, `[,1]`, `[1 2]`, `[1]]`, `[] []`, `[1] x`, `[1]x`,
		`1`, ` 1 `, `1 2`, `"a"`, `"a`, `nul`, `null`, `{}`, `{"a":1}`, `{"a":1`, `{"a" 1}`, `x`,
		`[{"a":1}, {"b":[2, 3]}, "x\ny", null, true, -0.5e3]`, "[\r\n1,\r\n\t{\"a\":\r\n2}\r\n]", "{\"a\":\r[1,\r2]}",
		"\v[1]\v", "\u00a0[1]\u00a0", "\x85[1]", "[\v1]", "\xef\xbb\xbf[1]", "\"\xff\"", "[\"\x01\"]",
		deep(jsonscan.MaxDepth), deep(jsonscan.MaxDepth + 1), "[" + deep(jsonscan.MaxDepth-1) + "]", "[" + deep(jsonscan.MaxDepth) + "]",
		"1\n2\n", "1\r\n\r\n[1,\r2]\r\n", "1\n\n{oops}\n", "{\"a\":1}\n{\"a\":1,,}\n", " \t\n\v\n", "1\n2 3\n", "[1,\n2]\n",
	}
	for _, body := range bodies {
		for _, kind := range []bodyKind{kindJSON, kindNDJSON} {
			checkSameDecode(t, kind, []byte(body))
		}
	}
}

// FuzzDecodeEventsMatchesEncodingJSON: the fast decodeEvents and the
// encoding/json reference agree on every body.
func FuzzDecodeEventsMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1, {"b":[2]}]`, "[\n1,\r\n2]", "1\n2\n", `[`, `[1,]`, "\x00", `"\u2028"`, "{\"a\":\r1}\n[]\n"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, ndjson bool) {
		kind := kindJSON
		if ndjson {
			kind = kindNDJSON
		}
		checkSameDecode(t, kind, []byte(body))
	})
}
