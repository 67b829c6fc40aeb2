package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/record"
)

// serveSSE serves a stream's results as server-sent events.
//
// On HTTP/1.1 the connection is taken over from net/http and served by a
// goroutine of the server's own, and the request's goroutine returns: an
// idle subscriber then costs one small goroutine and no net/http buffers
// (issue 13: its request goroutine's deep stack, its background reader and
// its 10 KiB of read and write buffers were most of an idle connection's
// memory). Where the connection cannot be taken (HTTP/2), the request's
// goroutine serves it through the ResponseWriter.
func (s *server) serveSSE(w http.ResponseWriter, r *http.Request, id string, from rtstream.From) {
	feed, closeFeed, ok := s.openFeed(w, r, id, from, true)
	if !ok {
		return
	}
	st := &sseStream{s: s, id: id, log: observability.Logger(r.Context(), s.log), feed: feed, closeFeed: closeFeed}
	conn, err := s.takeOver(w, r)
	switch {
	case err == nil:
		// The stream outlives the request: it is held on the server's
		// life, no longer on the request's context.
		st.held, st.release = middleware.Hold(r.Context(), s.life)
		st.sink = connSink{conn}
		leave, ok := s.enter()
		if !ok {
			st.serve() // the server is closing: at once "retry:" and the end
			return
		}
		go func() {
			defer leave()
			st.serve()
		}()
	case errors.Is(err, http.ErrNotSupported):
		st.held, st.release = middleware.Hold(r.Context(), r.Context())
		h := w.Header()
		for k, v := range sseHeader {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
		st.sink = rcSink{w: w, rc: http.NewResponseController(w)}
		st.serve()
	default:
		st.log.Info("results stream not opened", "stream_id", id, "err", err)
		closeFeed()
	}
}

// sseHeader is the header of every SSE answer; X-Accel-Buffering keeps nginx
// from holding results back.
var sseHeader = http.Header{
	"Content-Type":      {"text/event-stream"},
	"Cache-Control":     {"no-cache"},
	"X-Accel-Buffering": {"no"},
}

// takeOver takes r's TCP connection from net/http and writes the head of the
// SSE answer on it: the header the middleware set (request id, CORS,
// security headers) plus sseHeader, and Connection: close, since the body
// ends when the connection does. http.ErrNotSupported: the connection cannot
// be taken, and nothing was written.
func (s *server) takeOver(w http.ResponseWriter, r *http.Request) (net.Conn, error) {
	if r.ProtoMajor != 1 {
		return nil, http.ErrNotSupported
	}
	h := w.Header().Clone()
	for k, v := range sseHeader {
		h[k] = v
	}
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	// The request's buffered reader and writer are left behind: an SSE
	// client sends nothing after its request, and frames are written
	// through a pooled buffer.
	bw := bufio.NewWriterSize(conn, 1<<10)
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write the head: %w", err)
	}
	return conn, nil
}

// sseStream is one SSE subscriber from its answer's head to its end.
type sseStream struct {
	s         *server
	id        string
	log       *slog.Logger
	feed      rtstream.Feed
	closeFeed func()
	// held ends the stream: the server closing, or a reload removing the
	// key the stream rides on (cause middleware.ErrRevoked).
	held    context.Context
	release func()
	sink    sseSink
}

// serve writes the stream until it ends, then releases what it held and
// logs why it ended. A panic in a taken-over stream ends that stream only.
func (st *sseStream) serve() {
	opened := time.Now()
	sw := &sseWriter{s: st.s, sink: st.sink}
	defer func() {
		if _, ok := st.sink.(connSink); ok {
			if v := recover(); v != nil {
				st.log.Error("panic in results stream", "stream_id", st.id, "panic", v)
				sw.cut = "internal error"
			}
		}
		st.sink.close()
		st.release()
		st.closeFeed()
		st.log.Info("results stream closed", "stream_id", st.id, "duration", time.Since(opened),
			"delivered", sw.delivered, "reason", st.reason(sw))
	}()
	defer st.s.Metrics.Subscribed("sse")()
	st.log.Info("results stream open", "stream_id", st.id)
	sw.run(st.held, st.feed)
}

// reason says why the stream ended, for the log.
func (st *sseStream) reason(sw *sseWriter) string {
	switch cause := context.Cause(st.held); {
	case sw.cut != "":
		return sw.cut
	case st.feed.Err() != nil:
		return st.feed.Err().Error()
	case errors.Is(cause, middleware.ErrRevoked):
		return cause.Error()
	case st.held.Err() != nil && st.s.life.Err() != nil:
		return "server closing"
	}
	return "client gone"
}

// sseSink is where an SSE answer's bytes go.
type sseSink interface {
	Write(p []byte) (int, error)
	// SetWriteDeadline bounds the writes that follow.
	SetWriteDeadline(t time.Time) error
	// Flush sends what the sink itself buffers.
	Flush() error
	// alive is false when the client is known to be gone.
	alive() bool
	// abort cuts the connection at once, without a proper end.
	abort()
	// close ends the answer.
	close()
}

// connSink is a connection taken over from net/http.
type connSink struct{ net.Conn }

func (connSink) Flush() error { return nil }

func (c connSink) alive() bool { return !peerClosed(c.Conn) }

// abort resets a TCP connection, which frees its kernel buffers at once.
func (c connSink) abort() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (c connSink) close() { _ = c.Close() }

// rcSink is a ResponseWriter (HTTP/2): net/http owns the connection.
type rcSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s rcSink) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s rcSink) SetWriteDeadline(t time.Time) error {
	if err := s.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (s rcSink) Flush() error { return s.rc.Flush() }

// alive: net/http's own reader ends the request when the client goes.
func (rcSink) alive() bool { return true }

// abort panics the server's own way to abort a response.
func (rcSink) abort() { panic(http.ErrAbortHandler) }

func (rcSink) close() {}

// sseWriter writes one SSE answer: one event per result, its id the result's
// cursor, a ": ping" comment every heartbeat, and "event: end" when the
// stream is deleted.
type sseWriter struct {
	s         *server
	sink      sseSink
	buf       *sseBuffer // taken for a burst of writes, nil while idle
	delivered int
	cut       string                   // why the server cut the stream, if it did
	traced    []rtstream.DeliveryTrace // traces of the burst being written
}

// sseBuffer is an SSE connection's write buffer and frame scratch. It is
// taken from the server's pool for a burst of writes and given back after
// the burst's flush, so an idle subscriber holds none: most of thousands of
// subscribers are idle at any moment (issue 13, memory per connection).
type sseBuffer struct {
	bw    *bufio.Writer
	frame []byte
}

// newSSEBuffer is the pool's constructor: 4 KiB is what one flush usually
// carries.
func newSSEBuffer() any { return &sseBuffer{bw: bufio.NewWriterSize(nil, 4<<10)} }

// out is the buffered writer of the current burst, taking a buffer first
// when the connection holds none.
func (sw *sseWriter) out() *bufio.Writer {
	if sw.buf == nil {
		sw.buf = sw.s.sseBuffers.Get().(*sseBuffer)
		sw.buf.bw.Reset(sw.sink)
	}
	return sw.buf.bw
}

func (sw *sseWriter) run(ctx context.Context, feed rtstream.Feed) {
	if !sw.write(func() error { _, err := sw.out().WriteString(": connected\n\n"); return err }) {
		return
	}
	heartbeat := time.NewTicker(sw.s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			if sw.s.life.Err() != nil {
				sw.reconnect()
			}
			return
		case <-sw.s.life.Done(): // the request's own ctx (HTTP/2) does not see it
			sw.reconnect()
			return
		case <-heartbeat.C:
			// Nothing reads a taken-over connection, so a client that
			// left is found here, before a write that would succeed
			// into a closed socket.
			if !sw.sink.alive() || !sw.write(func() error { _, err := sw.out().WriteString(": ping\n\n"); return err }) {
				return
			}
		case <-feed.Done():
			sw.end(feed.Err())
			return
		case ds := <-feed.C():
			if !sw.deliverGated(ctx, feed, ds) {
				return
			}
		}
	}
}

// deliverGated is deliver holding a replay slot while the feed replays; a
// cut connection (a panic) gives the slot back too.
func (sw *sseWriter) deliverGated(ctx context.Context, feed rtstream.Feed, ds []rtstream.Delivery) bool {
	release, ok := sw.s.replaySlot(ctx, feed)
	if !ok {
		return false
	}
	defer release()
	return sw.deliver(feed, ds)
}

// arm sets the deadline of the writes that follow, so that a client that
// stopped reading cannot pin this goroutine. It is armed before every burst
// of writes, not only before a flush: the buffer writes through by itself
// when a frame does not fit, and a deadline left over from a flush long ago
// would cut a healthy client that was merely idle.
func (sw *sseWriter) arm() error {
	return sw.sink.SetWriteDeadline(time.Now().Add(sw.s.cfg.WriteTimeout))
}

// flush sends the burst and gives its buffer back (a failed one is left to
// the garbage collector with the connection).
func (sw *sseWriter) flush() error {
	if err := sw.out().Flush(); err != nil {
		return err
	}
	if err := sw.sink.Flush(); err != nil {
		return err
	}
	sw.buf.bw.Reset(nil)
	if cap(sw.buf.frame) > 64<<10 {
		sw.buf.frame = nil // a huge result's scratch does not stay pooled
	}
	sw.s.sseBuffers.Put(sw.buf)
	sw.buf = nil
	return nil
}

// write arms, writes with fn and flushes; false ends the stream.
func (sw *sseWriter) write(fn func() error) bool {
	if sw.arm() != nil {
		return false
	}
	if err := fn(); err != nil {
		sw.failed(err)
		return false
	}
	if err := sw.flush(); err != nil {
		sw.failed(err)
		return false
	}
	return true
}

// failed handles a failed write: a timeout means the client stopped reading,
// and its connection is cut (any write can be the one that blocks, not only a
// flush: the buffer flushes itself when full).
func (sw *sseWriter) failed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		sw.s.Metrics.SlowDisconnect()
		sw.cut = "write timeout: client not reading"
		sw.sink.abort()
	}
}

// deliver writes ds and whatever else is pending now, then flushes once.
func (sw *sseWriter) deliver(feed rtstream.Feed, ds []rtstream.Delivery) bool {
	now := time.Now()
	for more := true; more; {
		if sw.arm() != nil {
			return false
		}
		for i := range ds {
			bw := sw.out()
			var err error
			if sw.buf.frame, err = writeResult(bw, sw.buf.frame, &ds[i]); err != nil {
				sw.failed(err)
				return false
			}
			sw.s.Metrics.Delivered(now, ds[i].Result.ReceivedAt, traceID(&ds[i]))
			sw.traced = addTrace(sw.traced, ds[i].Trace)
		}
		sw.delivered += len(ds)
		select {
		case ds = <-feed.C():
		default:
			more = false
		}
	}
	if err := sw.flush(); err != nil {
		sw.failed(err)
		return false
	}
	sw.traced = markWritten(sw.traced, "sse", now)
	return true
}

// end closes the answer for the feed's end: "event: end" for a deleted
// stream; a cut connection for a subscriber too slow, which must not mistake
// it for the stream's end (and whose kernel buffers are freed at once).
func (sw *sseWriter) end(err error) {
	switch {
	case errors.Is(err, rtstream.ErrNotFound):
		sw.write(func() error {
			_, err := sw.out().WriteString("event: end\ndata: {\"reason\":\"stream deleted\"}\n\n")
			return err
		})
	case errors.Is(err, rtstream.ErrTooSlow):
		sw.sink.abort()
	default: // the server is closing, or results are unavailable here
		sw.reconnect()
	}
}

// reconnect tells the client to come back, by the "retry:" field, before
// the connection closes: EventSource reconnects after that many ms with
// Last-Event-ID, through the load balancer to an instance still serving.
// The delay is spread over 1–3 s, so that thousands of clients of an
// instance that stops do not all arrive at once at the others.
func (sw *sseWriter) reconnect() {
	ms := 1000 + rand.IntN(2000)
	sw.write(func() error {
		bw := sw.out()
		_, _ = bw.WriteString("retry: ")
		_, _ = bw.WriteString(strconv.Itoa(ms))
		_, err := bw.WriteString("\n\n")
		return err
	})
}

// writeResult writes one SSE event. The cursor is digits and dashes, and the
// data is one line of JSON (control characters escaped, event data compacted
// on the way in), so neither can carry a line break into the frame.
func writeResult(bw *bufio.Writer, buf []byte, d *rtstream.Delivery) ([]byte, error) {
	buf = append(buf[:0], "id: "...)
	buf = append(buf, d.Cursor.String()...)
	buf = append(buf, "\nevent: result\ndata: "...)
	buf = record.AppendResult(buf, &d.Result)
	buf = append(buf, "\n\n"...)
	_, err := bw.Write(buf)
	return buf, err
}
