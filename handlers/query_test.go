package handlers

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestQueryParamErrors: limit, wait and the cursors are refused in the same
// words, with the same #/query/ (or #/header/) pointer, on every route that
// reads them; and a route does not refuse a parameter it does not read.
func TestQueryParamErrors(t *testing.T) {
	f := newWSFixture(t, Config{})
	const (
		limitDetail  = "limit must be a whole number from 1 to 1000"
		waitDetail   = "wait must be a duration such as 10s (or seconds), at most 1m0s"
		cursorDetail = "the cursor to read after must be one this API returned"
	)
	sse := map[string]string{"Accept": "text/event-stream"}
	tests := []struct {
		name, path string
		hdr        map[string]string
		status     int
		detail     string
		pointer    string
	}{
		{"list, limit 0", "/v1/streams?limit=0", nil, 400, limitDetail, "#/query/limit"},
		{"dead letters, limit abc", "/v1/streams/s1/dead-letters?limit=abc", nil, 400, limitDetail, "#/query/limit"},
		{"poll, limit 1001", "/v1/streams/s1/results?limit=1001", nil, 400, limitDetail, "#/query/limit"},
		{"SSE, limit 1.5", "/v1/streams/s1/results?limit=1.5", sse, 400, limitDetail, "#/query/limit"},
		{"poll, wait 1h", "/v1/streams/s1/results?wait=1h", nil, 400, waitDetail, "#/query/wait"},
		{"poll, after nope", "/v1/streams/s1/results?after=nope", nil, 400, cursorDetail, "#/query/after"},
		{"poll, last_event_id nope", "/v1/streams/s1/results?last_event_id=nope", nil, 400, cursorDetail, "#/query/last_event_id"},
		{"poll, Last-Event-ID nope", "/v1/streams/s1/results", map[string]string{"Last-Event-ID": "nope"}, 400, cursorDetail, "#/header/Last-Event-ID"},
		{"SSE, after nope", "/v1/streams/s1/results?after=nope", sse, 400, cursorDetail, "#/query/after"},
		{"list, after not an id", "/v1/streams?after=-x", nil, 400, "after must be a stream id", "#/query/after"},
		{"dead letters, after too long", "/v1/streams/s1/dead-letters?after=" + strings.Repeat("1", 65), nil, 400, "after is not a dead-letters cursor", "#/query/after"},
		// A poll after ?after= never reads the reconnecting cursor.
		{"poll, after given, Last-Event-ID nope", "/v1/streams/s1/results?after=0-1-0", map[string]string{"Last-Event-ID": "nope"}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				return
			}
			var p struct {
				Detail string
				Errors []struct{ Pointer, Detail string }
			}
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if p.Detail != tt.detail || len(p.Errors) != 1 || p.Errors[0].Pointer != tt.pointer {
				t.Fatalf("%s; want detail %q, pointer %s", body, tt.detail, tt.pointer)
			}
		})
	}
}

// TestWebSocketIgnoresPollParams: limit, wait and after are the results
// route's; the WebSocket route does not read them, so a malformed one does
// not refuse the upgrade.
func TestWebSocketIgnoresPollParams(t *testing.T) {
	f := newWSFixture(t, Config{})
	f.dial(t, "/v1/streams/s1/ws?limit=abc&wait=1h&after=nope")
	if from := <-f.froms; from.After != nil || from.Earliest {
		t.Fatalf("from %+v, want live", from)
	}
}
