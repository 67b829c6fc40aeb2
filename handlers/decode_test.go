package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
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
