package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// withKey authenticates with key in X-API-Key.
func withKey(key string) http.Header { return http.Header{"X-Api-Key": {key}} }

// withBearer authenticates with Authorization: Bearer key and no X-API-Key.
func withBearer(key string) http.Header {
	return http.Header{"X-Api-Key": {""}, "Authorization": {"Bearer " + key}}
}

// do is request that fails the test on a transport error.
func do(t *testing.T, method, url, contentType string, body []byte, hdr http.Header) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := request(ctx, method, url, contentType, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return rep
}

// checkUnauthorized checks a 401 problem that names the Bearer scheme in
// WWW-Authenticate.
func checkUnauthorized(t *testing.T, what string, rep reply) {
	t.Helper()
	checkProblem(t, what, rep, http.StatusUnauthorized)
	if wa := rep.Header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(wa), "bearer") {
		t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", what, wa)
	}
}

// apiRoute is a request to one route of the API that succeeds with a key.
type apiRoute struct {
	method, path string
	body         []byte // JSON, or nil for no body
	results      bool   // an event-stream route
}

func (r apiRoute) String() string { return r.method + " " + r.path }

// protectedRoutes is every route that needs a key, about stream id; newID
// is a stream id that does not exist.
func protectedRoutes(id, newID string) []apiRoute {
	create := []byte(`{"name":"unauthorized"}`)
	event := []byte(`{"unauthorized":true}`)
	return []apiRoute{
		{method: "POST", path: "/v1/streams", body: create},
		{method: "GET", path: "/v1/streams"},
		{method: "PUT", path: "/v1/streams/" + newID, body: create},
		{method: "GET", path: "/v1/streams/" + id},
		{method: "DELETE", path: "/v1/streams/" + id},
		{method: "POST", path: "/v1/streams/" + id + "/events", body: event},
		{method: "GET", path: "/v1/streams/" + id + "/results", results: true},
		{method: "GET", path: "/v1/streams/" + id + "/dead-letters"},
		{method: "POST", path: "/stream/start", body: create},
		{method: "POST", path: "/stream/" + id + "/send", body: event},
		{method: "GET", path: "/stream/" + id + "/results", results: true},
	}
}

// tryRoute makes the route's request with hdr (on top of the test key) and
// query appended to the path. A results route that opens a stream fails the
// test (the stream is closed).
func tryRoute(t *testing.T, base string, r apiRoute, query string, hdr http.Header) reply {
	t.Helper()
	u := base + r.path
	if query != "" {
		u += "?" + query
	}
	if r.results {
		c, rep := trySSE(t, u, hdr)
		if c != nil {
			c.close()
			t.Errorf("%s?%s: opened a result stream, want 401", r, query)
			return reply{}
		}
		return rep
	}
	ct := ""
	if r.body != nil {
		ct = "application/json"
	}
	return do(t, r.method, u, ct, r.body, hdr)
}

// TestAuthRoutes checks that every API route refuses a missing, wrong or
// misplaced key with 401 and changes nothing, that the open routes stay
// open, and that both configured keys work in every accepted place.
func TestAuthRoutes(t *testing.T) {
	t.Parallel()
	otherKey := "second-key-" + randomSuffix()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "auth"))
	env["API_KEYS"] = apiKey + " , " + otherKey
	s := startServer(t, "auth", env)

	id := "auth-" + randomSuffix()
	newID := "auth-new-" + randomSuffix()
	if rep := call(t, http.MethodPut, s.Base+"/v1/streams/"+id, "application/json", []byte(`{"name":"target"}`)); rep.Status != http.StatusCreated {
		t.Fatalf("PUT: %s, want 201", rep)
	}
	feed := openSSE(t, s.Base+"/v1/streams/"+id+"/results")

	q := url.QueryEscape
	cases := []struct {
		name    string
		query   string
		header  http.Header
		results bool // also applies to the results routes
	}{
		{"no key", "", noKey, true},
		{"wrong X-API-Key", "", withKey("wrong-" + randomSuffix()), true},
		{"wrong bearer", "", withBearer("wrong-" + randomSuffix()), true},
		{"bearer without a token", "", http.Header{"X-Api-Key": {""}, "Authorization": {"Bearer "}}, true},
		{"the key with another scheme", "", http.Header{"X-Api-Key": {""}, "Authorization": {"Basic " + apiKey}}, true},
		{"a prefix of the key", "", withKey(apiKey[:len(apiKey)-1]), true},
		{"the key and more", "", withKey(apiKey + "x"), true},
		{"the key in upper case", "", withKey(strings.ToUpper(apiKey)), true},
		{"both keys in one header", "", withKey(apiKey + "," + otherKey), true},
		{"wrong ?api_key=", "api_key=" + q("wrong-"+randomSuffix()), noKey, true},
		// Admin keys may not travel in URLs: subscribe tokens do.
		{"an admin key only as ?api_key=", "api_key=" + q(apiKey), noKey, true},
		{"second admin key only as ?api_key=", "api_key=" + q(otherKey), noKey, true},
		{"an admin key only as ?token=", "token=" + q(apiKey), noKey, true},
		{"wrong X-API-Key with the right ?api_key=", "api_key=" + q(apiKey), withKey("wrong"), true},
	}
	for _, r := range protectedRoutes(id, newID) {
		for _, tc := range cases {
			if r.results && !tc.results {
				continue
			}
			rep := tryRoute(t, s.Base, r, tc.query, tc.header)
			if rep.Status != 0 {
				checkUnauthorized(t, r.String()+" with "+tc.name, rep)
			}
		}
	}

	// Nothing refused had an effect.
	if rep := call(t, http.MethodGet, s.Base+"/v1/streams/"+id, "", nil); rep.Status != http.StatusOK {
		t.Errorf("GET the stream after the refused DELETEs: %s, want 200", rep)
	}
	if rep := call(t, http.MethodGet, s.Base+"/v1/streams/"+newID, "", nil); rep.Status != http.StatusNotFound {
		t.Errorf("GET the stream of the refused PUTs: %s, want 404", rep)
	}
	for _, st := range listStreams(t, s.Base) {
		if st.Name == "unauthorized" {
			t.Errorf("a refused create made the stream %s", st.ID)
		}
	}
	expectNoMoreResults(t, s.Base+"/v1/streams/"+id+"/events", feed)

	t.Run("open routes", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if rep := do(t, "GET", s.Base+path, "", nil, noKey); rep.Status != http.StatusOK {
				t.Errorf("GET %s without a key: %s, want 200", path, rep)
			}
		}
		// The contract lists /openapi.yaml as open; whatever it answers,
		// it must not ask for a key.
		if rep := do(t, "GET", s.Base+"/openapi.yaml", "", nil, noKey); rep.Status == http.StatusUnauthorized || rep.Status >= 500 {
			t.Errorf("GET /openapi.yaml without a key: %s", rep)
		}
	})

	// Both keys, in every place a key is accepted.
	for _, key := range []string{apiKey, otherKey} {
		t.Run("key "+key[:6], func(t *testing.T) {
			for name, hdr := range map[string]http.Header{
				"X-API-Key":     withKey(key),
				"Bearer":        withBearer(key),
				"bearer (case)": {"X-Api-Key": {""}, "Authorization": {"bearer " + key}},
			} {
				if rep := do(t, "GET", s.Base+"/v1/streams/"+id, "", nil, hdr); rep.Status != http.StatusOK {
					t.Errorf("GET a stream with %s: %s, want 200", name, rep)
				}
			}
			rep := do(t, "POST", s.Base+"/stream/start", "application/json", []byte(`{"name":"by key"}`), withBearer(key))
			if rep.Status != http.StatusCreated {
				t.Fatalf("POST /stream/start with Bearer: %s, want 201", rep)
			}
			var st streamObj
			decodeJSON(t, "created stream", rep.Body, &st)
			// EventSource's way: a subscribe token in the query, no header.
			token := mintTokenWith(t, s.Base, withKey(key), st.ID)
			v1 := openSSEWith(t, s.Base+"/v1/streams/"+st.ID+"/results?token="+q(token), noKey)
			seed := openSSEWith(t, s.Base+"/stream/"+st.ID+"/results?token="+q(token), noKey)
			rep = do(t, "POST", s.Base+"/v1/streams/"+st.ID+"/events", "application/json", []byte(`{"by":"key"}`), withKey(key))
			if rep.Status != http.StatusAccepted {
				t.Fatalf("send with X-API-Key: %s, want 202", rep)
			}
			var a accepted
			decodeJSON(t, "send answer", rep.Body, &a)
			for _, c := range []*sseConn{v1, seed} {
				got := c.awaitResults(t, 1, resultTimeout)
				checkResults(t, st.ID, got, a.EventIDs, nil)
			}
			if rep := do(t, "DELETE", s.Base+"/v1/streams/"+st.ID, "", nil, withKey(key)); rep.Status != http.StatusNoContent {
				t.Errorf("DELETE with X-API-Key: %s, want 204", rep)
			}
		})
	}
}

// listStreams pages through GET /v1/streams.
func listStreams(t *testing.T, base string) []streamObj {
	t.Helper()
	var all []streamObj
	after := ""
	for range 1000 {
		u := base + "/v1/streams?limit=100"
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		rep := call(t, http.MethodGet, u, "", nil)
		if rep.Status != http.StatusOK {
			t.Fatalf("GET %s: %s, want 200", u, rep)
		}
		var page struct {
			Streams []streamObj `json:"streams"`
			Next    string      `json:"next"`
		}
		decodeJSON(t, "stream list", rep.Body, &page)
		all = append(all, page.Streams...)
		if page.Next == "" {
			return all
		}
		after = page.Next
	}
	t.Fatalf("GET /v1/streams: more than 1000 pages")
	return nil
}

// TestAuthMetrics checks METRICS_AUTH=true: /metrics then needs a key like
// the API (not in the query), while /healthz and /readyz stay open. The key
// comes from API_KEY, the older single-key name.
func TestAuthMetrics(t *testing.T) {
	t.Parallel()
	key := "metrics-key-" + randomSuffix()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "metricsauth"))
	env["API_KEYS"] = ""
	env["API_KEY"] = key
	env["METRICS_AUTH"] = "true"
	s := startServer(t, "metricsauth", env)

	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
	}{
		{"no key", "", noKey},
		{"a wrong key", "", withKey("wrong-" + randomSuffix())},
		{"the unconfigured test key", "", withKey(apiKey)},
		{"a wrong bearer", "", withBearer("wrong")},
		{"the key only as ?api_key=", "?api_key=" + url.QueryEscape(key), noKey},
	} {
		rep := do(t, "GET", s.Base+"/metrics"+tc.query, "", nil, tc.header)
		checkUnauthorized(t, "GET /metrics with "+tc.name, rep)
	}
	for name, hdr := range map[string]http.Header{"X-API-Key": withKey(key), "Bearer": withBearer(key)} {
		rep := do(t, "GET", s.Base+"/metrics", "", nil, hdr)
		if rep.Status != http.StatusOK {
			t.Errorf("GET /metrics with %s: %s, want 200", name, rep)
		} else if !strings.Contains(string(rep.Body), "# TYPE ") {
			t.Errorf("GET /metrics with %s: not Prometheus text: %.200s", name, rep.Body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if rep := do(t, "GET", s.Base+path, "", nil, noKey); rep.Status != http.StatusOK {
			t.Errorf("GET %s without a key: %s, want 200", path, rep)
		}
	}
	// API_KEY works on the API too, and is the only key.
	if rep := do(t, "GET", s.Base+"/v1/streams", "", nil, withKey(key)); rep.Status != http.StatusOK {
		t.Errorf("GET /v1/streams with the API_KEY key: %s, want 200", rep)
	}
	checkUnauthorized(t, "GET /v1/streams with the unconfigured test key", do(t, "GET", s.Base+"/v1/streams", "", nil, withKey(apiKey)))
}

// generatedKey finds the key a server prints when it has none configured:
// the line after the announcement that is not blank, indented.
func generatedKey(t *testing.T, log string) string {
	t.Helper()
	const announce = "rtstream: no API_KEYS configured; generated this key"
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if !strings.Contains(l, announce) {
			continue
		}
		for _, next := range lines[i+1:] {
			if strings.TrimSpace(next) == "" {
				continue
			}
			if next[0] != ' ' && next[0] != '\t' {
				t.Errorf("the generated key's line is not indented: %q", next)
			}
			key := strings.TrimSpace(next)
			if strings.ContainsAny(key, " \t") || len(key) < 16 {
				t.Fatalf("the line after %q is %q, not a key", announce, next)
			}
			return key
		}
	}
	t.Fatalf("the server log has no %q followed by a key", announce)
	return ""
}

// TestAuthGeneratedKey starts a server with no key configured: it prints a
// generated key once, which then works, while no key or another key does not.
func TestAuthGeneratedKey(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "genkey"))
	env["API_KEYS"] = ""
	s := startServer(t, "genkey", env)

	key := generatedKey(t, s.lastStartLog())
	for name, hdr := range map[string]http.Header{"X-API-Key": withKey(key), "Bearer": withBearer(key)} {
		if rep := do(t, "GET", s.Base+"/v1/streams", "", nil, hdr); rep.Status != http.StatusOK {
			t.Errorf("GET /v1/streams with the generated key in %s: %s, want 200", name, rep)
		}
	}
	st := createStreamWith(t, s.Base, withKey(key))
	openSSEWith(t, s.Base+"/v1/streams/"+st.ID+"/results?token="+url.QueryEscape(mintTokenWith(t, s.Base, withKey(key), st.ID)), noKey)
	checkUnauthorized(t, "GET /v1/streams without a key", do(t, "GET", s.Base+"/v1/streams", "", nil, noKey))
	checkUnauthorized(t, "GET /v1/streams with the test key", do(t, "GET", s.Base+"/v1/streams", "", nil, withKey(apiKey)))

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.logTail(64<<20), key); n != 1 {
		t.Errorf("the generated key appears %d times in the server's output, want once", n)
	}
}

// createStreamWith creates a stream with the credentials in hdr.
func createStreamWith(t *testing.T, base string, hdr http.Header) streamObj {
	t.Helper()
	rep := do(t, "POST", base+"/v1/streams", "application/json", []byte(`{"name":"e2e"}`), hdr)
	if rep.Status != http.StatusCreated {
		t.Fatalf("POST /v1/streams: %s, want 201", rep)
	}
	var st streamObj
	decodeJSON(t, "created stream", rep.Body, &st)
	return st
}

// TestAuthDisabled runs a whole flow without any key on a server started
// with AUTH_DISABLED=true, which then generates no key either.
func TestAuthDisabled(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "noauth"))
	env["API_KEYS"] = ""
	env["AUTH_DISABLED"] = "true"
	s := startServer(t, "noauth", env)

	st := createStreamWith(t, s.Base, noKey)
	feed := openSSEWith(t, s.Base+"/v1/streams/"+st.ID+"/results", noKey)
	rep := do(t, "POST", s.Base+"/stream/"+st.ID+"/send", "application/json", []byte(`[{"n":1},{"n":2}]`), noKey)
	if rep.Status != http.StatusAccepted {
		t.Fatalf("send without a key: %s, want 202", rep)
	}
	var a accepted
	decodeJSON(t, "send answer", rep.Body, &a)
	checkResults(t, st.ID, feed.awaitResults(t, 2, resultTimeout), a.EventIDs, nil)
	if rep := do(t, "DELETE", s.Base+"/v1/streams/"+st.ID, "", nil, noKey); rep.Status != http.StatusNoContent {
		t.Errorf("DELETE without a key: %s, want 204", rep)
	}
	feed.awaitEnd(t, 30*time.Second)
	if strings.Contains(s.lastStartLog(), "generated this key") {
		t.Errorf("with AUTH_DISABLED=true the server still generated a key")
	}
	if log := s.lastStartLog(); !strings.Contains(log, "level=WARN msg=\"AUTHENTICATION IS DISABLED") {
		t.Errorf("with AUTH_DISABLED=true the start log has no loud warning:\n%s", log)
	}
}

// TestAuthDisabledWithCredentialsRefusesToStart: AUTH_DISABLED=true beside
// keys or JWT settings is a contradiction; the server says so and exits
// non-zero rather than guess (issue 19 found it serving every route openly).
func TestAuthDisabledWithCredentialsRefusesToStart(t *testing.T) {
	t.Parallel()
	for _, extra := range []map[string]string{{"API_KEYS": "k1"}, {"API_KEY": "k1"}, {"JWT_JWKS_URL": "http://127.0.0.1:1/jwks.json"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, rtstreamBin)
		cmd.Env = append(os.Environ(), "AUTH_DISABLED=true", "HTTP_ADDR="+freeAddr(t), "DATA_DIR="+t.TempDir(), "API_KEYS=", "API_KEY=")
		for k, v := range extra {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("AUTH_DISABLED=true with %v: err %v; want a non-zero exit\n%s", extra, err, out)
			continue
		}
		if !strings.Contains(string(out), "AUTH_DISABLED=true cannot go with") {
			t.Errorf("AUTH_DISABLED=true with %v: no clear message:\n%s", extra, out)
		}
	}
}
