package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is just enough of the API for the command's tests: it checks the
// key, records sends, and serves two results then the stream's end.
type fakeAPI struct {
	mu      sync.Mutex
	keys    []string // Idempotency-Key of each send
	batches [][]json.RawMessage
	fail503 int // the next sends to refuse with 503
	nextID  int
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	problem := func(status int, detail string, extra string) {
		w.Header().Set("Content-Type", "application/problem+json")
		if status == 503 {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q%s}`, http.StatusText(status), status, detail, extra)
	}
	if r.Header.Get("X-API-Key") != "secret" {
		problem(401, "missing or wrong API key", "")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/streams", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name      string         `json:"name"`
			Processor map[string]any `json:"processor"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		if f, _ := body.Processor["filter"].(string); f == "bad(" {
			problem(400, "processor filter does not compile at line 1, column 5", `,"errors":[{"pointer":"/processor/filter","detail":"line 1, column 5: unexpected end"}]`)
			return
		}
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"id": "s1", "name": body.Name, "processor": body.Processor, "created_at": "2026-01-01T00:00:00Z"})
	})
	mux.HandleFunc("GET /v1/streams/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "s1" {
			problem(404, "stream "+r.PathValue("id")+" not found", "")
			return
		}
		io.WriteString(w, `{"id":"s1","name":"n","created_at":"2026-01-01T00:00:00Z"}`)
	})
	mux.HandleFunc("GET /v1/streams", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") == "" {
			io.WriteString(w, `{"streams":[{"id":"a"},{"id":"b"}],"next":"b"}`)
			return
		}
		io.WriteString(w, `{"streams":[{"id":"c"}],"next":""}`)
	})
	mux.HandleFunc("POST /v1/streams/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		var events []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			problem(400, err.Error(), "")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
		if f.fail503 > 0 {
			f.fail503--
			problem(503, "Kafka did not acknowledge the request in time", "")
			return
		}
		f.batches = append(f.batches, events)
		var ids []string
		for range events {
			f.nextID++
			ids = append(ids, fmt.Sprintf("ev%d", f.nextID))
		}
		w.WriteHeader(202)
		json.NewEncoder(w).Encode(map[string]any{"accepted": len(ids), "event_ids": ids})
	})
	mux.HandleFunc("GET /v1/streams/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("from") != "earliest" {
			problem(400, "want from=earliest in this test", "")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": connected\n\n")
		for i := 1; i <= 2; i++ {
			fmt.Fprintf(w, "id: 0-%d-0\nevent: result\ndata: {\"stream_id\":\"s1\",\"event_id\":\"ev%d\",\"received_at\":\"2026-01-01T00:00:00Z\",\"processed_at\":\"2026-01-01T00:00:01Z\",\"data\":{\"n\":%d}}\n\n", i, i, i)
		}
		io.WriteString(w, "event: end\ndata: {}\n\n")
	})
	mux.HandleFunc("DELETE /v1/streams/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("GET /v1/streams/{id}/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"dead_letters":[{"event_id":"e","reason":"integer divide by zero","failed_at":"2026-01-01T00:00:00Z","data":{"a":1}}],"next":"0-9"}`)
	})
	mux.ServeHTTP(w, r)
}

type runResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, api http.Handler, env map[string]string, stdin string, args ...string) runResult {
	t.Helper()
	if api != nil {
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		if _, ok := env["RTSTREAM_URL"]; !ok {
			env["RTSTREAM_URL"] = srv.URL
		}
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return runResult{code, out.String(), errOut.String()}
}

func key() map[string]string { return map[string]string{"RTSTREAM_API_KEY": "secret"} }

func TestUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{nil, exitUsage, "usage:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"get"}, exitUsage, "want a stream id"},
		{[]string{"get", "a", "b"}, exitUsage, "want a stream id"},
		{[]string{"send", "--batch", "0", "s1"}, exitUsage, "--batch"},
		{[]string{"tail", "--nope", "s1"}, exitUsage, "flag provided but not defined"},
		{[]string{"--url", "localhost:8080", "get", "s1"}, exitUsage, "--url"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"get", "-h"}, exitOK, ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, key(), "", tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantOut    string // every line of stdout, in order
		wantStderr string // a part of stderr
	}{
		{name: "create with flags after the name", env: key(), args: []string{"create", "sensors", "--filter", "data.t > 1", "--map", "data.t"},
			wantOut: `{"id":"s1","name":"sensors","created_at":"2026-01-01T00:00:00Z","processor":{"filter":"data.t \u003e 1","map":"data.t"},"links":{"events":"","results":""}}` + "\n"},
		{name: "create -q", env: key(), args: []string{"create", "-q", "x"}, wantOut: "s1\n"},
		{name: "a processor that does not compile", env: key(), args: []string{"create", "--filter", "bad(", "x"}, wantCode: exitError,
			wantStderr: "400 Bad Request: processor filter does not compile at line 1, column 5\n  /processor/filter: line 1, column 5: unexpected end\n"},
		{name: "the key flag wins over the environment", env: map[string]string{"RTSTREAM_API_KEY": "wrong"}, args: []string{"--key", "secret", "get", "s1"},
			wantOut: `{"id":"s1","name":"n","created_at":"2026-01-01T00:00:00Z","links":{"events":"","results":""}}` + "\n"},
		{name: "wrong key", env: map[string]string{"RTSTREAM_API_KEY": "wrong"}, args: []string{"get", "s1"}, wantCode: exitError, wantStderr: "401 Unauthorized: missing or wrong API key"},
		{name: "not found", env: key(), args: []string{"get", "nope"}, wantCode: exitError, wantStderr: "404 Not Found: stream nope not found"},
		{name: "streams over pages", env: key(), args: []string{"streams"},
			wantOut: "{\"id\":\"a\",\"created_at\":\"0001-01-01T00:00:00Z\",\"links\":{\"events\":\"\",\"results\":\"\"}}\n{\"id\":\"b\",\"created_at\":\"0001-01-01T00:00:00Z\",\"links\":{\"events\":\"\",\"results\":\"\"}}\n{\"id\":\"c\",\"created_at\":\"0001-01-01T00:00:00Z\",\"links\":{\"events\":\"\",\"results\":\"\"}}\n"},
		{name: "streams --limit", env: key(), args: []string{"streams", "--limit", "1"},
			wantOut: "{\"id\":\"a\",\"created_at\":\"0001-01-01T00:00:00Z\",\"links\":{\"events\":\"\",\"results\":\"\"}}\n"},
		{name: "delete", env: key(), args: []string{"delete", "s1"}},
		{name: "dead letters", env: key(), args: []string{"dead-letters", "s1"},
			wantOut:    `{"event_id":"e","reason":"integer divide by zero","failed_at":"2026-01-01T00:00:00Z","data":{"a":1}}` + "\n",
			wantStderr: "next: 0-9"},
		{name: "tail -n", env: key(), args: []string{"tail", "--from", "earliest", "-n", "2", "s1"},
			wantOut: `{"cursor":"0-1-0","stream_id":"s1","event_id":"ev1","received_at":"2026-01-01T00:00:00Z","processed_at":"2026-01-01T00:00:01Z","data":{"n":1}}` + "\n" +
				`{"cursor":"0-2-0","stream_id":"s1","event_id":"ev2","received_at":"2026-01-01T00:00:00Z","processed_at":"2026-01-01T00:00:01Z","data":{"n":2}}` + "\n"},
		{name: "tail until the stream is deleted", env: key(), args: []string{"tail", "--from", "earliest", "s1"}, wantCode: exitError,
			wantOut: `{"cursor":"0-1-0","stream_id":"s1","event_id":"ev1","received_at":"2026-01-01T00:00:00Z","processed_at":"2026-01-01T00:00:01Z","data":{"n":1}}` + "\n" +
				`{"cursor":"0-2-0","stream_id":"s1","event_id":"ev2","received_at":"2026-01-01T00:00:00Z","processed_at":"2026-01-01T00:00:01Z","data":{"n":2}}` + "\n",
			wantStderr: "stream s1 was deleted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, &fakeAPI{}, tc.env, "", tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.wantCode, r.stderr)
			}
			if r.stdout != tc.wantOut {
				t.Errorf("stdout\n%s\nwant\n%s", r.stdout, tc.wantOut)
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tc.wantStderr)
			}
		})
	}
}

func TestSendBatchesNDJSON(t *testing.T) {
	api := &fakeAPI{fail503: 1}
	in := "{\"n\":1}\n\n{\"n\":2}\r\n[3]\n  \"four\"  \n{\"n\":5}" // no final newline
	r := runCLI(t, api, key(), in, "send", "--batch", "2", "--linger", "0", "s1")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stdout != "ev1\nev2\nev3\nev4\nev5\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	var got []string
	for _, b := range api.batches {
		data, _ := json.Marshal(b)
		got = append(got, string(data))
	}
	if want := []string{`[{"n":1},{"n":2}]`, `[[3],"four"]`, `[{"n":5}]`}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("batches %v, want %v", got, want)
	}
	// Four requests: the first was refused (503) and retried with its key.
	if len(api.keys) != 4 || api.keys[0] == "" || api.keys[0] != api.keys[1] || api.keys[1] == api.keys[2] || api.keys[2] == api.keys[3] {
		t.Errorf("Idempotency-Keys %q: want one per batch, the same on its retry", api.keys)
	}
}

func TestSendStopsAtInvalidLine(t *testing.T) {
	api := &fakeAPI{}
	r := runCLI(t, api, key(), "1\n2\n{oops\n4\n", "send", "--linger", "0", "s1")
	if r.code != exitError || !strings.Contains(r.stderr, "stdin line 3 is not valid JSON") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stdout != "ev1\nev2\n" || len(api.batches) != 1 {
		t.Errorf("stdout %q, %d batches: want the two lines before the bad one sent", r.stdout, len(api.batches))
	}
}

func TestSendGivesUp(t *testing.T) {
	api := &fakeAPI{fail503: 10}
	r := runCLI(t, api, key(), "1\n", "send", "--attempts", "2", "s1")
	if r.code != exitError || !strings.Contains(r.stderr, "503 Service Unavailable: Kafka did not acknowledge") || len(api.keys) != 2 {
		t.Fatalf("exit %d, stderr %q, %d requests", r.code, r.stderr, len(api.keys))
	}
}
