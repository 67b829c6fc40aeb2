package handlers

import (
	"errors"
	"strings"
	"testing"
)

// TestNotUTF8 refuses every body form holding bytes that are not UTF-8,
// whole (no event of a batch gets through), with the pointer of the value
// that holds them.
func TestNotUTF8(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kind    bodyKind
		body    string
		pointer string
		detail  string
	}{
		{"one event", kindJSON, "{\"a\":\"\xff\xfe\"}", "/a", "byte 7 (0xFF)"},
		{"top-level string", kindJSON, "\"\xff\"", "", "top-level value"},
		{"batch", kindJSON, "[{\"a\":1},{\"b\":[\"x\",\"\xfe\"]}]", "/1/b/1", "0xFE"},
		{"member name", kindJSON, "{\"ok\":{\"k\xc3\":1}}", "/ok/k\uFFFD", "0xC3"},
		{"surrogate", kindJSON, "[\"\xed\xa0\x80\"]", "/0", "0xED"},
		{"truncated rune", kindJSON, "{\"a\":\"\xe2\x82\"}", "/a", "0xE2"},
		{"ndjson", kindNDJSON, "{\"a\":1}\n\n{\"x\":{\"y\":\"\xff\"}}\n", "/1/x/y", "on line 3"},
		{"pretty batch", kindJSON, "[\n  {\"a\": \"ok\"},\n  {\"a\": \"\xc0\xaf\"}\n]", "/1/a", "0xC0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events, err := decodeEvents(tt.kind, []byte(tt.body))
			var de *decodeError
			if !errors.As(err, &de) {
				t.Fatalf("decodeEvents = %q, %v; want a decodeError", events, err)
			}
			if !strings.Contains(de.detail, "not valid UTF-8") || !strings.Contains(de.detail, tt.detail) {
				t.Errorf("detail %q: want it to say not valid UTF-8 and %q", de.detail, tt.detail)
			}
			if len(de.fields) != 1 || de.fields[0].Pointer != tt.pointer {
				t.Errorf("fields %+v, want one with pointer %q", de.fields, tt.pointer)
			}
		})
	}
}
