package handlers

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream"
)

// openSSE opens the results of s1 on srv and reads the ": connected"
// comment; it returns the response and its reader.
func openSSE(t *testing.T, ctx context.Context, srv *httptest.Server) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/streams/s1/results", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if frame, err := br.ReadString('\n'); err != nil || frame != ": connected\n" {
		t.Fatalf("first line %q, %v", frame, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
		t.Fatalf("second line %q, %v", blank, err)
	}
	return resp, br
}

// nextFeed is the server side of the subscription just opened.
func (f *wsFixture) nextFeed(t *testing.T, ctx context.Context) *wsFakeFeed {
	t.Helper()
	select {
	case feed := <-f.feeds:
		return feed
	case <-ctx.Done():
		t.Fatal("no subscription")
		return nil
	}
}

// readData reads up to the next "data: " line and returns its payload.
func readData(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			return strings.TrimSuffix(d, "\n")
		}
	}
}

// TestSSETakenOver: on HTTP/1.1 the server serves the stream on a
// connection it took over from net/http. The answer still carries the
// middleware's header and SSE's own, delimits its body by closing the
// connection, and delivers; a client that leaves is let go (its
// subscription closed) at the next heartbeat, although nothing reads the
// connection any more.
func TestSSETakenOver(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, br := openSSE(t, ctx, f.srv)
	feed := f.nextFeed(t, ctx)
	for name, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
		"X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.ProtoMajor != 1 || !resp.Close || resp.ContentLength != -1 {
		t.Errorf("request id %q, HTTP/%d, close %v, length %d: want an id, HTTP/1, a body ended by close",
			resp.Header.Get("X-Request-Id"), resp.ProtoMajor, resp.Close, resp.ContentLength)
	}
	feed.c <- []rtstream.Delivery{{Cursor: rtstream.Cursor{Offset: 7}, Result: rtstream.Result{StreamID: "s1", EventID: "e7", Data: []byte(`{"n":7}`)}}}
	if d := readData(t, br); !strings.Contains(d, `"event_id":"e7"`) {
		t.Fatalf("data %s", d)
	}
	resp.Body.Close()
	select {
	case <-feed.closed:
	case <-ctx.Done():
		t.Fatal("the subscription of a client that left was never closed")
	}
}

// TestSSEServerCloseEndsTakenOverStreams: http.Server.Shutdown does not see
// taken-over connections; Server.Close ends them, with a "retry:" hint
// for EventSource to come back (elsewhere), and waits for them.
func TestSSEServerCloseEndsTakenOverStreams(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, br := openSSE(t, ctx, f.srv)
	feed := f.nextFeed(t, ctx)
	if err := f.api.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-feed.closed:
	default:
		t.Fatal("Close returned before the stream released its subscription")
	}
	rest, err := io.ReadAll(br)
	ms, ok := strings.CutPrefix(string(rest), "retry: ")
	if n, aerr := strconv.Atoi(strings.TrimSuffix(ms, "\n\n")); err != nil || !ok || aerr != nil || n < 1000 || n > 3000 {
		t.Fatalf("after Close the client read %q, %v; want a retry of 1–3 s, then the end", rest, err)
	}
}

// TestSSEOverHTTP2: where the connection cannot be taken over (HTTP/2),
// the request's goroutine serves the stream through the ResponseWriter.
func TestSSEOverHTTP2(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: time.Hour})
	h2 := httptest.NewUnstartedServer(f.api)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, br := openSSE(t, ctx, h2)
	feed := f.nextFeed(t, ctx)
	if resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP/%d, %q", resp.ProtoMajor, resp.Header.Get("Content-Type"))
	}
	feed.c <- []rtstream.Delivery{{Cursor: rtstream.Cursor{Offset: 1}, Result: rtstream.Result{StreamID: "s1", EventID: "e1", Data: []byte(`1`)}}}
	if d := readData(t, br); !strings.Contains(d, `"event_id":"e1"`) {
		t.Fatalf("data %s", d)
	}
	feed.end(rtstream.ErrNotFound)
	if d := readData(t, br); d != `{"reason":"stream deleted"}` {
		t.Fatalf("end data %s", d)
	}
}

// TestDrain: once drained, /readyz answers 503 while the server still
// serves; Close then ends WebSockets with 1001 (going away).
func TestDrain(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ready := func() int {
		resp, err := f.srv.Client().Get(f.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != http.StatusOK {
		t.Fatalf("/readyz %d before Drain", got)
	}
	ws, _ := f.dial(t, "/v1/streams/s1/ws")
	f.api.Drain()
	if got := ready(); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d after Drain, want 503", got)
	}
	if err := f.api.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("WebSocket ended with %v (%v), want 1001", got, err)
	}
}

// TestStreamsOpenedAfterClose: a result stream that reaches the server once
// Close began is not handed over to a goroutine Close no longer waits for:
// SSE gets "retry:" and the end at once, a WebSocket 1001.
func TestStreamsOpenedAfterClose(t *testing.T) {
	f := newWSFixture(t, Config{Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.api.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, br := openSSE(t, ctx, f.srv)
	feed := f.nextFeed(t, ctx)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.HasPrefix(string(rest), "retry: ") {
		t.Fatalf("SSE after Close read %q, %v; want a retry and the end", rest, err)
	}
	// The handler closes the feed as it returns, which may be just after
	// the client read the end.
	select {
	case <-feed.closed:
	case <-time.After(5 * time.Second):
		t.Error("the subscription of a stream refused at Close was not closed")
	}
	ws, _ := f.dial(t, "/v1/streams/s1/ws")
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("WebSocket after Close: %v, want 1001", err)
	}
}
