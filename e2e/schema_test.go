package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream/internal/testenv"
)

// schemaProblem is a problem with its errors.
type schemaProblem struct {
	problemBody
	Errors []struct {
		Pointer string `json:"pointer"`
		Detail  string `json:"detail"`
	} `json:"errors"`
}

// pointers lists the pointers of a problem's errors.
func (p schemaProblem) pointers() string {
	var ps []string
	for _, e := range p.Errors {
		ps = append(ps, e.Pointer)
	}
	return strings.Join(ps, " ")
}

// refusedBySchema checks that rep is the 422 of events that do not match
// the stream's schema, with detail and pointers.
func refusedBySchema(t *testing.T, what string, rep reply, detail, pointers string) {
	t.Helper()
	checkProblem(t, what, rep, http.StatusUnprocessableEntity)
	var p schemaProblem
	decodeJSON(t, what, rep.Body, &p)
	if !strings.Contains(p.Detail, detail) || p.pointers() != pointers {
		t.Errorf("%s: %s; want detail with %q and pointers %q", what, rep.Body, detail, pointers)
	}
	for _, e := range p.Errors {
		if e.Detail == "" {
			t.Errorf("%s: an error without a message: %s", what, rep.Body)
		}
	}
}

const sensorSchema = `{"type":"object","properties":{"temp":{"type":"number"},"unit":{"enum":["C","F"]}},"required":["temp"]}`

// TestSchemaCreation: a schema that does not compile, loads anything or
// breaks a limit is refused at POST and PUT, pointing under /schema, and
// nothing is created; a good one is stored and shown.
func TestSchemaCreation(t *testing.T) {
	s := startServer(t, "schemacreate", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "schemacreate")))
	id := "schema-put-" + randomSuffix()
	refusals := []struct {
		method, path, body, pointer string
	}{
		{"POST", "/v1/streams", `{"schema":{"properties":{"a":{"$ref":"https://example.com/a.json"}}}}`, "/schema/properties/a/$ref"},
		{"POST", "/v1/streams", `{"schema":{"type":"text"}}`, "/schema/type"},
		{"POST", "/stream/start", `{"schema":{"pattern":"(unclosed"}}`, "/schema/pattern"},
		{"PUT", "/v1/streams/" + id, `{"schema":{"$ref":"file:///etc/passwd"}}`, "/schema/$ref"},
		{"PUT", "/v1/streams/" + id, `{"schema":{"minimum":1e5000}}`, "/schema/minimum"},
		{"PUT", "/v1/streams/" + id, `{"schema":` + strings.Repeat(`{"items":`, 40) + "{}" + strings.Repeat("}", 40) + `}`, "/schema" + strings.Repeat("/items", 32)},
	}
	for _, r := range refusals {
		rep := call(t, r.method, s.Base+r.path, "application/json", []byte(r.body))
		checkProblem(t, r.method+" "+r.body, rep, http.StatusUnprocessableEntity)
		var p schemaProblem
		decodeJSON(t, "problem", rep.Body, &p)
		if len(p.Errors) != 1 || p.Errors[0].Pointer != r.pointer {
			t.Errorf("%s %.60s: errors %s, want one at %s", r.method, r.body, rep.Body, r.pointer)
		}
	}
	if rep := call(t, "GET", s.Base+"/v1/streams/"+id, "", nil); rep.Status != http.StatusNotFound {
		t.Fatalf("a refused PUT created the stream: %s", rep)
	}

	spaced := `{"schema": {"type": "object", "required": ["temp"]}}`
	rep := call(t, "PUT", s.Base+"/v1/streams/"+id, "application/json", []byte(spaced))
	var st struct {
		streamObj
		Schema json.RawMessage `json:"schema"`
	}
	decodeJSON(t, "created", rep.Body, &st)
	if rep.Status != http.StatusCreated || string(st.Schema) != `{"type":"object","required":["temp"]}` {
		t.Fatalf("PUT with a schema: %s, want 201 with the schema compacted", rep)
	}
	if rep := call(t, "PUT", s.Base+"/v1/streams/"+id, "application/json", []byte(spaced)); rep.Status != http.StatusOK {
		t.Errorf("the same PUT again: %s, want 200", rep)
	}
	if rep := call(t, "PUT", s.Base+"/v1/streams/"+id, "application/json", []byte(`{"schema":{"type":"array"}}`)); rep.Status != http.StatusConflict {
		t.Errorf("PUT with another schema: %s, want 409", rep)
	}
	if rep := call(t, "GET", s.Base+"/v1/streams/"+id, "", nil); !strings.Contains(string(rep.Body), `"schema":{"type":"object","required":["temp"]}`) {
		t.Errorf("GET: %s, want the schema", rep)
	}
}

// TestSchemaAtTheDoor: sends are checked before anything reaches Kafka, in
// every body form and over the WebSocket, all or nothing; a subscriber sees
// only the events of accepted requests; a stream created again with another
// schema is checked against the new one.
func TestSchemaAtTheDoor(t *testing.T) {
	s := startServer(t, "schemadoor", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "schemadoor")))
	id := "schema-door-" + randomSuffix()
	if rep := call(t, "PUT", s.Base+"/v1/streams/"+id, "application/json", []byte(`{"name":"sensors","schema":`+sensorSchema+`}`)); rep.Status != http.StatusCreated {
		t.Fatalf("create: %s", rep)
	}
	events := s.Base + "/v1/streams/" + id + "/events"
	feed := openSSE(t, s.Base+"/v1/streams/"+id+"/results")

	batch := `[{"temp":1},{"unit":"C"},{"temp":2},{"temp":3,"unit":"K"},{"temp":4}]`
	refusedBySchema(t, "a batch of 5 with 2 invalid", call(t, "POST", events, "application/json", []byte(batch)),
		"2 of 5 events do not match the stream's schema; nothing was accepted", "/1 /3/unit")
	refusedBySchema(t, "one invalid event", call(t, "POST", events, "application/json", []byte(`{"temp":"hot"}`)),
		"1 of 1 events", "/0/temp")
	refusedBySchema(t, "NDJSON", call(t, "POST", events, "application/x-ndjson", []byte("{\"temp\":1}\n{\"temp\":[]}\n")),
		"1 of 2 events", "/1/temp")
	ws := openWS(t, wsURL(s.Base, id, ""), nil)
	ws.sendBad("a WebSocket batch with an invalid event", websocket.MessageText, []byte(`{"events":[{"temp":1},{"temp":true}]}`), http.StatusUnprocessableEntity)

	// The first results the subscriber sees are those of the valid sends
	// that follow: nothing of the refused requests reached Kafka.
	ids := send(t, events, "application/x-ndjson", []byte("{\"temp\":21.5,\"unit\":\"C\"}\n{\"temp\":22}\n"), 2)
	ids = append(ids, send(t, events, "application/json", []byte(`[{"temp":23,"unit":"F"}]`), 1)...)
	ids = append(ids, ws.sendEvents([]byte(`{"temp":24}`), 1)...)
	got := feed.awaitResults(t, 4, resultTimeout)
	checkResults(t, id, got, ids, []json.RawMessage{
		json.RawMessage(`{"temp":21.5,"unit":"C"}`), json.RawMessage(`{"temp":22}`), json.RawMessage(`{"temp":23,"unit":"F"}`), json.RawMessage(`{"temp":24}`)})

	// A schema is changed by deleting the stream and creating it again;
	// sends follow the definition current when they arrive.
	if rep := call(t, "DELETE", s.Base+"/v1/streams/"+id, "", nil); rep.Status != http.StatusNoContent {
		t.Fatalf("delete: %s", rep)
	}
	if rep := call(t, "PUT", s.Base+"/v1/streams/"+id, "application/json", []byte(`{"schema":{"type":"string"}}`)); rep.Status != http.StatusCreated {
		t.Fatalf("create again: %s", rep)
	}
	refusedBySchema(t, "an event of the old schema", call(t, "POST", events, "application/json", []byte(`{"temp":1}`)), "1 of 1 events", "/0")
	send(t, events, "application/json", []byte(`"a string now"`), 1)
}
