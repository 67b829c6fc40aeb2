package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// writerKey is acme's key without the read scopes.
const writerKey = "writer-acme-key-01234567" // acme, streams:write and events:write

// matrixRoute is one route of the access matrix: what it needs, and what
// it answers a caller allowed to use it.
type matrixRoute struct {
	name, method, path string // path: %s is the stream id
	ct                 string
	body               string // %s is the caller's name
	scope              string
	ok                 int
	kind               routeKind
}

type routeKind int

const (
	aboutStream  routeKind = iota // a route of one stream
	streamless                    // list and create: no stream to hide
	resultsRoute                  // a stream's results: what a token may read
	deleteRoute                   // the stream is per caller: one delete each
)

var matrixRoutes = []matrixRoute{
	{"send", http.MethodPost, "/v1/streams/%s/events", "application/json", `{"by":"%s"}`, "events:write", 202, aboutStream},
	{"seed send", http.MethodPost, "/stream/%s/send", "application/json", `{"by":"%s"}`, "events:write", 202, aboutStream},
	{"list", http.MethodGet, "/v1/streams", "", "", "streams:read", 200, streamless},
	{"create", http.MethodPost, "/v1/streams", "application/json", `{"name":"by %s"}`, "streams:write", 201, streamless},
	{"seed create", http.MethodPost, "/stream/start", "application/json", `{"name":"by %s"}`, "streams:write", 201, streamless},
	{"get", http.MethodGet, "/v1/streams/%s", "", "", "streams:read", 200, aboutStream},
	{"put", http.MethodPut, "/v1/streams/%s", "application/json", `{"name":"acme main"}`, "streams:write", 200, aboutStream},
	{"poll", http.MethodGet, "/v1/streams/%s/results?limit=100", "", "", "results:read", 200, resultsRoute},
	{"seed poll", http.MethodGet, "/stream/%s/results?limit=100", "", "", "results:read", 200, resultsRoute},
	{"sse", http.MethodGet, "/v1/streams/%s/results", "text/event-stream", "", "results:read", 200, resultsRoute},
	{"websocket", http.MethodGet, "/v1/streams/%s/ws", "websocket", "", "results:read", 101, resultsRoute},
	{"dead letters", http.MethodGet, "/v1/streams/%s/dead-letters", "", "", "results:read", 200, resultsRoute},
	{"mint a token", http.MethodPost, "/v1/streams/%s/tokens", "application/json", `{"ttl":"1m"}`, "results:read", 201, aboutStream},
	{"delete", http.MethodDelete, "/v1/streams/%s", "", "", "streams:write", 204, deleteRoute},
}

// matrixCaller is one kind of caller and the credential it sends.
type matrixCaller struct {
	name string
	cred func(scope string) http.Header
}

// want is what caller c gets from route rt.
func (rt matrixRoute) want(c string) int {
	switch {
	case c == "no credential" || c == "expired token":
		return http.StatusUnauthorized
	case c == "own key with the scope" || c == "admin":
		return rt.ok
	case c == "own key without the scope":
		return http.StatusForbidden
	case c == "another tenant" && rt.kind == streamless:
		return rt.ok
	case c == "another tenant" && rt.name == "put":
		return http.StatusConflict // PUT of a used id; the detail names no tenant
	case c == "another tenant":
		return http.StatusNotFound
	case rt.kind == resultsRoute && c == "token for this stream":
		return rt.ok
	case rt.kind == resultsRoute && c == "token for another stream":
		return http.StatusNotFound
	}
	return http.StatusForbidden // a token outside results: the scope, or minting
}

// TestAccessMatrix: on the built binary and real Kafka, every route against
// every kind of caller: its status, and that a refused request changed
// nothing (the streams are all there, no event was added, no result was
// read).
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "matrix"))
	env["API_KEYS"] = ""
	env["API_KEYS_FILE"] = writeKeysFile(t, keyEntry("writer", "acme", writerKey, "streams:write", "events:write"))
	env["TOKEN_SECRET"] = strings.Repeat("matrix-secret-", 3)
	s := startServer(t, "matrix", env)
	base := s.Base
	main := createAs(t, base, aliceKey, "acme main")
	other := createAs(t, base, aliceKey, "acme other")
	expired := mintToken(t, base, aliceKey, main, "1s")
	callers := []matrixCaller{
		{"no credential", func(string) http.Header { return withKey("") }},
		{"another tenant", func(string) http.Header { return withKey(bobKey) }},
		{"own key without the scope", func(scope string) http.Header {
			if scope == "streams:write" || scope == "events:write" {
				return withKey(readerKey)
			}
			return withKey(writerKey)
		}},
		{"own key with the scope", func(string) http.Header { return withKey(aliceKey) }},
		{"admin", func(string) http.Header { return withKey(rootKey) }},
		{"token for this stream", tokenFor(t, base, main)},
		{"token for another stream", tokenFor(t, base, other)},
		{"expired token", func(string) http.Header { return withBearer(expired) }},
	}
	victims := map[string]string{}
	for _, c := range callers {
		victims[c.name] = createAs(t, base, aliceKey, "victim of "+c.name)
	}
	streamsBefore := countStreams(t, base)
	time.Sleep(1100 * time.Millisecond) // the expired token's 1s
	created, deleted := 0, 0
	for _, rt := range matrixRoutes {
		for _, c := range callers {
			id := main
			if rt.kind == deleteRoute {
				id = victims[c.name]
			}
			got, body := matrixCall(t, base, rt, id, c)
			if want := rt.want(c.name); got != want {
				t.Errorf("%s by %s: %d %s; want %d", rt.name, c.name, got, body, want)
			} else if got >= 400 && strings.Contains(body, `"by"`) {
				t.Errorf("%s by %s: refused, but the answer holds results: %s", rt.name, c.name, body)
			}
			if got == 201 && rt.kind == streamless {
				created++
			}
			if got == 204 {
				deleted++
			}
		}
	}
	checkNothingRefusedHappened(t, base, main, victims, streamsBefore+created-deleted)
	checkTokensInURLs(t, base, main)
}

// matrixCall makes rt's request as c and returns the status and body.
func matrixCall(t *testing.T, base string, rt matrixRoute, id string, c matrixCaller) (int, string) {
	t.Helper()
	path := rt.path
	if strings.Contains(path, "%s") {
		path = fmt.Sprintf(path, id)
	}
	hdr := c.cred(rt.scope)
	switch rt.ct {
	case "text/event-stream":
		conn, rep := trySSE(t, base+path, hdr)
		if conn != nil {
			conn.close()
		}
		return rep.Status, string(rep.Body)
	case "websocket":
		ws, rep := tryWS(t, "ws"+strings.TrimPrefix(base, "http")+path, hdr)
		if ws != nil {
			ws.close()
		}
		return rep.Status, string(rep.Body)
	}
	var body []byte
	if rt.body != "" {
		body = []byte(strings.ReplaceAll(rt.body, "%s", c.name))
	}
	rep := do(t, rt.method, base+path, rt.ct, body, hdr)
	return rep.Status, string(rep.Body)
}

// checkNothingRefusedHappened: every stream is there but those deleted by
// callers allowed to, and the main stream holds exactly the events of the
// callers allowed to send.
func checkNothingRefusedHappened(t *testing.T, base, main string, victims map[string]string, wantStreams int) {
	t.Helper()
	if n := countStreams(t, base); n != wantStreams {
		t.Errorf("%d streams after the matrix; want %d (a refused create or delete changed something)", n, wantStreams)
	}
	for caller, id := range victims {
		allowed := caller == "own key with the scope" || caller == "admin"
		if rep := as(t, aliceKey, http.MethodGet, base+"/v1/streams/"+id, "", nil); (rep.Status == http.StatusOK) == allowed {
			t.Errorf("the stream %s tried to delete: %s", caller, rep)
		}
	}
	want := map[string]int{"own key with the scope": 2, "admin": 2}
	got := map[string]int{}
	var page resultsPage
	deadline := time.Now().Add(resultTimeout)
	for len(page.Results) < 4 && time.Now().Before(deadline) {
		decodeJSON(t, "page", as(t, aliceKey, http.MethodGet, base+"/v1/streams/"+main+"/results?wait=2s&limit=100", "", nil).Body, &page)
	}
	time.Sleep(time.Second) // anything refused that was written would be here by now
	decodeJSON(t, "page", as(t, aliceKey, http.MethodGet, base+"/v1/streams/"+main+"/results?limit=100", "", nil).Body, &page)
	for _, r := range page.Results {
		var ev struct{ By string }
		decodeJSON(t, "event", r.Data, &ev)
		got[ev.By]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events on the stream by sender: %v; want %v", got, want)
	}
}

// checkTokensInURLs: a token and a read-only key travel in URLs; a key that
// can write may not, and the answer points to subscribe tokens.
func checkTokensInURLs(t *testing.T, base, main string) {
	t.Helper()
	token := mintToken(t, base, aliceKey, main, "")
	results := base + "/v1/streams/" + main + "/results"
	noKey := withKey("")
	if c, rep := trySSE(t, results+"?token="+url.QueryEscape(token), noKey); c == nil {
		t.Errorf("SSE with ?token=: %s", rep)
	}
	if w, rep := tryWS(t, wsURL(base, main, "token="+url.QueryEscape(token)), noKey); w == nil {
		t.Errorf("WebSocket with ?token=: %s", rep)
	}
	if c, rep := trySSE(t, results+"?api_key="+url.QueryEscape(readerKey), noKey); c == nil {
		t.Errorf("SSE with a read-only ?api_key=: %s", rep)
	}
	for _, key := range []string{aliceKey, rootKey} {
		c, rep := trySSE(t, results+"?api_key="+url.QueryEscape(key), noKey)
		if c != nil || rep.Status != http.StatusUnauthorized || !strings.Contains(string(rep.Body), "/tokens") {
			t.Errorf("SSE with a writing key in ?api_key=: %s; want 401 pointing to tokens", rep)
		}
	}
	if rep := do(t, http.MethodPost, base+"/v1/streams/"+main+"/tokens", "application/json", []byte(`{"ttl":"forever"}`), withKey(aliceKey)); rep.Status != http.StatusBadRequest {
		t.Errorf("a token with ttl \"forever\": %s; want 400", rep)
	}
	var long struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	rep := do(t, http.MethodPost, base+"/v1/streams/"+main+"/tokens", "application/json", []byte(`{"ttl":"100h"}`), withKey(aliceKey))
	decodeJSON(t, "token", rep.Body, &long)
	if d := time.Until(long.ExpiresAt); d > time.Hour || d < 50*time.Minute {
		t.Errorf("a token asked for 100h expires in %v; want SUBSCRIBE_TOKEN_MAX_TTL, 1h", d)
	}
}

// resultsPage is a poll's answer.
type resultsPage struct {
	Results []struct {
		Data json.RawMessage `json:"data"`
	} `json:"results"`
}

// keyEntry is an extra entry of writeKeysFile, with a plaintext key.
func keyEntry(name, tenant, key string, scopes ...string) map[string]any {
	return map[string]any{"name": name, "tenant": tenant, "scopes": scopes, "key": key}
}

// createAs creates a stream with key and returns its id.
func createAs(t *testing.T, base, key, name string) string {
	t.Helper()
	rep := as(t, key, http.MethodPost, base+"/v1/streams", "application/json", mustJSON(t, map[string]string{"name": name}))
	if rep.Status != http.StatusCreated {
		t.Fatalf("create %s: %s", name, rep)
	}
	var st streamObj
	decodeJSON(t, "stream", rep.Body, &st)
	return st.ID
}

// mintToken asks for a subscribe token for stream id with key.
func mintToken(t *testing.T, base, key, id, ttl string) string {
	t.Helper()
	return mintTokenAs(t, base, withKey(key), id, ttl)
}

// mintTokenWith mints a token for stream id with hdr's credential (nil:
// the test key) and the default life.
func mintTokenWith(t *testing.T, base string, hdr http.Header, id string) string {
	t.Helper()
	return mintTokenAs(t, base, hdr, id, "")
}

func mintTokenAs(t *testing.T, base string, hdr http.Header, id, ttl string) string {
	t.Helper()
	var body []byte
	if ttl != "" {
		body = []byte(`{"ttl":"` + ttl + `"}`)
	}
	rep := do(t, http.MethodPost, base+"/v1/streams/"+id+"/tokens", "application/json", body, hdr)
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if rep.Status != http.StatusCreated || rep.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("minting a token for %s: %s (Cache-Control %q)", id, rep, rep.Header.Get("Cache-Control"))
	}
	decodeJSON(t, "token", rep.Body, &tok)
	if tok.Token == "" || tok.ExpiresAt.Before(time.Now()) {
		t.Fatalf("token answer %s", rep)
	}
	return tok.Token
}

// tokenFor is a caller holding alice's token for stream id, as a bearer.
func tokenFor(t *testing.T, base, id string) func(string) http.Header {
	token := mintToken(t, base, aliceKey, id, "10m")
	return func(string) http.Header { return withBearer(token) }
}

// countStreams counts every tenant's streams (as the admin).
func countStreams(t *testing.T, base string) int {
	t.Helper()
	n, after := 0, ""
	for {
		var l struct {
			Streams []streamObj `json:"streams"`
			Next    string      `json:"next"`
		}
		decodeJSON(t, "list", as(t, rootKey, http.MethodGet, base+"/v1/streams?limit=100&after="+after, "", nil).Body, &l)
		n += len(l.Streams)
		if l.Next == "" {
			return n
		}
		after = l.Next
	}
}
