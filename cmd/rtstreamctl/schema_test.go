package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaAPI creates streams (POST and PUT), refusing a schema that refers
// to a URL as the server does, and refuses every send as the schema would.
func schemaAPI(t *testing.T) (http.Handler, *[]string) {
	var requests []string
	mux := http.NewServeMux()
	create := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		requests = append(requests, r.Method+" "+r.URL.Path+" "+string(b))
		var def struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		}
		json.Unmarshal(b, &def)
		if strings.Contains(string(def.Schema), "https://") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(422)
			io.WriteString(w, `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"schema at /$ref: not loaded","errors":[{"pointer":"/schema/$ref","detail":"nothing is loaded"}]}`)
			return
		}
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"id": "s1", "name": def.Name, "schema": def.Schema, "created_at": "2026-01-01T00:00:00Z"})
	}
	mux.HandleFunc("POST /v1/streams", create)
	mux.HandleFunc("PUT /v1/streams/{id}", create)
	mux.HandleFunc("POST /v1/streams/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(422)
		io.WriteString(w, `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"1 of 2 events do not match the stream's schema; nothing was accepted","errors":[{"pointer":"/1/temp","detail":"got string, want number"}]}`)
	})
	return mux, &requests
}

func TestCreateWithSchema(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", "{\n  \"type\": \"object\"\n}\n")
	remote := write("remote.json", `{"$ref":"https://example.com/s.json"}`)
	notJSON := write("bad.json", `{"type":`)
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantOut    string // a part of stdout
		wantErr    string // a part of stderr
		wantSchema string // in the request body
	}{
		{name: "from a file", args: []string{"create", "--schema", good, "sensors"},
			wantOut: `"schema":{"type":"object"}`, wantSchema: `"schema":{"type":"object"}`},
		{name: "from standard input, with PUT", stdin: `{"type":"array"}`, args: []string{"create", "--id", "s1", "--schema", "-", "-q"},
			wantOut: "s1\n", wantSchema: `PUT /v1/streams/s1 {"schema":{"type":"array"}}`},
		{name: "a missing file", args: []string{"create", "--schema", filepath.Join(dir, "nope.json")}, wantCode: exitUsage, wantErr: "--schema: open"},
		{name: "not JSON", args: []string{"create", "--schema", notJSON}, wantCode: exitUsage, wantErr: "does not hold one JSON value"},
		{name: "refused by the server", args: []string{"create", "--schema", remote}, wantCode: exitError,
			wantErr: "422 Unprocessable Entity: schema at /$ref: not loaded\n  /schema/$ref: nothing is loaded\n"},
		{name: "a send the schema refuses", stdin: "{\"temp\":1}\n{\"temp\":\"x\"}\n", args: []string{"send", "--linger", "0", "s1"}, wantCode: exitError,
			wantErr: "1 of 2 events do not match the stream's schema; nothing was accepted\n  /1/temp: got string, want number\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api, requests := schemaAPI(t)
			r := runCLI(t, api, key(), tc.stdin, tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stdout, tc.wantOut) || !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", r.code, r.stdout, r.stderr, tc.wantCode, tc.wantOut, tc.wantErr)
			}
			if tc.wantSchema != "" && (len(*requests) != 1 || !strings.Contains((*requests)[0], tc.wantSchema)) {
				t.Errorf("requests %q, want one with %s", *requests, tc.wantSchema)
			}
		})
	}
}
