package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/rtstream/rtstream/internal/testenv"
)

// openapiSecondKey is a second credential: the open-stream cap is per key, so
// the test can fill one key's quota without touching the other's.
const openapiSecondKey = "e2e-openapi-second-key"

// TestOpenAPIContract drives a representative run through the API of the
// real server on the real Kafka and checks every request and every answer
// against the OpenAPI document the server itself serves: a request the test
// means to be valid must satisfy the document, one it means to be malformed
// must be refused by the document as by the server, and every answer must be
// one the document describes (status, headers, content type, body).
func TestOpenAPIContract(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	env := kafkaEnv(brokers, newPrefix(t, "openapi"))
	env["API_KEYS"] = apiKey + "," + openapiSecondKey
	env["MAX_BODY_BYTES"] = "65536"
	env["MAX_BATCH"] = "20"
	env["MAX_SSE_PER_KEY"] = "3"
	srv := startServer(t, "openapi", env)
	c := newContract(t, srv.Base)
	noKey := http.Header{"X-API-Key": {""}}

	// Operations: public, no credential.
	c.do(exchange{method: "GET", path: "/openapi.yaml", header: noKey, want: 200})
	c.do(exchange{method: "GET", path: "/healthz", header: noKey, want: 200})
	c.do(exchange{method: "GET", path: "/readyz", header: noKey, want: 200})
	if rep := c.do(exchange{method: "GET", path: "/metrics", header: noKey, want: 200}); !bytes.Contains(rep.Body, []byte("rtstream_")) {
		t.Errorf("GET /metrics: no rtstream_ series in %.200s", rep.Body)
	}
	if rep := c.do(exchange{method: "GET", path: "/console", header: noKey, want: 200}); !bytes.Contains(rep.Body, []byte("<html")) {
		t.Errorf("GET /console: not a page: %.200s", rep.Body)
	}
	c.do(exchange{method: "GET", path: "/console/app.js", header: noKey, want: 200})
	c.do(exchange{method: "GET", path: "/console/icon.svg", header: noKey, want: 200})
	c.do(exchange{method: "GET", path: "/console/nothing.js", header: noKey, want: 404})

	// Streams: create (three ways), PUT 201/200/409, get, list.
	var st, passthrough, seed, proc streamObj
	rep := c.do(exchange{method: "POST", path: "/v1/streams", contentType: "application/json", body: []byte(`{"name":"openapi"}`), want: 201})
	decodeJSON(t, "POST /v1/streams", rep.Body, &st)
	if loc := rep.Header.Get("Location"); loc != "/v1/streams/"+st.ID {
		t.Errorf("POST /v1/streams: Location %q for stream %q", loc, st.ID)
	}
	decodeJSON(t, "POST /v1/streams (empty)", c.do(exchange{method: "POST", path: "/v1/streams", want: 201}).Body, &passthrough)
	decodeJSON(t, "POST /stream/start", c.do(exchange{method: "POST", path: "/stream/start", contentType: "application/json", body: []byte(`{"name":"seed"}`), want: 201}).Body, &seed)
	procID := "openapi-proc-" + randomSuffix()
	procDef := []byte(`{"name":"hot","processor":{"filter":"data.temp > 30","map":"{\"f\": data.temp * 1.8 + 32}"}}`)
	decodeJSON(t, "PUT", c.do(exchange{method: "PUT", path: "/v1/streams/" + procID, contentType: "application/json", body: procDef, want: 201}).Body, &proc)
	c.do(exchange{method: "PUT", path: "/v1/streams/" + procID, contentType: "application/json", body: procDef, want: 200})
	c.do(exchange{method: "PUT", path: "/v1/streams/" + procID, contentType: "application/json", body: []byte(`{"name":"other"}`), want: 409})
	c.do(exchange{method: "GET", path: "/v1/streams/" + st.ID, want: 200})
	var page struct {
		Next string `json:"next"`
	}
	decodeJSON(t, "GET /v1/streams", c.do(exchange{method: "GET", path: "/v1/streams?limit=2", want: 200}).Body, &page)
	if page.Next == "" {
		t.Error("GET /v1/streams?limit=2 over four streams: no next page")
	}
	c.do(exchange{method: "GET", path: "/v1/streams?limit=1000&after=" + url.QueryEscape(page.Next), want: 200})

	// Sends: one event, a batch, NDJSON, the seed route, Idempotency-Key
	// (first, replay, reused with another body).
	events := "/v1/streams/" + st.ID + "/events"
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`{"temp":31.5}`), want: 202})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`[{"temp":1},{"temp":2}]`), want: 202})
	c.do(exchange{method: "POST", path: events, contentType: "application/x-ndjson", body: []byte("{\"temp\":3}\n\n{\"temp\":4}\n"), want: 202})
	c.do(exchange{method: "POST", path: "/stream/" + st.ID + "/send", contentType: "application/json", body: []byte(`"five"`), want: 202})
	idem := http.Header{"Idempotency-Key": {"openapi-" + randomSuffix()}}
	first := c.do(exchange{method: "POST", path: events, header: idem, contentType: "application/json", body: []byte(`{"temp":6}`), want: 202})
	again := c.do(exchange{method: "POST", path: events, header: idem, contentType: "application/json", body: []byte(`{"temp":6}`), want: 202})
	if again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.Body, again.Body) {
		t.Errorf("Idempotency-Key retry: Idempotent-Replayed %q, bodies %s and %s", again.Header.Get("Idempotent-Replayed"), first.Body, again.Body)
	}
	c.do(exchange{method: "POST", path: events, header: idem, contentType: "application/json", body: []byte(`{"temp":7}`), want: 422})
	const sent = 7 // events accepted on st above
	procEvents := "/v1/streams/" + procID + "/events"
	c.do(exchange{method: "POST", path: procEvents, contentType: "application/json", body: []byte(`[{"temp":40},{"temp":"hot"},{"temp":10}]`), want: 202})

	// Results as JSON pages: long polls until every result is there, then
	// an empty page after the last cursor, and the seed route.
	results := "/v1/streams/" + st.ID + "/results"
	var got []json.RawMessage
	next := ""
	deadline := time.Now().Add(resultTimeout)
	for len(got) < sent && time.Now().Before(deadline) {
		path := results + "?limit=100&wait=10s"
		if next != "" {
			path += "&after=" + next
		}
		var p struct {
			Results []json.RawMessage `json:"results"`
			Next    string            `json:"next"`
		}
		decodeJSON(t, "GET results", c.do(exchange{method: "GET", path: path, want: 200}).Body, &p)
		got, next = append(got, p.Results...), p.Next
	}
	if len(got) != sent {
		t.Fatalf("JSON pages: %d results, want %d", len(got), sent)
	}
	c.do(exchange{method: "GET", path: results + "?limit=1&after=" + next, want: 200})
	c.do(exchange{method: "GET", path: "/stream/" + st.ID + "/results?limit=1", want: 200})

	// Results as server-sent events: replayed from the start, with a
	// subscribe token in the query as browsers send it, and resumed by
	// Last-Event-ID.
	var tok struct{ Token string }
	decodeJSON(t, "token", c.do(exchange{method: "POST", path: "/v1/streams/" + st.ID + "/tokens", contentType: "application/json",
		body: []byte(`{"ttl":"5m"}`), want: 201}).Body, &tok)
	sse := c.openSSE(results+"?from=earliest&token="+url.QueryEscape(tok.Token), noKey)
	cursor, _ := sse.nextResult()
	sse.close()
	sse = c.openSSE(results, http.Header{"Last-Event-ID": {cursor}})
	sse.nextResult()
	sse.close()

	// Dead letters: the processor's filter fails on {"temp":"hot"}.
	deadLetters := "/v1/streams/" + procID + "/dead-letters"
	found := 0
	after := ""
	for deadline := time.Now().Add(resultTimeout); found == 0 && time.Now().Before(deadline); {
		path := deadLetters + "?limit=10"
		if after != "" {
			path += "&after=" + after
		}
		var p struct {
			DeadLetters []json.RawMessage `json:"dead_letters"`
			Next        string            `json:"next"`
		}
		decodeJSON(t, "GET dead-letters", c.do(exchange{method: "GET", path: path, want: 200}).Body, &p)
		found += len(p.DeadLetters)
		if p.Next != "" {
			after = p.Next
		} else if found == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if found == 0 {
		t.Errorf("dead letters of %s: none within %s", procID, resultTimeout)
	}

	// WebSocket: refused without an upgrade or from a foreign origin, then
	// a real handshake.
	ws := "/v1/streams/" + st.ID + "/ws"
	upgrade := http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"},
	}
	c.do(exchange{method: "GET", path: ws, want: 426, badRequest: true})
	foreign := upgrade.Clone()
	foreign.Set("Origin", "https://elsewhere.example")
	c.do(exchange{method: "GET", path: ws, header: foreign, want: 403})
	c.do(exchange{method: "GET", path: ws + "?from=earliest", header: upgrade, want: 101})

	// Open result streams over the held-connections quota (per key here,
	// without tenants): 403 quota-exceeded.
	second := http.Header{"X-API-Key": {openapiSecondKey}}
	for range 3 {
		c.openSSE(results, second) // closed when the test ends
	}
	sseCapped := second.Clone()
	sseCapped.Set("Accept", "text/event-stream")
	c.do(exchange{method: "GET", path: results, header: sseCapped, want: 403})

	// Errors.
	c.do(exchange{method: "GET", path: "/v1/streams", header: noKey, want: 401, badRequest: true})
	c.do(exchange{method: "GET", path: "/v1/streams", header: http.Header{"X-API-Key": {"wrong"}}, want: 401})
	c.do(exchange{method: "GET", path: "/v1/streams?limit=0", want: 400, badRequest: true})
	c.do(exchange{method: "GET", path: "/v1/streams/bad!id", want: 400, badRequest: true})
	c.do(exchange{method: "GET", path: "/v1/streams/openapi-missing-" + randomSuffix(), want: 404})
	c.do(exchange{method: "POST", path: "/v1/streams", contentType: "application/json", body: []byte(`{"name":"x","nope":1}`), want: 400, badRequest: true})
	c.do(exchange{method: "POST", path: "/v1/streams", contentType: "application/json", body: []byte(`{"processor":{"filter":"data.temp >"}}`), want: 400})
	c.do(exchange{method: "POST", path: "/v1/streams", contentType: "text/plain", body: []byte(`name`), want: 415, badRequest: true})
	c.do(exchange{method: "POST", path: "/v1/streams", contentType: "application/json", body: append([]byte(`{"name":"big"}`), bytes.Repeat([]byte(" "), 70<<10)...), want: 413})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`{"temp":`), want: 400, badRequest: true})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`[]`), want: 400, badRequest: true})
	c.do(exchange{method: "POST", path: events, header: http.Header{"Idempotency-Key": {strings.Repeat("k", 256)}}, contentType: "application/json", body: []byte(`1`), want: 400, badRequest: true})
	c.do(exchange{method: "POST", path: events, contentType: "text/csv", body: []byte("a,b\n"), want: 415, badRequest: true})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`"` + strings.Repeat("x", 70<<10) + `"`), want: 413})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`[` + strings.TrimSuffix(strings.Repeat("1,", 21), ",") + `]`), want: 413})
	c.do(exchange{method: "POST", path: "/v1/streams/openapi-missing-" + randomSuffix() + "/events", contentType: "application/json", body: []byte(`1`), want: 404})
	c.do(exchange{method: "GET", path: results + "?limit=5000", want: 400, badRequest: true})
	c.do(exchange{method: "GET", path: results + "?after=not-a-cursor", want: 400, badRequest: true})
	c.do(exchange{method: "GET", path: results + "?wait=2m", want: 400})
	c.do(exchange{method: "GET", path: deadLetters + "?after=x", want: 400, badRequest: true})
	c.undocumented(exchange{method: "PATCH", path: "/v1/streams/" + st.ID, want: 405})
	c.undocumented(exchange{method: "GET", path: "/v2/nothing", want: 404})

	// Delete: open subscriptions end, then the stream is gone everywhere.
	watching := c.openSSE(results, nil)
	c.do(exchange{method: "DELETE", path: "/v1/streams/" + st.ID, want: 204})
	watching.awaitEnd()
	c.do(exchange{method: "GET", path: "/v1/streams/" + st.ID, want: 404})
	c.do(exchange{method: "POST", path: events, contentType: "application/json", body: []byte(`1`), want: 404})
	c.do(exchange{method: "GET", path: results + "?limit=1", want: 404})
	c.do(exchange{method: "DELETE", path: "/v1/streams/" + st.ID, want: 404})
	for _, id := range []string{passthrough.ID, seed.ID, proc.ID} {
		c.do(exchange{method: "DELETE", path: "/v1/streams/" + id, want: 204})
	}
}

// ---------------------------------------------------------------------------
// Checking exchanges against the document

// contract checks exchanges with one server against the OpenAPI document it
// serves.
type contract struct {
	t      *testing.T
	base   string
	doc    *openapi3.T
	router routers.Router
	// client follows no redirect: the answer checked is the server's own.
	client *http.Client
}

// exchange is one request and the status the test expects for it.
type exchange struct {
	method, path string
	// header is set on top of the default X-API-Key; an empty value removes
	// a header.
	header      http.Header
	contentType string
	body        []byte
	want        int
	// badRequest: the document itself must refuse the request, as the
	// server does.
	badRequest bool
}

func init() {
	// OpenAPI 3.1 describes a sequential body as the array of its items
	// (see NDJSONEvents in the document); kin-openapi has no decoder for it.
	for _, mt := range []string{"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"} {
		openapi3filter.RegisterBodyDecoder(mt, ndjsonDecoder)
	}
}

func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	var items []any
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, err
		}
		items = append(items, v)
	}
	return items, sc.Err()
}

// newContract fetches the server's document without a credential, loads
// and validates it, and routes requests with it.
func newContract(t *testing.T, base string) *contract {
	t.Helper()
	rep := call(t, http.MethodGet, base+"/openapi.yaml", "", nil)
	if rep.Status != http.StatusOK || mediaType(rep.Header.Get("Content-Type")) != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q", rep.Status, rep.Header.Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rep.Body)
	if err != nil {
		t.Fatalf("GET /openapi.yaml: not an OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("GET /openapi.yaml: OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	router, err := legacy.NewRouter(doc, openapi3.EnableMultiError())
	if err != nil {
		t.Fatalf("GET /openapi.yaml: %v", err)
	}
	client := &http.Client{
		Transport:     httpClient.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &contract{t: t, base: base, doc: doc, router: router, client: client}
}

// newRequest builds the request of ex with the test's API key.
func (c *contract) newRequest(ctx context.Context, ex exchange) *http.Request {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, ex.method, c.base+ex.path, bytes.NewReader(ex.body))
	if err != nil {
		c.t.Fatalf("%s %s: %v", ex.method, ex.path, err)
	}
	if ex.body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	if ex.contentType != "" {
		req.Header.Set("Content-Type", ex.contentType)
	}
	req.Header.Set("X-API-Key", apiKey)
	for k, vs := range ex.header {
		req.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				req.Header.Add(k, v)
			}
		}
	}
	return req
}

// authenticate accepts any credential but insists that the one the
// security scheme names is there, so that the document's security
// requirements are checked too: which routes take ?api_key=, which need no
// credential.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r, s := in.RequestValidationInput.Request, in.SecurityScheme
	switch {
	case s.Type == "apiKey" && s.In == "header" && r.Header.Get(s.Name) == "",
		s.Type == "apiKey" && s.In == "query" && r.URL.Query().Get(s.Name) == "",
		s.Type == "http" && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		return fmt.Errorf("no credential for %s", in.SecuritySchemeName)
	}
	return nil
}

// validateRequest checks req against the document: valid unless
// ex.badRequest, in which case the document must refuse it. It restores the
// body for sending.
func (c *contract) validateRequest(name string, req *http.Request, ex exchange) *openapi3filter.RequestValidationInput {
	c.t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s: not in the document: %v", name, err)
		return nil
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: authenticate, MultiError: true},
	}
	err = openapi3filter.ValidateRequest(req.Context(), in)
	switch {
	case err != nil && !ex.badRequest:
		c.t.Errorf("%s (%s): the document refuses this request: %v", name, route.Operation.OperationID, err)
	case err == nil && ex.badRequest:
		c.t.Errorf("%s (%s): the document accepts this request, which the test means to be malformed", name, route.Operation.OperationID)
	}
	if ex.body != nil {
		req.Body = io.NopCloser(bytes.NewReader(ex.body))
	}
	return in
}

// validateResponse checks an answer against the document, headers, content
// type and body included; an undocumented status fails.
func (c *contract) validateResponse(name string, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) {
	c.t.Helper()
	if in == nil {
		return
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s → %d (%s): the answer does not match the document: %v\nbody: %.300s",
			name, status, in.Route.Operation.OperationID, err, body)
	}
}

// do sends ex, checks the status, and checks request and answer against the
// document.
func (c *contract) do(ex exchange) reply {
	c.t.Helper()
	name := ex.method + " " + ex.path
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req := c.newRequest(ctx, ex)
	in := c.validateRequest(name, req, ex)
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	var body []byte
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The body is the WebSocket connection; the handshake is the answer.
		_ = resp.Body.Close()
	} else {
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			c.t.Fatalf("%s: reading the answer: %v", name, err)
		}
	}
	if resp.StatusCode != ex.want {
		c.t.Errorf("%s: %d, want %d: %.300s", name, resp.StatusCode, ex.want, body)
	}
	c.validateResponse(name, in, resp.StatusCode, resp.Header, body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// undocumented sends a request the document has no operation for (another
// method, an unknown path) and checks that the server refuses it with a
// problem, as the document's introduction says.
func (c *contract) undocumented(ex exchange) {
	c.t.Helper()
	name := ex.method + " " + ex.path
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req := c.newRequest(ctx, ex)
	if _, _, err := c.router.FindRoute(req); err == nil {
		c.t.Errorf("%s: the document has an operation for it", name)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != ex.want || mediaType(resp.Header.Get("Content-Type")) != "application/problem+json" {
		c.t.Errorf("%s: %d %q, want %d application/problem+json", name, resp.StatusCode, resp.Header.Get("Content-Type"), ex.want)
	}
	if err := c.matches("Problem", body); err != nil {
		c.t.Errorf("%s: the problem does not match the document's Problem: %v", name, err)
	}
}

// matches checks a JSON text against one of the document's schemas.
func (c *contract) matches(schema string, data []byte) error {
	ref := c.doc.Components.Schemas[schema]
	if ref == nil {
		return fmt.Errorf("the document has no schema %s", schema)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	return ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// ---------------------------------------------------------------------------
// Server-sent events

// sseStream is an open event stream whose request and headers were checked;
// its frames are checked as they are read, and the bytes read so far are
// checked as the body when it is closed.
type sseStream struct {
	c      *contract
	name   string
	in     *openapi3filter.RequestValidationInput
	resp   *http.Response
	cancel context.CancelFunc
	raw    bytes.Buffer
	lines  *bufio.Reader
	closed bool
}

// openSSE asks for the event stream at path, checks the 200 and waits for
// ": connected".
func (c *contract) openSSE(path string, header http.Header) *sseStream {
	c.t.Helper()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "text/event-stream")
	ex := exchange{method: http.MethodGet, path: path, header: h, want: http.StatusOK}
	name := "GET " + path + " (text/event-stream)"
	ctx, cancel := context.WithTimeout(context.Background(), resultTimeout)
	req := c.newRequest(ctx, ex)
	in := c.validateRequest(name, req, ex)
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("%s: %v", name, err)
	}
	s := &sseStream{c: c, name: name, in: in, resp: resp, cancel: cancel}
	s.lines = bufio.NewReader(io.TeeReader(resp.Body, &s.raw))
	c.t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(s.lines)
		c.t.Fatalf("%s: %d, want 200: %s", name, resp.StatusCode, body)
	}
	if line, err := s.lines.ReadString('\n'); err != nil || line != ": connected\n" {
		c.t.Fatalf("%s: first line %q (%v), want \": connected\"", name, line, err)
	}
	return s
}

// frame reads the next event (comments skipped): its event, id and data.
func (s *sseStream) frame() (event, id, data string, err error) {
	for {
		line, err := s.lines.ReadString('\n')
		if err != nil {
			return "", "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && event != "":
			return event, id, data, nil
		case strings.HasPrefix(line, ":"), line == "":
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		default:
			return "", "", "", fmt.Errorf("unexpected line %q", line)
		}
	}
}

// nextResult reads the next frame, which must be a result: its id a Cursor
// and its data a Result, as the document says.
func (s *sseStream) nextResult() (cursor string, data []byte) {
	t := s.c.t
	t.Helper()
	event, id, d, err := s.frame()
	if err != nil || event != "result" {
		t.Fatalf("%s: want a result, got event %q (%v)", s.name, event, err)
	}
	if err := s.c.matches("Cursor", mustJSON(t, id)); err != nil {
		t.Errorf("%s: the id %q is not a Cursor: %v", s.name, id, err)
	}
	if err := s.c.matches("Result", []byte(d)); err != nil {
		t.Errorf("%s: the data is not a Result: %v\n%s", s.name, err, d)
	}
	return id, []byte(d)
}

// awaitEnd reads until "event: end", whose data the document spells out,
// and expects the server to close the stream then.
func (s *sseStream) awaitEnd() {
	t := s.c.t
	t.Helper()
	for {
		event, _, data, err := s.frame()
		if err != nil {
			t.Fatalf("%s: no event: end before %v", s.name, err)
		}
		if event == "end" {
			if data != `{"reason":"stream deleted"}` {
				t.Errorf("%s: end data %q", s.name, data)
			}
			break
		}
	}
	if _, err := s.lines.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: not closed after event: end (%v)", s.name, err)
	}
}

// close ends the stream and checks the answer as read so far against the
// document.
func (s *sseStream) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	_ = s.resp.Body.Close()
	s.c.validateResponse(s.name, s.in, s.resp.StatusCode, s.resp.Header, s.raw.Bytes())
}
