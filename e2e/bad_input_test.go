package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestBadInput sends malformed and refused requests: each must get its 4xx as
// application/problem+json whose status is the HTTP status, never a 5xx, and
// none may add an event to the stream.
func TestBadInput(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "bad"))
	env["MAX_BODY_BYTES"] = "1024"
	env["MAX_BATCH"] = "10"
	s := startServer(t, "bad", env)

	id := "bad-input-" + randomSuffix()
	if rep := call(t, http.MethodPut, s.Base+"/v1/streams/"+id, "application/json", []byte(`{"name":"target"}`)); rep.Status != http.StatusCreated {
		t.Fatalf("PUT: %s, want 201", rep)
	}
	feed := openSSE(t, s.Base+"/v1/streams/"+id+"/results")
	events := "/v1/streams/" + id + "/events"
	unknown := "nope-" + randomSuffix()

	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		want        int
		detailHas   []string
		header      http.Header // on top of the test API key; "" removes one
	}{
		{"invalid JSON", "POST", events, "application/json", []byte(`{"a": 1,,}`), 400, []string{"line 1", "column"}, nil},
		{"invalid JSON on line 3", "POST", events, "application/json", []byte("{\n  \"a\": 1,\n  \"b\": @\n}"), 400, []string{"line 3", "column"}, nil},
		{"invalid JSON in a batch", "POST", events, "application/json", []byte("[{\"a\":1},\n{\"a\":}]"), 400, []string{"line 2", "column"}, nil},
		{"truncated JSON", "POST", events, "application/json", []byte(`{"a": [1, 2`), 400, []string{"line"}, nil},
		{"two JSON values", "POST", events, "application/json", []byte(`{"a":1} {"b":2}`), 400, []string{"line"}, nil},
		{"invalid NDJSON line", "POST", events, "application/x-ndjson", []byte("{\"a\":1}\n{\"a\":2}\n{oops}\n"), 400, []string{"line 3"}, nil},
		{"text/plain", "POST", events, "text/plain", []byte(`{"a":1}`), 415, nil, nil},
		{"no content type", "POST", events, "", []byte(`{"a":1}`), 415, nil, nil},
		{"form content type", "POST", events, "application/x-www-form-urlencoded", []byte(`a=1`), 415, nil, nil},
		{"send to an unknown stream", "POST", "/v1/streams/" + unknown + "/events", "application/json", []byte(`{"a":1}`), 404, nil, nil},
		{"get an unknown stream", "GET", "/v1/streams/" + unknown, "", nil, 404, nil, nil},
		{"delete an unknown stream", "DELETE", "/v1/streams/" + unknown, "", nil, 404, nil, nil},
		{"seed send to an unknown stream", "POST", "/stream/" + unknown + "/send", "application/json", []byte(`{"a":1}`), 404, nil, nil},
		{"body over MAX_BODY_BYTES", "POST", events, "application/json", bigEvent(2048), 413, nil, nil},
		{"NDJSON body over MAX_BODY_BYTES", "POST", events, "application/x-ndjson", bytes.Repeat([]byte("{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"), 40), 413, nil, nil},
		{"batch over MAX_BATCH", "POST", events, "application/json", arrayOf(11), 413, nil, nil},
		{"NDJSON batch over MAX_BATCH", "POST", events, "application/x-ndjson", linesOf(11), 413, nil, nil},
		{"empty array", "POST", events, "application/json", []byte(`[]`), 400, nil, nil},
		{"empty array with spaces", "POST", events, "application/json", []byte(" [ \n ] "), 400, nil, nil},
		{"empty body", "POST", events, "application/json", nil, 400, nil, nil},
		{"blank body", "POST", events, "application/json", []byte(" \n\t "), 400, nil, nil},
		{"empty NDJSON body", "POST", events, "application/x-ndjson", nil, 400, nil, nil},
		{"bad stream id with space and bang", "GET", "/v1/streams/bad%20id%21", "", nil, 400, nil, nil},
		{"send to bad stream id", "POST", "/v1/streams/bad%20id%21/events", "application/json", []byte(`{"a":1}`), 400, nil, nil},
		{"PUT bad stream id", "PUT", "/v1/streams/bad%20id%21", "application/json", []byte(`{"name":"x"}`), 400, nil, nil},
		{"stream id starting with a dash", "PUT", "/v1/streams/-x", "application/json", []byte(`{"name":"x"}`), 400, nil, nil},
		{"send to a stream id starting with a dash", "POST", "/v1/streams/-x/events", "application/json", []byte(`{"a":1}`), 400, nil, nil},
		{"stream id of 65 characters", "GET", "/v1/streams/" + strings.Repeat("a", 65), "", nil, 400, nil, nil},
		{"seed send to a bad stream id", "POST", "/stream/-x/send", "application/json", []byte(`{"a":1}`), 400, nil, nil},
		{"PUT conflict", "PUT", "/v1/streams/" + id, "application/json", []byte(`{"name":"another definition"}`), 409, nil, nil},
		{"PUT invalid JSON", "PUT", "/v1/streams/x-" + randomSuffix(), "application/json", []byte(`{"name":`), 400, nil, nil},
		{"list with limit 0", "GET", "/v1/streams?limit=0", "", nil, 400, nil, nil},
		{"SSE with a malformed Last-Event-ID", "GET", "/v1/streams/" + id + "/results", "", nil, 400, nil, http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {"not-a-cursor"}}},
		{"SSE with a cursor past the end", "GET", "/v1/streams/" + id + "/results?last_event_id=0-999999999-0", "", nil, 400, nil, http.Header{"Accept": {"text/event-stream"}}},
		{"SSE from an unknown point", "GET", "/v1/streams/" + id + "/results?from=yesterday", "", nil, 400, nil, http.Header{"Accept": {"text/event-stream"}}},
		{"poll with limit 0", "GET", "/v1/streams/" + id + "/results?limit=0", "", nil, 400, nil, nil},
		{"poll with limit 1001", "GET", "/v1/streams/" + id + "/results?limit=1001", "", nil, 400, nil, nil},
		{"poll waiting an hour", "GET", "/v1/streams/" + id + "/results?wait=1h", "", nil, 400, nil, nil},
		{"poll with wait abc", "GET", "/v1/streams/" + id + "/results?wait=abc", "", nil, 400, nil, nil},
		{"poll after a malformed cursor", "GET", "/v1/streams/" + id + "/results?after=1-2", "", nil, 400, nil, nil},
		{"poll of an unknown stream", "GET", "/v1/streams/nope-" + randomSuffix() + "/results", "", nil, 404, nil, nil},
		{"list with limit abc", "GET", "/v1/streams?limit=abc", "", nil, 400, nil, nil},
		{"unknown route", "GET", "/v1/nothing-here", "", nil, 404, nil, nil},
		{"unknown route under a stream", "POST", "/v1/streams/" + id + "/nothing", "application/json", []byte(`{}`), 404, nil, nil},
		{"unknown top-level route", "GET", "/nothing", "", nil, 404, nil, nil},
		{"wrong method", "PATCH", "/v1/streams/" + id, "application/json", []byte(`{}`), 405, nil, nil},
		{"no API key", "POST", events, "application/json", []byte(`{"a":1}`), 401, nil, noKey},
		{"wrong API key", "POST", events, "application/json", []byte(`{"a":1}`), 401, nil, http.Header{"X-Api-Key": {"wrong"}}},
		{"wrong bearer token", "GET", "/v1/streams/" + id, "", nil, 401, nil, http.Header{"X-Api-Key": {""}, "Authorization": {"Bearer wrong"}}},
		{"no API key on the seed route", "POST", "/stream/" + id + "/send", "application/json", []byte(`{"a":1}`), 401, nil, noKey},
		{"no API key on results", "GET", "/v1/streams/" + id + "/results", "", nil, 401, nil, http.Header{"X-Api-Key": {""}, "Accept": {"text/event-stream"}}},
		{"wrong api_key on results", "GET", "/v1/streams/" + id + "/results?api_key=wrong", "", nil, 401, nil, http.Header{"X-Api-Key": {""}, "Accept": {"text/event-stream"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			rep, err := request(ctx, tc.method, s.Base+tc.path, tc.contentType, tc.body, tc.header)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			if rep.Status >= 500 {
				t.Errorf("%s %s: a server error: %s", tc.method, tc.path, rep)
			}
			p := checkProblem(t, tc.method+" "+tc.path, rep, tc.want)
			for _, sub := range tc.detailHas {
				if !strings.Contains(p.Detail, sub) {
					t.Errorf("detail %q does not mention %q", p.Detail, sub)
				}
			}
		})
	}

	t.Run("bearer token", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		rep, err := request(ctx, "GET", s.Base+"/v1/streams/"+id, "", nil,
			http.Header{"X-Api-Key": {""}, "Authorization": {"Bearer " + apiKey}})
		if err != nil || rep.Status != http.StatusOK {
			t.Errorf("GET with Authorization: Bearer <key>: %v %v, want 200", rep, err)
		}
	})

	// The limits themselves are allowed.
	t.Run("limits", func(t *testing.T) {
		other := s.Base + createStream(t, s.Base+"/v1/streams", "limits").Links.Events
		send(t, other, "application/json", arrayOf(10), 10)
		send(t, other, "application/x-ndjson", linesOf(10), 10)
		send(t, other, "application/json", bigEvent(1024), 1)
	})

	// Nothing refused above reached the stream.
	expectNoMoreResults(t, s.Base+events, feed)
}

// noKey sends a request without credentials.
var noKey = http.Header{"X-Api-Key": {""}}

// bigEvent is one JSON event of exactly n bytes.
func bigEvent(n int) []byte {
	const frame = `{"pad":""}`
	return []byte(`{"pad":"` + strings.Repeat("x", n-len(frame)) + `"}`)
}

// arrayOf is a JSON array of n small events.
func arrayOf(n int) []byte {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// linesOf is n small NDJSON events.
func linesOf(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "{\"i\":%d}\n", i)
	}
	return b.Bytes()
}
