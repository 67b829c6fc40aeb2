package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSSEParsing(t *testing.T) {
	res := func(id, data string) sseFrame { return sseFrame{Event: "result", ID: id, Data: data} }
	comment := func(s string) sseFrame { return sseFrame{IsComment: true, Comment: s} }
	tests := []struct {
		name  string
		in    string
		want  []sseFrame
		retry time.Duration
	}{
		{name: "the server's frames", in: ": connected\n\nid: 0-1-0\nevent: result\ndata: {\"a\":1}\n\n: ping\n\n",
			want: []sseFrame{comment("connected"), res("0-1-0", `{"a":1}`), comment("ping")}},
		{name: "CRLF line ends", in: "id: 1\r\nevent: result\r\ndata: x\r\n\r\n", want: []sseFrame{res("1", "x")}},
		{name: "CR line ends", in: "id: 1\revent: result\rdata: x\r\r", want: []sseFrame{res("1", "x")}},
		{name: "no space after the colon; only one space dropped", in: "id:7\nevent:result\ndata:  two\n\n", want: []sseFrame{res("7", " two")}},
		{name: "data lines joined by LF", in: "event: result\ndata: a\ndata\ndata: b\n\n", want: []sseFrame{res("", "a\n\nb")}},
		{name: "default type is message", in: "data: hi\n\n", want: []sseFrame{{Event: "message", Data: "hi"}}},
		{name: "an event without data is not dispatched, and its type does not carry over", in: "event: result\nid: 5\n\ndata: x\n\n",
			want: []sseFrame{{Event: "message", Data: "x", ID: "5"}}},
		{name: "the last id carries over", in: "id: 3\nevent: result\ndata: a\n\nevent: result\ndata: b\n\n", want: []sseFrame{res("3", "a"), res("3", "b")}},
		{name: "an id with NUL is ignored", in: "id: 3\nevent: result\ndata: a\n\nid: 4\x005\nevent: result\ndata: b\n\n", want: []sseFrame{res("3", "a"), res("3", "b")}},
		{name: "an empty id resets it", in: "id: 3\nevent: result\ndata: a\n\nid\nevent: result\ndata: b\n\n", want: []sseFrame{res("3", "a"), res("", "b")}},
		{name: "leading BOM", in: "\uFEFF: connected\n\n", want: []sseFrame{comment("connected")}},
		{name: "unknown fields ignored", in: "foo: bar\nevent: end\ndata: {\"reason\":\"stream deleted\"}\n\n", want: []sseFrame{{Event: "end", Data: `{"reason":"stream deleted"}`}}},
		{name: "retry field", in: "retry: 1500\n\nretry: 1x\n\n", retry: 1500 * time.Millisecond},
		{name: "a partial event at the end is dropped", in: "id: 1\nevent: result\ndata: x\n\nid: 2\nevent: result\ndata: y", want: []sseFrame{res("1", "x")}},
		{name: "a partial event ending in CR is dropped", in: "event: result\ndata: y\r", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time too, so that a line end split over reads
			// (CR | LF) is seen.
			for _, reader := range []io.Reader{strings.NewReader(tc.in), &oneByteReader{s: tc.in}} {
				r := newSSEReader(reader)
				var got []sseFrame
				for {
					f, err := r.next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, f)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%T: got %+v\nwant %+v", reader, got, tc.want)
				}
				if r.retry != tc.retry {
					t.Errorf("retry %s, want %s", r.retry, tc.retry)
				}
			}
		})
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

// sseScript is a test server whose n-th results connection runs conns[n];
// it records each connection's Last-Event-ID and query.
type sseScript struct {
	t     *testing.T
	mu    sync.Mutex
	conns []func(w http.ResponseWriter, r *http.Request)
	reqs  []string // "Last-Event-ID|query"
	done  []chan struct{}
}

func (s *sseScript) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("X-API-Key") != "k" {
		s.t.Errorf("request headers %v", r.Header)
	}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r.Header.Get("Last-Event-ID")+"|"+r.URL.RawQuery)
	var h func(http.ResponseWriter, *http.Request)
	if n < len(s.conns) {
		h = s.conns[n]
	}
	done := make(chan struct{})
	s.done = append(s.done, done)
	s.mu.Unlock()
	defer close(done)
	if h == nil {
		s.t.Errorf("connection %d was not expected", n)
		writeProblem(w, 400, "", "")
		return
	}
	h(w, r)
}

func (s *sseScript) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// stream starts an event stream and writes frames, flushing each.
func stream(frames ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, ": connected\n\n")
		w.(http.Flusher).Flush()
		for _, f := range frames {
			switch f {
			case "CUT":
				panic(http.ErrAbortHandler)
			case "HANG":
				<-r.Context().Done()
				return
			}
			io.WriteString(w, f)
			w.(http.Flusher).Flush()
		}
	}
}

func result(cursor string, n int) string {
	return fmt.Sprintf("id: %s\nevent: result\ndata: {\"stream_id\":\"s\",\"event_id\":\"e%d\",\"received_at\":\"2026-01-01T00:00:00Z\",\"processed_at\":\"2026-01-01T00:00:01Z\",\"data\":{\"n\":%d}}\n\n", cursor, n, n)
}

const endFrame = "event: end\ndata: {\"reason\":\"stream deleted\"}\n\n"

func problemConn(code int, retryAfter string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { writeProblem(w, code, retryAfter, "") }
}

// collect ranges over a subscription, returning the results and the final
// error.
func collect(t *testing.T, seq func(func(Result, error) bool)) ([]Result, error) {
	t.Helper()
	var got []Result
	var final error
	n := 0
	seq(func(r Result, err error) bool {
		if final != nil {
			t.Fatal("yield called after an error")
		}
		if err != nil {
			final = err
			return true
		}
		got = append(got, r)
		n++
		return true
	})
	return got, final
}

func eventIDs(rs []Result) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.EventID+"@"+r.Cursor)
	}
	return ids
}

func fastSub(o SubscribeOptions) SubscribeOptions {
	o.InitialBackoff, o.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	return o
}

// TestSubscribeReconnectsAndResumes: the connection is cut, ends cleanly,
// and is refused with a 500 and a 429; every reconnect resumes after the
// last result delivered, and the stream's end ends the subscription.
func TestSubscribeReconnectsAndResumes(t *testing.T) {
	script := &sseScript{t: t, conns: []func(http.ResponseWriter, *http.Request){
		stream(result("0-1-0", 1), ": ping\n\n", result("0-1-1", 2), "CUT"),
		stream(result("0-2-0", 3)), // ends without "end": a server restart
		problemConn(500, ""),
		problemConn(429, "1"),
		stream(": ping\n\n", result("0-3-0", 4), endFrame),
	}}
	c := newTestClient(t, script)
	var reasons []string
	var waits []time.Duration
	o := fastSub(SubscribeOptions{Earliest: true, OnReconnect: func(err error, wait time.Duration) {
		reasons = append(reasons, err.Error())
		waits = append(waits, wait)
	}})
	start := time.Now()
	got, err := collect(t, c.Subscribe(context.Background(), "s", o))
	if !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("final error %v, want ErrStreamDeleted", err)
	}
	want := []string{"e1@0-1-0", "e2@0-1-1", "e3@0-2-0", "e4@0-3-0"}
	if !reflect.DeepEqual(eventIDs(got), want) {
		t.Errorf("results %v, want %v", eventIDs(got), want)
	}
	if got[0].StreamID != "s" || string(got[0].Data) != `{"n":1}` || got[0].ReceivedAt.IsZero() || !got[0].ProcessedAt.After(got[0].ReceivedAt) {
		t.Errorf("first result %+v", got[0])
	}
	wantReqs := []string{"|from=earliest", "0-1-1|", "0-2-0|", "0-2-0|", "0-2-0|"}
	if reqs := script.requests(); !reflect.DeepEqual(reqs, wantReqs) {
		t.Errorf("requests (Last-Event-ID|query) %q, want %q", reqs, wantReqs)
	}
	if len(reasons) != 4 {
		t.Fatalf("OnReconnect called %d times: %q", len(reasons), reasons)
	}
	if waits[3] < time.Second {
		t.Errorf("after a 429 with Retry-After 1 it waited %s", waits[3])
	}
	if time.Since(start) < time.Second {
		t.Errorf("the subscription did not honour Retry-After")
	}
}

// TestSubscribeEarliestUntilFirstResult: a subscription from the earliest
// result that is cut before its first result starts from the earliest
// again, not live.
func TestSubscribeEarliestUntilFirstResult(t *testing.T) {
	script := &sseScript{t: t, conns: []func(http.ResponseWriter, *http.Request){
		stream("CUT"),
		stream(result("1-0-0", 1), endFrame),
	}}
	c := newTestClient(t, script)
	_, err := collect(t, c.Subscribe(context.Background(), "s", fastSub(SubscribeOptions{Earliest: true})))
	if !errors.Is(err, ErrStreamDeleted) {
		t.Fatal(err)
	}
	if reqs := script.requests(); !reflect.DeepEqual(reqs, []string{"|from=earliest", "|from=earliest"}) {
		t.Errorf("requests %q", reqs)
	}
}

func TestSubscribeFinalErrors(t *testing.T) {
	tests := []struct {
		name      string
		conns     []func(http.ResponseWriter, *http.Request)
		opts      SubscribeOptions
		check     func(error) bool
		wantConns int
	}{
		{name: "unknown stream at the first connection", conns: []func(http.ResponseWriter, *http.Request){problemConn(404, "")},
			check: func(err error) bool { return IsNotFound(err) && !errors.Is(err, ErrStreamDeleted) }, wantConns: 1},
		{name: "deleted while disconnected", conns: []func(http.ResponseWriter, *http.Request){stream(result("0-1-0", 1), "CUT"), problemConn(404, "")},
			check: func(err error) bool { return IsNotFound(err) && errors.Is(err, ErrStreamDeleted) }, wantConns: 2},
		{name: "unauthorized", conns: []func(http.ResponseWriter, *http.Request){problemConn(401, "")},
			check: func(err error) bool { return StatusCode(err) == 401 }, wantConns: 1},
		{name: "bad cursor", opts: SubscribeOptions{After: "nope"}, conns: []func(http.ResponseWriter, *http.Request){problemConn(400, "")},
			check: func(err error) bool { return StatusCode(err) == 400 }, wantConns: 1},
		{name: "not an event stream", conns: []func(http.ResponseWriter, *http.Request){func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>")
		}}, check: func(err error) bool { return err != nil && strings.Contains(err.Error(), "not text/event-stream") }, wantConns: 1},
		{name: "MaxReconnects", opts: SubscribeOptions{MaxReconnects: 2},
			conns: []func(http.ResponseWriter, *http.Request){problemConn(502, ""), problemConn(502, ""), problemConn(502, "")},
			check: func(err error) bool { return StatusCode(err) == 502 && strings.Contains(err.Error(), "gave up") }, wantConns: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script := &sseScript{t: t, conns: tc.conns}
			c := newTestClient(t, script)
			_, err := collect(t, c.Subscribe(context.Background(), "s", fastSub(tc.opts)))
			if !tc.check(err) {
				t.Errorf("final error %v", err)
			}
			if n := len(script.requests()); n != tc.wantConns {
				t.Errorf("%d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// TestSubscribeIdleTimeout: a connection on which nothing arrives, not even
// a ping, is given up and resumed.
func TestSubscribeIdleTimeout(t *testing.T) {
	script := &sseScript{t: t, conns: []func(http.ResponseWriter, *http.Request){
		stream(result("0-1-0", 1), "HANG"),
		stream(result("0-1-1", 2), endFrame),
	}}
	c := newTestClient(t, script)
	var reasons []error
	o := fastSub(SubscribeOptions{IdleTimeout: time.Second, OnReconnect: func(err error, _ time.Duration) { reasons = append(reasons, err) }})
	got, err := collect(t, c.Subscribe(context.Background(), "s", o))
	if !errors.Is(err, ErrStreamDeleted) || len(got) != 2 {
		t.Fatalf("%d results, err %v", len(got), err)
	}
	if len(reasons) != 1 || !errors.Is(reasons[0], errIdle) {
		t.Errorf("reconnect reasons %v, want the idle timeout", reasons)
	}
	if reqs := script.requests(); reqs[1] != "0-1-0|" {
		t.Errorf("requests %q", reqs)
	}
}

// TestSubscribeStopsCleanly: breaking out of the loop and canceling the
// context both close the connection at once and leave no goroutine behind.
func TestSubscribeStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	endless := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := io.WriteString(w, result(fmt.Sprintf("0-%d-0", i), i)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}
	script := &sseScript{t: t, conns: []func(http.ResponseWriter, *http.Request){endless, endless}}
	c := newTestClient(t, script)

	n := 0
	for _, err := range c.Subscribe(context.Background(), "s", SubscribeOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	waitClosed(t, script, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var final error
	n = 0
	for _, err := range c.Subscribe(ctx, "s", SubscribeOptions{}) {
		if err != nil {
			final = err
			continue
		}
		if n++; n == 3 {
			cancel()
		}
	}
	if !errors.Is(final, context.Canceled) {
		t.Errorf("after cancel the sequence ended with %v, want context.Canceled", final)
	}
	waitClosed(t, script, 1)

	c.hc.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 { // the test server's listener may linger
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits until the server saw connection i end.
func waitClosed(t *testing.T, s *sseScript, i int) {
	t.Helper()
	s.mu.Lock()
	done := s.done[i]
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("connection %d is still open on the server", i)
	}
}
