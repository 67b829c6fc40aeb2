package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream"
)

// schemaStreams is a registry in memory: Create keeps a stream, or finds
// the same definition, or conflicts, as the Kafka registry does.
type schemaStreams struct {
	mu      sync.Mutex
	streams map[string]rtstream.Stream
}

func (f *schemaStreams) Create(_ context.Context, st rtstream.Stream) (rtstream.Stream, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.streams[st.ID]; ok {
		if !old.SameDefinition(st) {
			return rtstream.Stream{}, false, fmt.Errorf("stream %s: %w", st.ID, rtstream.ErrConflict)
		}
		return old, false, nil
	}
	f.streams[st.ID] = st
	return st, true, nil
}

func (f *schemaStreams) Get(_ context.Context, id string) (rtstream.Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.streams[id]
	if !ok {
		return rtstream.Stream{}, fmt.Errorf("stream %s: %w", id, rtstream.ErrNotFound)
	}
	return st, nil
}

func (f *schemaStreams) List(context.Context, string, string, int) ([]rtstream.Stream, error) {
	return nil, nil
}

func (f *schemaStreams) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.streams, id)
	return nil
}

// put stores a stream directly, as another instance would have created it.
func (f *schemaStreams) put(id, schemaJSON string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := rtstream.Stream{ID: id, Tenant: rtstream.DefaultTenant}
	if schemaJSON != "" {
		st.Schema = json.RawMessage(schemaJSON)
	}
	f.streams[id] = st
}

// schemaServer serves the API without authentication over a registry in
// memory; events go to a recording sender.
func schemaServer(t testing.TB, cfg Config) (*httptest.Server, *schemaStreams, *wsFakeEvents) {
	t.Helper()
	streams := &schemaStreams{streams: map[string]rtstream.Stream{}}
	events := &wsFakeEvents{}
	h := NewServer(Deps{
		Config:  cfg,
		Streams: streams,
		Events:  events,
		Subscribe: func(context.Context, string, rtstream.From) (rtstream.Feed, error) {
			return newWSFakeFeed(), nil
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return srv, streams, events
}

// problemBody is the part of a problem the tests read.
type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Pointer string `json:"pointer"`
		Detail  string `json:"detail"`
	} `json:"errors"`
}

func do(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sends counts the sends the recording sender got.
func sends(e *wsFakeEvents) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sent)
}

const sensorSchema = `{"type":"object","properties":{"temp":{"type":"number"},"unit":{"enum":["C","F"]}},"required":["temp"]}`

// TestStreamSchemaAtCreation: a schema that compiles is stored compacted
// and shown; one that does not, or that breaks a limit, is a 422 pointing
// under /schema; PUT compares the compacted schema.
func TestStreamSchemaAtCreation(t *testing.T) {
	srv, _, _ := schemaServer(t, Config{})
	tests := []struct {
		name, method, path, body string
		status                   int
		pointer, detail          string // of a problem
		schema                   string // of a stream
	}{
		{"a schema", "POST", "/v1/streams", `{"name":"s","schema":` + sensorSchema + `}`, 201, "", "", sensorSchema},
		{"compacted", "PUT", "/v1/streams/p1", `{"schema": {"type" : "object"}}`, 201, "", "", `{"type":"object"}`},
		{"the same schema spaced otherwise", "PUT", "/v1/streams/p1", `{"schema":{"type":"object"}}`, 200, "", "", `{"type":"object"}`},
		{"another schema", "PUT", "/v1/streams/p1", `{"schema":{"type":"array"}}`, 409, "", "conflict", ""},
		{"null is no schema", "POST", "/v1/streams", `{"schema":null}`, 201, "", "", ""},
		{"a boolean schema", "POST", "/v1/streams", `{"schema":false}`, 201, "", "", "false"},
		{"not a schema", "POST", "/v1/streams", `{"schema":"x"}`, 422, "/schema", "a JSON object or a boolean", ""},
		{"a remote reference", "POST", "/v1/streams", `{"schema":{"properties":{"a":{"$ref":"https://example.com/a.json"}}}}`, 422, "/schema/properties/a/$ref", "nothing is loaded", ""},
		{"a bad pattern", "PUT", "/v1/streams/p2", `{"schema":{"pattern":"("}}`, 422, "/schema/pattern", "not a valid regex", ""},
		{"a body over the definition limit", "POST", "/v1/streams", `{"schema":{"description":"` + strings.Repeat("x", 70<<10) + `"}}`, 413, "", "over", ""},
		{"over the default size limit", "POST", "/v1/streams", `{"schema":{"description":"` + strings.Repeat("x", 33<<10) + `"}}`, 422, "/schema", "over the limit of 32768", ""},
		{"with a source", "POST", "/v1/streams", `{"schema":true,"source":{"topic":"t"}}`, 422, "/schema", "takes no sends", ""},
	}
	for _, tc := range tests {
		status, body := do(t, tc.method, srv.URL+tc.path, "application/json", tc.body)
		if status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.name, status, body, tc.status)
			continue
		}
		if status >= 400 {
			var p problemBody
			_ = json.Unmarshal([]byte(body), &p)
			if !strings.Contains(p.Detail, tc.detail) || (tc.pointer != "" && (len(p.Errors) != 1 || p.Errors[0].Pointer != tc.pointer)) {
				t.Errorf("%s: %s; want detail with %q, pointer %q", tc.name, body, tc.detail, tc.pointer)
			}
			continue
		}
		var st struct {
			ID     string          `json:"id"`
			Schema json.RawMessage `json:"schema"`
		}
		_ = json.Unmarshal([]byte(body), &st)
		if string(st.Schema) != tc.schema {
			t.Errorf("%s: schema %s, want %s", tc.name, st.Schema, tc.schema)
		}
		if _, got := do(t, "GET", srv.URL+"/v1/streams/"+st.ID, "", ""); !strings.Contains(got, tc.schema) {
			t.Errorf("%s: GET shows %s", tc.name, got)
		}
	}
}

// TestSendsCheckedAgainstSchema: every body form is checked before
// anything is sent; a request with any invalid event is refused whole with
// each failure's pointer (event index, then into the event), the list
// capped and the count not.
func TestSendsCheckedAgainstSchema(t *testing.T) {
	srv, streams, events := schemaServer(t, Config{})
	streams.put("s1", sensorSchema)
	streams.put("plain", "")
	many := make([]string, 150)
	for i := range many {
		many[i] = `{"temp":"hot"}`
	}
	tests := []struct {
		name, stream, contentType, body string
		status                          int
		detail                          string
		pointers                        []string
	}{
		{"one valid event", "s1", "application/json", `{"temp":21.5,"unit":"C"}`, 202, "", nil},
		{"one invalid event", "s1", "application/json", `{"temp":"hot"}`, 422, "1 of 1 events", []string{"/0/temp"}},
		{"a batch of five with two invalid", "s1", "application/json", `[{"temp":1},{"unit":"C"},{"temp":2},{"temp":3,"unit":"K"},{"temp":4}]`, 422,
			"2 of 5 events do not match the stream's schema; nothing was accepted", []string{"/1", "/3/unit"}},
		{"NDJSON", "s1", "application/x-ndjson", "{\"temp\":1}\n{\"temp\":[]}\n", 422, "1 of 2 events", []string{"/1/temp"}},
		{"a valid batch", "s1", "application/json", `[{"temp":1},{"temp":2,"unit":"F"}]`, 202, "", nil},
		{"the list is capped", "s1", "application/json", "[" + strings.Join(many, ",") + "]", 422, "150 of 150 events do not match the stream's schema; nothing was accepted; the first 100 errors are listed", nil},
		{"a stream without a schema", "plain", "application/json", `{"temp":"hot"}`, 202, "", nil},
	}
	for _, tc := range tests {
		before := sends(events)
		status, body := do(t, "POST", srv.URL+"/v1/streams/"+tc.stream+"/events", tc.contentType, tc.body)
		if status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.name, status, body, tc.status)
			continue
		}
		if status == 202 {
			continue
		}
		if sends(events) != before {
			t.Errorf("%s: refused, but events were sent", tc.name)
		}
		var p problemBody
		_ = json.Unmarshal([]byte(body), &p)
		if !strings.Contains(p.Detail, tc.detail) {
			t.Errorf("%s: detail %q, want %q", tc.name, p.Detail, tc.detail)
		}
		var got []string
		for _, e := range p.Errors {
			got = append(got, e.Pointer)
			if e.Detail == "" {
				t.Errorf("%s: an error without a message: %s", tc.name, body)
			}
		}
		if tc.pointers != nil && strings.Join(got, " ") != strings.Join(tc.pointers, " ") {
			t.Errorf("%s: pointers %v, want %v", tc.name, got, tc.pointers)
		}
		if tc.pointers == nil && len(got) != 100 {
			t.Errorf("%s: %d errors listed, want 100", tc.name, len(got))
		}
	}
}

// TestSendsFollowTheCurrentSchema: a stream deleted and created again with
// another schema is checked against the new one at once.
func TestSendsFollowTheCurrentSchema(t *testing.T) {
	srv, streams, _ := schemaServer(t, Config{})
	url := srv.URL + "/v1/streams/s1/events"
	streams.put("s1", `{"type":"string"}`)
	if status, body := do(t, "POST", url, "application/json", `"a"`); status != 202 {
		t.Fatalf("%d %s", status, body)
	}
	streams.put("s1", `{"type":"integer"}`)
	if status, _ := do(t, "POST", url, "application/json", `"a"`); status != 422 {
		t.Fatalf("after the schema changed: %d, want 422", status)
	}
	if status, _ := do(t, "POST", url, "application/json", `7`); status != 202 {
		t.Fatalf("after the schema changed: %d, want 202", status)
	}
	// A stored schema this server refuses (created under other limits).
	streams.put("s1", `{"$ref":"https://example.com/a.json"}`)
	if status, body := do(t, "POST", url, "application/json", `7`); status != 422 || !strings.Contains(body, "delete the stream and create it again") {
		t.Fatalf("a refused stored schema: %d %s", status, body)
	}
}

// TestWebSocketSendsCheckedAgainstSchema: a frame with an invalid event is
// an error frame listing it, nothing is sent, and the socket stays open.
func TestWebSocketSendsCheckedAgainstSchema(t *testing.T) {
	srv, streams, events := schemaServer(t, Config{})
	streams.put("s1", sensorSchema)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/streams/s1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	writeFrame(t, c, websocket.MessageText, `{"events":[{"temp":1},{"temp":"x"}]}`)
	var e wsProblem
	if err := json.Unmarshal(readJSON(t, c)["error"], &e); err != nil || e.Status != 422 ||
		len(e.Errors) != 1 || e.Errors[0].Pointer != "/1/temp" || !strings.Contains(e.Detail, "1 of 2 events") {
		t.Fatalf("error %+v (%v), want 422 pointing at /1/temp", e, err)
	}
	writeFrame(t, c, websocket.MessageText, `{"temp":2}`)
	if m := readJSON(t, c); string(m["ack"]) != "1" {
		t.Fatalf("after the refused frame: %v", m)
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	if len(events.sent) != 1 || string(events.sent[0][0]) != `{"temp":2}` {
		t.Fatalf("sent %s, want only the valid frame", events.sent)
	}
}
