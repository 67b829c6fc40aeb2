package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name       string
		typ        websocket.MessageType
		frame      string
		want       []string
		wantStatus int
		wantDetail string
	}{
		{"one object", websocket.MessageText, `{"temp":31.5}`, []string{`{"temp":31.5}`}, 0, ""},
		{"one scalar", websocket.MessageText, " 42\n", []string{`42`}, 0, ""},
		{"an array is one event", websocket.MessageText, `[1,2]`, []string{`[1,2]`}, 0, ""},
		{"batch", websocket.MessageText, `{"events":[1,{"b":2},"x"]}`, []string{`1`, `{"b":2}`, `"x"`}, 0, ""},
		{"batch with spaces", websocket.MessageText, "{ \"events\" : [ {\n\"a\": 1} ] }", []string{`{"a":1}`}, 0, ""},
		{"line breaks compacted", websocket.MessageText, "{\n \"a\":\r\n [1,\n2]}", []string{`{"a":[1,2]}`}, 0, ""},
		{"events beside other members is one event", websocket.MessageText, `{"events":[1],"n":2}`, []string{`{"events":[1],"n":2}`}, 0, ""},
		{"events after another member is one event", websocket.MessageText, `{"n":2,"events":[1]}`, []string{`{"n":2,"events":[1]}`}, 0, ""},
		{"events not an array is one event", websocket.MessageText, `{"events":5}`, []string{`{"events":5}`}, 0, ""},
		{"an event that looks like a batch, in a batch", websocket.MessageText, `{"events":[{"events":[1]}]}`, []string{`{"events":[1]}`}, 0, ""},
		{"empty batch", websocket.MessageText, `{"events":[]}`, nil, 400, `"events" is empty`},
		{"empty frame", websocket.MessageText, " \n", nil, 400, "empty frame"},
		{"invalid JSON", websocket.MessageText, "{\n\"a\": }", nil, 400, "line 2, column 6"},
		{"trailing data", websocket.MessageText, `{"a":1} {"b":2}`, nil, 400, "invalid JSON"},
		{"broken batch", websocket.MessageText, `{"events":[1,]}`, nil, 400, "invalid JSON"},
		{"binary", websocket.MessageBinary, `{"a":1}`, nil, 415, "binary frames"},
		{"batch over the limit", websocket.MessageText, `{"events":[1,2,3,4]}`, nil, 413, "4 events in one frame, over the limit of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, p := decodeFrame(tt.typ, []byte(tt.frame), 3)
			if tt.wantStatus != 0 {
				if p == nil {
					t.Fatalf("got events %q, want a %d problem", got, tt.wantStatus)
				}
				if p.Status != tt.wantStatus || !strings.Contains(p.Detail, tt.wantDetail) {
					t.Fatalf("problem %d %q, want %d containing %q", p.Status, p.Detail, tt.wantStatus, tt.wantDetail)
				}
				return
			}
			if p != nil {
				t.Fatalf("problem %d %q, want events", p.Status, p.Detail)
			}
			var gotS []string
			for _, e := range got {
				gotS = append(gotS, string(e))
			}
			if strings.Join(gotS, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("events %q, want %q", gotS, tt.want)
			}
		})
	}
}

func TestAppendResultFrame(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	d := rtstream.Delivery{
		Cursor: rtstream.Cursor{Partition: 7, Offset: 2, Index: 1},
		Result: rtstream.Result{StreamID: "s1", EventID: "e1", ReceivedAt: at, ProcessedAt: at, Data: json.RawMessage(`{"x":"<1>"}`)},
	}
	frame := appendDelivery([]byte("garbage"), &d)[len("garbage"):]
	var got map[string]json.RawMessage
	if err := json.Unmarshal(frame, &got); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	sse := record.AppendResult(nil, &d.Result)
	var want map[string]json.RawMessage
	_ = json.Unmarshal(sse, &want)
	want["cursor"] = json.RawMessage(`"7-2-1"`)
	if len(got) != len(want) {
		t.Fatalf("frame %s, want the members of %s and the cursor", frame, sse)
	}
	for k, v := range want {
		if string(got[k]) != string(v) {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
}

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		origin  string
		allowed []string
		want    bool
	}{
		{"no origin: not a browser", "api.example", "", nil, true},
		{"same host", "api.example:8080", "http://api.example:8080", nil, true},
		{"same host, other case", "API.example", "https://api.EXAMPLE", nil, true},
		{"same name, other port", "api.example:8080", "http://api.example:9090", nil, false},
		{"other origin", "api.example", "https://evil.example", nil, false},
		{"listed origin", "api.example", "https://app.example", []string{"https://app.example"}, true},
		{"listed with another scheme", "api.example", "http://app.example", []string{"https://app.example"}, false},
		{"any origin", "api.example", "https://evil.example", []string{"*"}, true},
		{"null origin", "api.example", "null", []string{"https://app.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://"+tt.host+"/v1/streams/s/ws", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if got := originAllowed(r, tt.allowed); got != tt.want {
				t.Fatalf("originAllowed = %v, want %v", got, tt.want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The handler over a real socket, with in-memory stand-ins for the registry,
// the sender and the feed (the Kafka-backed ones are tested end to end in
// e2e/ws_test.go).

type wsFakeStreams struct {
	mu      sync.Mutex
	deleted bool
}

func (f *wsFakeStreams) Create(context.Context, rtstream.Stream) (rtstream.Stream, bool, error) {
	return rtstream.Stream{}, false, errors.New("not used")
}

func (f *wsFakeStreams) Get(_ context.Context, id string) (rtstream.Stream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleted || id != "s1" {
		return rtstream.Stream{}, fmt.Errorf("stream %q: %w", id, rtstream.ErrNotFound)
	}
	return rtstream.Stream{ID: id}, nil
}

func (f *wsFakeStreams) List(context.Context, string, string, int) ([]rtstream.Stream, error) {
	return nil, nil
}
func (f *wsFakeStreams) Delete(context.Context, string) error { return nil }

type wsFakeEvents struct {
	mu   sync.Mutex
	n    int
	err  error
	sent [][]json.RawMessage
}

func (f *wsFakeEvents) Send(_ context.Context, _ string, data []json.RawMessage) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.sent = append(f.sent, data)
	ids := make([]string, len(data))
	for i := range ids {
		f.n++
		ids[i] = fmt.Sprintf("ev%d", f.n)
	}
	return ids, nil
}

type wsFakeFeed struct {
	c        chan []rtstream.Delivery
	done     chan struct{}
	endOnce  sync.Once
	err      error
	closed   chan struct{}
	closeOne sync.Once
}

func newWSFakeFeed() *wsFakeFeed {
	return &wsFakeFeed{c: make(chan []rtstream.Delivery, 16), done: make(chan struct{}), closed: make(chan struct{})}
}

func (f *wsFakeFeed) C() <-chan []rtstream.Delivery { return f.c }
func (f *wsFakeFeed) CaughtUp() <-chan struct{}     { return nil }
func (f *wsFakeFeed) Done() <-chan struct{}         { return f.done }
func (f *wsFakeFeed) Err() error {
	select {
	case <-f.done:
		return f.err
	default:
		return nil
	}
}
func (f *wsFakeFeed) Close()        { f.closeOne.Do(func() { close(f.closed) }) }
func (f *wsFakeFeed) end(err error) { f.endOnce.Do(func() { f.err = err; close(f.done) }) }
func (f *wsFakeFeed) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

type wsFixture struct {
	srv     *httptest.Server
	api     *Server
	streams *wsFakeStreams
	events  *wsFakeEvents
	feeds   chan *wsFakeFeed
	froms   chan rtstream.From
}

func newWSFixture(t *testing.T, cfg Config, origins ...string) *wsFixture {
	t.Helper()
	f := &wsFixture{streams: &wsFakeStreams{}, events: &wsFakeEvents{}, feeds: make(chan *wsFakeFeed, 8), froms: make(chan rtstream.From, 8)}
	h := NewServer(Deps{
		Config:  cfg,
		Streams: f.streams,
		Events:  f.events,
		Origins: origins,
		Subscribe: func(_ context.Context, _ string, from rtstream.From) (rtstream.Feed, error) {
			feed := newWSFakeFeed()
			f.feeds <- feed
			select { // only TestWebSocketResumeFrom reads these
			case f.froms <- from:
			default:
			}
			return feed, nil
		},
	})
	f.api = h
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return f
}

func (f *wsFixture) url(path string) string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + path
}

// dial opens the socket and returns it with its server-side feed.
func (f *wsFixture) dial(t *testing.T, path string) (*websocket.Conn, *wsFakeFeed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, f.url(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	select {
	case feed := <-f.feeds:
		return c, feed
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription")
		return nil, nil
	}
}

// readJSON reads one frame into a map.
func readJSON(t *testing.T, c *websocket.Conn) map[string]json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("a %v frame, want text", typ)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return m
}

func writeFrame(t *testing.T, c *websocket.Conn, typ websocket.MessageType, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectClose reads until the server closes and returns its close code.
func expectClose(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
		t.Logf("frame before the close: %s", data)
	}
}

// goroutinesSettle waits until the number of goroutines is back to at most
// base, failing with a dump when it is not.
func goroutinesSettle(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWebSocketFrames(t *testing.T) {
	f := newWSFixture(t, Config{MaxBodyBytes: 256, MaxBatch: 3})
	c, feed := f.dial(t, "/v1/streams/s1/ws")

	writeFrame(t, c, websocket.MessageText, `{"temp":1}`)
	if m := readJSON(t, c); string(m["ack"]) != "1" || string(m["event_ids"]) != `["ev1"]` {
		t.Fatalf("ack %v", m)
	}
	writeFrame(t, c, websocket.MessageText, `{"events":[{"temp":2},{"temp":3}]}`)
	if m := readJSON(t, c); string(m["ack"]) != "2" || string(m["event_ids"]) != `["ev2","ev3"]` {
		t.Fatalf("batch ack %v", m)
	}
	bad := []struct {
		typ    websocket.MessageType
		frame  string
		status string
	}{
		{websocket.MessageText, `{"temp":`, "400"},
		{websocket.MessageBinary, `{"temp":1}`, "415"},
		{websocket.MessageText, `{"events":[]}`, "400"},
		{websocket.MessageText, `{"events":[1,2,3,4]}`, "413"},
	}
	for _, b := range bad {
		writeFrame(t, c, b.typ, b.frame)
		m := readJSON(t, c)
		var e wsProblem
		if err := json.Unmarshal(m["error"], &e); err != nil || strings.Contains(string(m["error"]), `"RetryAfter"`) {
			t.Fatalf("%q: frame %v, want an error", b.frame, m)
		}
		if fmt.Sprint(e.Status) != b.status || e.Title == "" || e.Detail == "" || e.Instance != "/v1/streams/s1/ws" || e.Type != "about:blank" {
			t.Fatalf("%q: error %+v, want status %s with title, detail, instance and type", b.frame, e, b.status)
		}
	}
	// Still open, and the events went through in order.
	writeFrame(t, c, websocket.MessageText, `4`)
	if m := readJSON(t, c); string(m["event_ids"]) != `["ev4"]` {
		t.Fatalf("ack after the bad frames %v", m)
	}
	var sent []string
	f.events.mu.Lock()
	for _, batch := range f.events.sent {
		var b []string
		for _, e := range batch {
			b = append(b, string(e))
		}
		sent = append(sent, strings.Join(b, " "))
	}
	f.events.mu.Unlock()
	if got := strings.Join(sent, " | "); got != `{"temp":1} | {"temp":2} {"temp":3} | 4` {
		t.Fatalf("sent %s", got)
	}

	at := time.Now().UTC()
	feed.c <- []rtstream.Delivery{
		{Cursor: rtstream.Cursor{Partition: 1, Offset: 5}, Result: rtstream.Result{StreamID: "s1", EventID: "ev1", ReceivedAt: at, ProcessedAt: at, Data: json.RawMessage(`{"temp":1}`)}},
		{Cursor: rtstream.Cursor{Partition: 1, Offset: 6}, Result: rtstream.Result{StreamID: "s1", EventID: "ev2", ReceivedAt: at, ProcessedAt: at, Data: json.RawMessage(`{"temp":2}`)}},
	}
	for i, want := range []string{`"1-5-0"`, `"1-6-0"`} {
		m := readJSON(t, c)
		if string(m["cursor"]) != want || string(m["event_id"]) != fmt.Sprintf(`"ev%d"`, i+1) {
			t.Fatalf("result %d: %v", i, m)
		}
	}

	// A frame over the read limit: the protocol closes with 1009.
	writeFrame(t, c, websocket.MessageText, `{"pad":"`+strings.Repeat("x", 300)+`"}`)
	if code := expectClose(t, c); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestWebSocketErrors(t *testing.T) {
	f := newWSFixture(t, Config{})
	c, _ := f.dial(t, "/v1/streams/s1/ws")
	f.events.mu.Lock()
	f.events.err = fmt.Errorf("publish: %w", rtstream.ErrUnavailable)
	f.events.mu.Unlock()
	writeFrame(t, c, websocket.MessageText, `1`)
	var e wsProblem
	if err := json.Unmarshal(readJSON(t, c)["error"], &e); err != nil || e.Status != 503 || e.RetryAfter != 1 {
		t.Fatalf("error %+v (%v), want 503 with retry_after 1", e, err)
	}
	f.streams.mu.Lock()
	f.streams.deleted = true
	f.streams.mu.Unlock()
	writeFrame(t, c, websocket.MessageText, `1`)
	if err := json.Unmarshal(readJSON(t, c)["error"], &e); err != nil || e.Status != 404 {
		t.Fatalf("error %+v (%v), want 404", e, err)
	}
}

func TestWebSocketEnds(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantEnd  bool
		wantCode websocket.StatusCode
	}{
		{"deleted", fmt.Errorf("fanout: stream deleted: %w", rtstream.ErrNotFound), true, websocket.StatusNormalClosure},
		{"too slow", fmt.Errorf("fanout: %w", rtstream.ErrTooSlow), false, websocket.StatusTryAgainLater},
		{"replay failed", fmt.Errorf("replay: %w", rtstream.ErrUnavailable), false, websocket.StatusTryAgainLater},
		{"shutdown", errors.New("fanout: hub closed"), false, websocket.StatusGoingAway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWSFixture(t, Config{})
			c, feed := f.dial(t, "/v1/streams/s1/ws")
			at := time.Now()
			// A result made before the end still arrives.
			feed.c <- []rtstream.Delivery{{Cursor: rtstream.Cursor{Offset: 1}, Result: rtstream.Result{StreamID: "s1", EventID: "e", ReceivedAt: at, ProcessedAt: at, Data: json.RawMessage(`1`)}}}
			if tt.wantEnd {
				feed.end(tt.err)
				if m := readJSON(t, c); string(m["cursor"]) != `"0-1-0"` {
					t.Fatalf("frame %v, want the result", m)
				}
				if m := readJSON(t, c); string(m["end"]) != `{"reason":"stream deleted"}` {
					t.Fatalf("frame %v, want the end frame", m)
				}
			} else {
				readJSON(t, c)
				feed.end(tt.err)
			}
			if code := expectClose(t, c); code != tt.wantCode {
				t.Fatalf("close code %d, want %d", code, tt.wantCode)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !feed.isClosed() {
				if time.Now().After(deadline) {
					t.Fatal("the handler did not close its feed")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestWebSocketBeforeUpgrade(t *testing.T) {
	f := newWSFixture(t, Config{}, "https://app.example")
	get := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range upgrade {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		want int
	}{
		{"not an upgrade", "/v1/streams/s1/ws", nil, http.StatusUpgradeRequired},
		{"other origin", "/v1/streams/s1/ws", with("Origin", "https://evil.example"), http.StatusForbidden},
		{"bad cursor", "/v1/streams/s1/ws?last_event_id=nope", upgrade, http.StatusBadRequest},
		{"unknown stream", "/v1/streams/nope/ws", upgrade, http.StatusNotFound},
		{"listed origin", "/v1/streams/s1/ws", with("Origin", "https://app.example"), http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(tt.path, tt.hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("Content-Type %q, want a problem", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestWebSocketResumeFrom(t *testing.T) {
	f := newWSFixture(t, Config{})
	f.dial(t, "/v1/streams/s1/ws?last_event_id=3-9-1")
	if from := <-f.froms; from.After == nil || *from.After != (rtstream.Cursor{Partition: 3, Offset: 9, Index: 1}) {
		t.Fatalf("from %+v, want after 3-9-1", from)
	}
	f.dial(t, "/v1/streams/s1/ws?from=earliest")
	if from := <-f.froms; !from.Earliest {
		t.Fatalf("from %+v, want earliest", from)
	}
}

// TestWebSocketKeepalive: a client that never reads answers no ping, and
// the server closes it; the handler's goroutines all end.
func TestWebSocketKeepalive(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: 50 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	base := runtime.NumGoroutine()
	c, feed := f.dial(t, "/v1/streams/s1/ws")
	deadline := time.Now().Add(5 * time.Second)
	for !feed.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the server kept a client that answers no ping")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.CloseNow()
	goroutinesSettle(t, base)
}

// TestWebSocketNoLeak opens and closes sockets every way they end and checks
// that no goroutine is left behind.
func TestWebSocketNoLeak(t *testing.T) {
	f := newWSFixture(t, Config{MaxBodyBytes: 64})
	// Warm up the client's and server's pools before counting.
	c, _ := f.dial(t, "/v1/streams/s1/ws")
	_ = c.Close(websocket.StatusNormalClosure, "")
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()

	for i := 0; i < 5; i++ {
		c, _ := f.dial(t, "/v1/streams/s1/ws") // client closes
		writeFrame(t, c, websocket.MessageText, `1`)
		readJSON(t, c)
		_ = c.Close(websocket.StatusNormalClosure, "bye")

		c, feed := f.dial(t, "/v1/streams/s1/ws") // stream deleted
		feed.end(rtstream.ErrNotFound)
		expectClose(t, c)

		c, _ = f.dial(t, "/v1/streams/s1/ws") // frame too big
		writeFrame(t, c, websocket.MessageText, strings.Repeat("1", 100))
		expectClose(t, c)

		c, _ = f.dial(t, "/v1/streams/s1/ws") // client vanishes
		_ = c.CloseNow()
	}
	goroutinesSettle(t, base)
}

// TestWebSocketSlowWriter: a client that stops reading while results keep
// coming is cut once a write takes longer than the write timeout.
func TestWebSocketSlowWriter(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: time.Hour, WriteTimeout: 100 * time.Millisecond})
	_, feed := f.dial(t, "/v1/streams/s1/ws")
	big := json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)
	at := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for !feed.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the server kept writing to a client that does not read")
		}
		select {
		case feed.c <- []rtstream.Delivery{{Result: rtstream.Result{StreamID: "s1", ReceivedAt: at, ProcessedAt: at, Data: big}}}:
		case <-time.After(10 * time.Millisecond):
		}
	}
}
