package handlers

import (
	"bufio"
	"context"
	"errors"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/problem"
	"github.com/rtstream/rtstream/record"
)

// wantsEventStream reports whether the Accept header asks for SSE.
func wantsEventStream(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// results serves a stream's results: as server-sent events when the client
// accepts them, else as a JSON page (poll).
func (s *server) results(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	stream := wantsEventStream(r.Header.Get("Accept"))
	rq, perr := readResultsQuery(r, stream)
	if perr != nil {
		s.badParam(w, r, perr)
		return
	}
	if !stream {
		s.poll(w, r, id, rq)
		return
	}
	feed, closeFeed, ok := s.openFeed(w, r, id, rq.streamFrom(), true)
	if !ok {
		return
	}
	defer closeFeed()
	defer s.Metrics.Subscribed("sse")()
	log := observability.Logger(r.Context(), s.log)
	opened := time.Now()
	log.Info("results stream open", "stream_id", id)
	sse := &sseWriter{s: s, w: w, rc: http.NewResponseController(w)}
	// Held ends when the request does, or when a reload removes the key
	// the request rides on.
	held := middleware.Held(r.Context())
	defer func() {
		reason := "client gone"
		if err := feed.Err(); err != nil {
			reason = err.Error()
		}
		if cause := context.Cause(held); errors.Is(cause, middleware.ErrRevoked) {
			reason = cause.Error()
		}
		if sse.cut != "" {
			reason = sse.cut
		}
		log.Info("results stream closed", "stream_id", id, "duration", time.Since(opened), "delivered", sse.delivered, "reason", reason)
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sse.run(held, feed)
}

// sseWriter writes one SSE response: one event per result, its id the
// result's cursor, a ": ping" comment every heartbeat, and "event: end" when
// the stream is deleted.
type sseWriter struct {
	s         *server
	w         http.ResponseWriter
	rc        *http.ResponseController
	buf       *sseBuffer // taken for a burst of writes, nil while idle
	delivered int
	cut       string // why the server cut the stream, if it did
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
		sw.buf.bw.Reset(sw.w)
	}
	return sw.buf.bw
}

func (sw *sseWriter) run(ctx context.Context, feed rtstream.Feed) {
	if sw.arm() != nil {
		return
	}
	if _, err := sw.out().WriteString(": connected\n\n"); err != nil || sw.flush() != nil {
		return
	}
	heartbeat := time.NewTicker(sw.s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if !sw.write(func() error { _, err := sw.out().WriteString(": ping\n\n"); return err }) {
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
	if err := sw.rc.SetWriteDeadline(time.Now().Add(sw.s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// flush sends the burst and gives its buffer back (a failed one is left to
// the garbage collector with the connection).
func (sw *sseWriter) flush() error {
	if err := sw.out().Flush(); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil {
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
		panic(http.ErrAbortHandler)
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
			sw.s.Metrics.Delivered(now, ds[i].Result.ReceivedAt)
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
	return true
}

// end closes the response for the feed's end: "event: end" for a deleted
// stream; a cut connection for a subscriber too slow, which must not mistake
// it for the stream's end (and whose kernel buffers are freed at once).
func (sw *sseWriter) end(err error) {
	switch {
	case errors.Is(err, rtstream.ErrNotFound):
		if sw.arm() != nil {
			return
		}
		_, _ = sw.out().WriteString("event: end\ndata: {\"reason\":\"stream deleted\"}\n\n")
		_ = sw.flush()
	case errors.Is(err, rtstream.ErrTooSlow):
		panic(http.ErrAbortHandler)
	}
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

// poll serves a page of results as JSON: up to limit results after the
// cursor in ?after= (from the stream's first result without one). With
// ?wait=, a poll that finds nothing blocks until a result arrives or the wait
// ends. "next" is the cursor to poll after next time.
func (s *server) poll(w http.ResponseWriter, r *http.Request, id string, rq resultsQuery) {
	// A long poll is held like an SSE or WebSocket stream, and counts
	// against the same caps: otherwise one key could hold thousands.
	feed, closeFeed, ok := s.openFeed(w, r, id, rq.pollFrom(), rq.wait > 0)
	if !ok {
		return
	}
	defer closeFeed()
	held := middleware.Held(r.Context())
	page, err := collectPage(held, feed, rq.limit, rq.wait)
	if err != nil {
		switch {
		case errors.Is(context.Cause(held), middleware.ErrRevoked):
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "this credential was revoked while the poll waited"))
		case r.Context().Err() == nil:
			s.fail(w, r, err)
		}
		return
	}
	now := time.Now()
	next := rq.next
	buf := make([]byte, 0, 256*len(page)+64)
	buf = append(buf, `{"results":[`...)
	for i := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendDelivery(buf, &page[i])
		s.Metrics.Delivered(now, page[i].Result.ReceivedAt)
	}
	if len(page) > 0 {
		next = page[len(page)-1].Cursor.String()
	}
	buf = append(buf, `],"next":"`...)
	buf = append(buf, next...) // digits and dashes only
	buf = append(buf, "\"}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

// collectPage takes up to limit results from feed: what is there once the
// feed caught up, or, when that is nothing and wait > 0, what comes first
// within wait. An error is the feed's end with nothing taken (the stream
// deleted, Kafka not answering), or the request's end.
func collectPage(ctx context.Context, feed rtstream.Feed, limit int, wait time.Duration) ([]rtstream.Delivery, error) {
	var page []rtstream.Delivery
	take := func(ds []rtstream.Delivery) {
		if room := limit - len(page); len(ds) > room {
			ds = ds[:room]
		}
		page = append(page, ds...)
	}
	caughtUp := feed.CaughtUp()
	var waitC <-chan time.Time
	for len(page) < limit {
		select {
		case ds := <-feed.C():
			take(ds)
			continue
		default:
		}
		if caughtUp == nil {
			// Caught up and nothing pending: answer, or wait for the first.
			if len(page) > 0 || wait == 0 {
				return page, nil
			}
			if waitC == nil {
				t := time.NewTimer(wait)
				defer t.Stop()
				waitC = t.C
			}
		}
		select {
		case ds := <-feed.C():
			take(ds)
		case <-caughtUp:
			caughtUp = nil
		case <-waitC:
			return page, nil
		case <-feed.Done():
			if err := feed.Err(); err != nil && len(page) == 0 {
				return nil, err
			}
			return page, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return page, nil
}

// appendDelivery appends d's result object with its cursor as the first
// field: the shape of SSE data plus "cursor". It is a WebSocket result frame
// and an item of a poll's page.
func appendDelivery(buf []byte, d *rtstream.Delivery) []byte {
	buf = append(buf, `{"cursor":"`...)
	buf = append(buf, d.Cursor.String()...)
	buf = append(buf, `",`...)
	start := len(buf)
	buf = record.AppendResult(buf, &d.Result)
	// AppendResult wrote an object; drop its opening brace.
	return append(buf[:start], buf[start+1:]...)
}
