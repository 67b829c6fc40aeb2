package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStreamWithSchema: CreateStreamFrom and PutStreamFrom send the schema
// as given; the stream shows it; a send the schema refuses is a 422 whose
// Errors point at the events, and it is not retried.
func TestStreamWithSchema(t *testing.T) {
	var bodies []string
	sends := 0
	mux := http.NewServeMux()
	create := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		var def struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		}
		json.Unmarshal(b, &def)
		if strings.Contains(string(def.Schema), "https://") {
			writeProblem(w, 422, "", `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"schema at /$ref: not loaded","errors":[{"pointer":"/schema/$ref","detail":"not loaded"}]}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": "s1", "name": def.Name, "schema": def.Schema})
	}
	mux.HandleFunc("POST /v1/streams", create)
	mux.HandleFunc("PUT /v1/streams/{id}", create)
	mux.HandleFunc("POST /v1/streams/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		sends++
		writeProblem(w, 422, "", `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"1 of 2 events do not match the stream's schema; nothing was accepted","errors":[{"pointer":"/1/temp","detail":"got string, want number"}]}`)
	})
	c := newTestClient(t, mux)
	ctx := context.Background()
	schema := json.RawMessage(`{"type":"object","properties":{"temp":{"type":"number"}}}`)

	st, err := c.CreateStreamFrom(ctx, StreamDefinition{Name: "sensors", Schema: schema})
	if err != nil || st.ID != "s1" || string(st.Schema) != string(schema) {
		t.Fatalf("CreateStreamFrom: %+v %v", st, err)
	}
	if _, created, err := c.PutStreamFrom(ctx, "s1", StreamDefinition{Schema: schema}); err != nil || !created {
		t.Fatalf("PutStreamFrom: created %v, %v", created, err)
	}
	if want := `{"name":"sensors","schema":` + string(schema) + `}`; bodies[0] != want {
		t.Errorf("body %s, want %s", bodies[0], want)
	}
	if want := `{"schema":` + string(schema) + `}`; bodies[1] != want {
		t.Errorf("body %s, want %s", bodies[1], want)
	}
	if _, err := c.CreateStream(ctx, "plain", nil); err != nil || strings.Contains(bodies[2], "schema") {
		t.Errorf("CreateStream without a schema sent %s (%v)", bodies[2], err)
	}

	_, err = c.CreateStreamFrom(ctx, StreamDefinition{Schema: json.RawMessage(`{"$ref":"https://example.com/s.json"}`)})
	var e *Error
	if !IsUnprocessable(err) || !errors.As(err, &e) || len(e.Errors) != 1 || e.Errors[0].Pointer != "/schema/$ref" {
		t.Fatalf("a schema the server refuses: %v", err)
	}

	_, err = c.SendBatch(ctx, "s1", []json.RawMessage{json.RawMessage(`{"temp":1}`), json.RawMessage(`{"temp":"x"}`)}, SendOptions{Retry: true})
	if !IsUnprocessable(err) || !errors.As(err, &e) || e.Errors[0].Pointer != "/1/temp" || sends != 1 {
		t.Fatalf("a send the schema refuses: %v after %d sends; want one 422 pointing at /1/temp", err, sends)
	}
}
