package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestClient is a client of a test server running h.
func newTestClient(t *testing.T, h http.Handler, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, append([]Option{WithAPIKey("k")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblem(w http.ResponseWriter, status int, retryAfter, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	if body == "" {
		body = fmt.Sprintf(`{"type":"about:blank","title":%q,"status":%d,"detail":"d"}`, http.StatusText(status), status)
	}
	io.WriteString(w, body)
}

func TestNewRejectsBadBaseURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	c, err := New("http://h:1/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.url(streamPath("a b", "events"), nil); got != "http://h:1/prefix/v1/streams/a%20b/events" {
		t.Errorf("url = %s", got)
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		retryAfter  string
		body        string
		want        Error
	}{
		{
			name: "problem with field errors", status: 400, contentType: "application/problem+json",
			body: `{"type":"about:blank","title":"Bad Request","status":400,"detail":"processor filter does not compile","instance":"/v1/streams","errors":[{"pointer":"/processor/filter","detail":"line 1, column 3: unexpected"}]}`,
			want: Error{StatusCode: 400, Type: "about:blank", Title: "Bad Request", Detail: "processor filter does not compile", Instance: "/v1/streams",
				Errors: []FieldError{{Pointer: "/processor/filter", Detail: "line 1, column 3: unexpected"}}},
		},
		{
			name: "rate limited with Retry-After", status: 429, contentType: "application/problem+json; charset=utf-8", retryAfter: "3",
			body: `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"slow down"}`,
			want: Error{StatusCode: 429, Type: "about:blank", Title: "Too Many Requests", Detail: "slow down", RetryAfter: 3 * time.Second},
		},
		{
			name: "not a problem: a proxy's page", status: 502, contentType: "text/html", body: "<html>bad gateway</html>",
			want: Error{StatusCode: 502, Title: "Bad Gateway", Detail: "<html>bad gateway</html>"},
		},
		{
			name: "empty body", status: 404, contentType: "", body: "",
			want: Error{StatusCode: 404, Title: "Not Found"},
		},
		{
			name: "problem that is not JSON", status: 503, contentType: "application/problem+json", retryAfter: "soon", body: "{",
			want: Error{StatusCode: 503, Title: "Service Unavailable", Detail: "{"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-API-Key") != "k" {
					t.Errorf("X-API-Key %q", r.Header.Get("X-API-Key"))
				}
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			_, err := c.GetStream(context.Background(), "s1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v (%T), want an *Error", err, err)
			}
			got := *e
			got.Method, got.Path = "", ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if e.Method != "GET" || e.Path != "/v1/streams/s1" {
				t.Errorf("request %s %s", e.Method, e.Path)
			}
			if StatusCode(err) != tc.status || IsNotFound(err) != (tc.status == 404) || IsRateLimited(err) != (tc.status == 429) {
				t.Errorf("helpers disagree with status %d", tc.status)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Errorf("message %q lacks the status", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"later", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	initial, max := 100*time.Millisecond, time.Second
	top := func() float64 { return 0.999999 }
	zero := func() float64 { return 0 }
	wantBounds := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for retry, b := range wantBounds {
		bound := b * time.Millisecond
		if got := backoff(initial, max, retry, top); got > bound || got < bound*99/100 {
			t.Errorf("retry %d: top of the jitter %s, want just under %s", retry, got, bound)
		}
		if got := backoff(initial, max, retry, zero); got != 0 {
			t.Errorf("retry %d: bottom of the jitter %s, want 0 (full jitter)", retry, got)
		}
	}
	if got := backoff(initial, max, 1000, top); got > max {
		t.Errorf("retry 1000: %s, over the cap (overflow?)", got)
	}
	// Retry-After is a floor, with a jitter above it.
	p := RetryPolicy{InitialBackoff: 50 * time.Millisecond}.withDefaults()
	ra := &Error{StatusCode: 503, RetryAfter: 2 * time.Second}
	if got := p.retryDelay(0, ra, zero); got != 2*time.Second {
		t.Errorf("retryDelay with Retry-After 2s, no jitter = %s", got)
	}
	if got := p.retryDelay(5, ra, top); got < 2*time.Second || got >= 2*time.Second+50*time.Millisecond {
		t.Errorf("retryDelay with Retry-After 2s, top jitter = %s", got)
	}
}

// sendServer answers sends with the statuses in plan, one per request, then
// 202; it records each request's key and body.
type sendServer struct {
	mu   sync.Mutex
	plan []func(w http.ResponseWriter)
	keys []string
	body []string
}

func (s *sendServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
	s.body = append(s.body, string(body))
	var step func(http.ResponseWriter)
	if len(s.plan) > 0 {
		step, s.plan = s.plan[0], s.plan[1:]
	}
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/streams/s1/events" || r.Header.Get("Content-Type") != "application/json" {
		writeProblem(w, 400, "", "")
		return
	}
	if step != nil {
		step(w)
		return
	}
	if r.Header.Get("Idempotency-Key") == "replay" {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"accepted":2,"event_ids":["e1","e2"]}`)
}

func (s *sendServer) requests() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...), append([]string(nil), s.body...)
}

func status(code int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { writeProblem(w, code, retryAfter, "") }
}

// cut drops the connection without an answer: a transport error.
func cut(w http.ResponseWriter) { panic(http.ErrAbortHandler) }

func TestSendRetries(t *testing.T) {
	fast := WithRetryPolicy(RetryPolicy{MaxAttempts: 4, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	events := []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`[2]`)}
	tests := []struct {
		name         string
		plan         []func(http.ResponseWriter)
		opts         SendOptions
		wantAttempts int
		wantStatus   int // of the error; 0 for success
		wantKey      string
		minElapsed   time.Duration
	}{
		{name: "no retry without asking", plan: []func(http.ResponseWriter){status(503, "1")}, wantAttempts: 1, wantStatus: 503},
		{name: "a key alone does not retry", plan: []func(http.ResponseWriter){status(503, "")}, opts: SendOptions{IdempotencyKey: "mine"}, wantAttempts: 1, wantStatus: 503, wantKey: "mine"},
		{name: "503 with Retry-After is honoured", plan: []func(http.ResponseWriter){status(503, "1")}, opts: SendOptions{Retry: true}, wantAttempts: 2, minElapsed: time.Second},
		{name: "429s then accepted", plan: []func(http.ResponseWriter){status(429, ""), status(429, "")}, opts: SendOptions{Retry: true}, wantAttempts: 3},
		{name: "409 in flight then accepted", plan: []func(http.ResponseWriter){status(409, "")}, opts: SendOptions{Retry: true, IdempotencyKey: "mine"}, wantAttempts: 2, wantKey: "mine"},
		{name: "transport error retried with a key", plan: []func(http.ResponseWriter){cut}, opts: SendOptions{Retry: true}, wantAttempts: 2},
		{name: "transport error not retried without a key", plan: []func(http.ResponseWriter){cut}, wantAttempts: 1, wantStatus: -1},
		{name: "400 is final", plan: []func(http.ResponseWriter){status(400, "")}, opts: SendOptions{Retry: true}, wantAttempts: 1, wantStatus: 400},
		{name: "gives up after MaxAttempts", plan: []func(http.ResponseWriter){status(503, ""), status(503, ""), status(503, ""), status(503, ""), status(503, "")}, opts: SendOptions{Retry: true}, wantAttempts: 4, wantStatus: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &sendServer{plan: tc.plan}
			c := newTestClient(t, srv, fast)
			c.newKey = func() string { return "generated" }
			start := time.Now()
			res, err := c.SendBatch(context.Background(), "s1", events, tc.opts)
			elapsed := time.Since(start)
			keys, bodies := srv.requests()
			if len(keys) != tc.wantAttempts {
				t.Fatalf("%d requests, want %d (err %v)", len(keys), tc.wantAttempts, err)
			}
			wantKey := tc.wantKey
			if wantKey == "" && tc.opts.Retry {
				wantKey = "generated"
			}
			for i := range keys {
				if keys[i] != wantKey || bodies[i] != `[{"a":1},[2]]` {
					t.Errorf("request %d: key %q body %s; want key %q and the same body every time", i, keys[i], bodies[i], wantKey)
				}
			}
			switch {
			case tc.wantStatus == 0:
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if res.Accepted != 2 || len(res.EventIDs) != 2 || res.Attempts != tc.wantAttempts || res.IdempotencyKey != wantKey {
					t.Errorf("result %+v", res)
				}
			case tc.wantStatus < 0:
				if err == nil || StatusCode(err) != 0 {
					t.Errorf("err %v, want a transport error", err)
				}
			default:
				if StatusCode(err) != tc.wantStatus {
					t.Errorf("err %v, want status %d", err, tc.wantStatus)
				}
			}
			if elapsed < tc.minElapsed {
				t.Errorf("took %s, want at least %s", elapsed, tc.minElapsed)
			}
		})
	}
}

func TestSendReplayedAndInvalid(t *testing.T) {
	srv := &sendServer{}
	c := newTestClient(t, srv)
	res, err := c.SendBatch(context.Background(), "s1", []json.RawMessage{json.RawMessage(`1`)}, SendOptions{IdempotencyKey: "replay"})
	if err != nil || !res.Replayed {
		t.Fatalf("res %+v err %v; want a replayed answer", res, err)
	}
	if _, err := c.Send(context.Background(), "s1", json.RawMessage(`{"a":`)); err == nil {
		t.Fatal("an invalid event was sent")
	}
	if _, err := c.Send(context.Background(), "s1"); err == nil {
		t.Fatal("no events was sent")
	}
	if keys, _ := srv.requests(); len(keys) != 1 {
		t.Fatalf("%d requests; invalid sends must not reach the server", len(keys))
	}
}

func TestSendCanceledWhileWaiting(t *testing.T) {
	srv := &sendServer{plan: []func(http.ResponseWriter){status(503, "30")}}
	c := newTestClient(t, srv)
	// The first answer must come within the timeout (it does by far even on
	// a loaded machine); the Retry-After of 30 s outlasts it by far too.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.SendBatch(ctx, "s1", []json.RawMessage{json.RawMessage(`1`)}, SendOptions{Retry: true})
	if !errors.Is(err, context.DeadlineExceeded) || !IsUnavailable(err) {
		t.Fatalf("err %v; want both the 503 and the deadline", err)
	}
}

func TestStreamsAndPages(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	var seen []string
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/streams", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RawQuery)
		mu.Unlock()
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		after := r.URL.Query().Get("after")
		var page []map[string]string
		next := ""
		for _, id := range ids {
			if id > after && len(page) < limit {
				page = append(page, map[string]string{"id": id})
			}
		}
		if len(page) == limit && page[len(page)-1]["id"] != ids[len(ids)-1] {
			next = page[len(page)-1]["id"]
		}
		json.NewEncoder(w).Encode(map[string]any{"streams": page, "next": next})
	})
	mux.HandleFunc("PUT /v1/streams/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		if r.PathValue("id") == "new" {
			w.WriteHeader(http.StatusCreated)
		}
		json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "name": body["name"], "processor": body["processor"]})
	})
	mux.HandleFunc("GET /v1/streams/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"results":[{"cursor":"0-1-0","stream_id":"s","event_id":"e","data":{"x":1}}],"next":"0-1-0","q":"`+r.URL.RawQuery+`"}`)
	})
	mux.HandleFunc("GET /v1/streams/{id}/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "after=3&limit=7" {
			writeProblem(w, 400, "", "")
			return
		}
		io.WriteString(w, `{"dead_letters":[{"event_id":"e","reason":"integer divide by zero","data":{"a":1}}],"next":"9"}`)
	})
	c := newTestClient(t, mux)
	ctx := context.Background()

	var got []string
	for st, err := range c.AllStreams(ctx, ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, st.ID)
	}
	if !reflect.DeepEqual(got, ids) {
		t.Errorf("AllStreams: %v, want %v", got, ids)
	}
	if want := []string{"limit=2", "after=b&limit=2", "after=d&limit=2"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("pages asked: %v, want %v", seen, want)
	}
	// Breaking out stops fetching.
	seen = nil
	for range c.AllStreams(ctx, ListOptions{Limit: 2}) {
		break
	}
	if len(seen) != 1 {
		t.Errorf("a loop that broke at once fetched %d pages", len(seen))
	}

	st, created, err := c.PutStream(ctx, "new", "n", &Processor{Filter: "true"})
	if err != nil || !created || st.ID != "new" || st.Name != "n" || st.Processor == nil || st.Processor.Filter != "true" {
		t.Errorf("PutStream new: %+v %v %v", st, created, err)
	}
	if _, created, err := c.PutStream(ctx, "old", "n", nil); err != nil || created {
		t.Errorf("PutStream existing: created %v err %v", created, err)
	}

	page, err := c.Poll(ctx, "s", PollOptions{After: "0-0-0", Limit: 5, Wait: 2 * time.Second})
	if err != nil || len(page.Results) != 1 || page.Results[0].Cursor != "0-1-0" || string(page.Results[0].Data) != `{"x":1}` || page.Next != "0-1-0" {
		t.Errorf("Poll: %+v %v", page, err)
	}
	dl, err := c.DeadLetters(ctx, "s", "3", 7)
	if err != nil || len(dl.DeadLetters) != 1 || dl.DeadLetters[0].Reason != "integer divide by zero" || dl.Next != "9" {
		t.Errorf("DeadLetters: %+v %v", dl, err)
	}
}

func TestPollQuery(t *testing.T) {
	var q string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q = r.URL.RawQuery
		if r.Header.Get("Accept") == "text/event-stream" {
			t.Error("a poll asked for an event stream")
		}
		io.WriteString(w, `{"results":[],"next":""}`)
	}))
	if _, err := c.Poll(context.Background(), "s", PollOptions{After: "1-2-3", Limit: 10, Wait: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if q != "after=1-2-3&limit=10&wait=1.5s" {
		t.Errorf("query %q", q)
	}
}
