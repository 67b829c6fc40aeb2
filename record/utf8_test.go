package record

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestDecodeReplacesInvalidUTF8: a stored record whose data holds bytes that
// are not UTF-8 is read with U+FFFD in their place, still valid JSON, and
// counted.
func TestDecodeReplacesInvalidUTF8(t *testing.T) {
	events := []byte("{\"stream_id\":\"s\",\"events\":[{\"event_id\":\"a\",\"received_at\":\"2026-01-02T03:04:05Z\",\"data\":{\"k\":\"x\xff\xfey\"}}," +
		"{\"event_id\":\"b\",\"received_at\":\"2026-01-02T03:04:05Z\",\"data\":\"fine\"}]}")
	var eb EventBatch
	if err := DecodeEventBatch(events, &eb); err != nil {
		t.Fatal(err)
	}
	results := []byte("{\"stream_id\":\"s\",\"source\":{\"partition\":1,\"offset\":2},\"results\":[{\"stream_id\":\"s\",\"event_id\":\"a\"," +
		"\"received_at\":\"2026-01-02T03:04:05Z\",\"processed_at\":\"2026-01-02T03:04:05Z\",\"data\":[\"\xc0\xaf\"]}]}")
	var rb ResultBatch
	if err := DecodeResultBatch(results, &rb); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		what     string
		data     json.RawMessage
		want     string
		replaced int
		got      int
	}{
		{"event", eb.Events[0].Data, "{\"k\":\"x\uFFFDy\"}", 1, eb.Replaced},
		{"result", rb.Results[0].Data, "[\"\uFFFD\"]", 1, rb.Replaced},
	} {
		if string(tt.data) != tt.want || !utf8.Valid(tt.data) || !json.Valid(tt.data) || tt.got != tt.replaced {
			t.Errorf("%s: data %q, replaced %d; want %q, %d", tt.what, tt.data, tt.got, tt.want, tt.replaced)
		}
	}
}
