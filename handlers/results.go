package handlers

import (
	"bufio"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rtstream/rtstream"
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

// startingPoint reads where a subscriber wants its results to start: after
// the cursor in Last-Event-ID (or ?last_event_id=, for clients that cannot set
// headers), from the beginning with ?from=earliest, or live. A malformed cursor
// is an error wrapping rtstream.ErrInvalid.
func startingPoint(r *http.Request) (rtstream.From, error) {
	q := r.URL.Query()
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id")
	}
	switch from := q.Get("from"); from {
	case "", "now", "latest":
	case "earliest":
		if last == "" {
			return rtstream.From{Earliest: true}, nil
		}
	default:
		return rtstream.From{}, fmt.Errorf("from=%q: want earliest or latest: %w", from, rtstream.ErrInvalid)
	}
	if last == "" {
		return rtstream.From{}, nil
	}
	c, err := rtstream.ParseCursor(last)
	if err != nil {
		return rtstream.From{}, fmt.Errorf("Last-Event-ID: %w", err)
	}
	return rtstream.From{After: &c}, nil
}

// results serves a stream's results as server-sent events: one event per
// result, its id the result's cursor, a ": ping" comment every heartbeat, and
// "event: end" when the stream is deleted.
func (s *server) results(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if !wantsEventStream(r.Header.Get("Accept")) {
		s.poll(w, r, id)
		return
	}
	if _, ok := pollParams(w, r); !ok {
		return
	}
	if err := s.streamExists(r, id); err != nil {
		s.fail(w, r, err)
		return
	}
	release, ok := s.conns.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	// Subscribe before answering, so that every result made after the
	// client saw the 200 reaches it.
	from, err := startingPoint(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	feed, err := s.Subscribe(r.Context(), id, from)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer feed.Close()

	defer s.Metrics.Subscribed("sse")()
	log := observability.Logger(r.Context(), s.log)
	opened := time.Now()
	delivered := 0
	log.Info("results stream open", "stream_id", id)
	cut := "" // why the server cut the stream, if it did
	defer func() {
		reason := "client gone"
		if err := feed.Err(); err != nil {
			reason = err.Error()
		}
		if cut != "" {
			reason = cut
		}
		log.Info("results stream closed", "stream_id", id, "duration", time.Since(opened), "delivered", delivered, "reason", reason)
	}()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	// 4 KiB: what one flush usually carries; the per-connection memory
	// of a 32 KiB buffer was the largest part of an idle subscriber (swarm).
	bw := bufio.NewWriterSize(w, 4<<10)
	// arm sets the deadline of the writes that follow, so that a client that
	// stopped reading cannot pin this goroutine. It is armed before every
	// burst of writes, not only before a flush: the buffer writes through
	// by itself when a frame does not fit, and a deadline left over from a
	// flush long ago would cut a healthy client that was merely idle.
	arm := func() error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	// writeFailed handles a failed write: a timeout means the client stopped
	// reading, and its connection is cut (any write can be the one that
	// blocks, not only a flush: the buffer flushes itself when full).
	writeFailed := func(err error) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.Metrics.SlowDisconnect()
			cut = "write timeout: client not reading"
			panic(http.ErrAbortHandler)
		}
	}
	if err := arm(); err != nil {
		return
	}
	if _, err := bw.WriteString(": connected\n\n"); err != nil || flush() != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var frame []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if err := arm(); err != nil {
				return
			}
			if _, err := bw.WriteString(": ping\n\n"); err != nil {
				writeFailed(err)
				return
			}
			if err := flush(); err != nil {
				writeFailed(err)
				return
			}
		case <-feed.Done():
			switch err := feed.Err(); {
			case errors.Is(err, rtstream.ErrNotFound):
				if arm() != nil {
					return
				}
				_, _ = bw.WriteString("event: end\ndata: {\"reason\":\"stream deleted\"}\n\n")
				_ = flush()
			case errors.Is(err, rtstream.ErrTooSlow):
				// Cut the connection rather than end the response: the
				// client must not mistake this for the stream's end, and
				// the kernel's buffers for it are freed at once.
				panic(http.ErrAbortHandler)
			}
			return
		case ds := <-feed.C():
			// Write what is pending now, then flush once.
			now := time.Now()
			for more := true; more; {
				if err := arm(); err != nil {
					return
				}
				for i := range ds {
					var err error
					if frame, err = writeResult(bw, frame, &ds[i]); err != nil {
						writeFailed(err)
						return
					}
					s.Metrics.Delivered(now, ds[i].Result.ReceivedAt)
				}
				delivered += len(ds)
				select {
				case ds = <-feed.C():
				default:
					more = false
				}
			}
			if err := flush(); err != nil {
				writeFailed(err)
				return
			}
		}
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

// polling is what a JSON poll asks for.
type polling struct {
	limit int
	wait  time.Duration
	from  rtstream.From
	next  string // the cursor to answer with when the page is empty
}

// pollParams reads and checks the JSON poll's parameters: limit, wait, and
// the cursor to read after — ?after=, else Last-Event-ID (or
// ?last_event_id=), else from the stream's first result. An empty value is
// the same as none. A bad value is answered 400 and ok is false. The event
// stream checks them too (and ignores them): a malformed parameter is an
// error on every form of the route.
func pollParams(w http.ResponseWriter, r *http.Request) (p polling, ok bool) {
	q := r.URL.Query()
	p.limit = defaultPollLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPollLimit {
			badRequest(w, r, fmt.Sprintf("limit must be an integer from 1 to %d", maxPollLimit),
				problem.FieldError{Pointer: "#/query/limit", Detail: "out of range"})
			return p, false
		}
		p.limit = n
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			var secs int
			if secs, err = strconv.Atoi(v); err == nil {
				d = time.Duration(secs) * time.Second
			}
		}
		if err != nil || d < 0 || d > maxPollWait {
			badRequest(w, r, fmt.Sprintf("wait must be a duration such as 10s (or seconds), at most %s", maxPollWait),
				problem.FieldError{Pointer: "#/query/wait", Detail: "not a duration in range"})
			return p, false
		}
		p.wait = d
	}
	switch v := q.Get("from"); v {
	case "", "earliest", "latest", "now":
	default:
		badRequest(w, r, "from must be earliest or latest", problem.FieldError{Pointer: "#/query/from", Detail: "unknown starting point"})
		return p, false
	}
	p.from = rtstream.From{Earliest: true}
	after, pointer := q.Get("after"), "#/query/after"
	if after == "" {
		if after, pointer = r.Header.Get("Last-Event-ID"), "#/header/Last-Event-ID"; after == "" {
			after, pointer = q.Get("last_event_id"), "#/query/last_event_id"
		}
	}
	if after != "" {
		c, err := rtstream.ParseCursor(after)
		if err != nil {
			badRequest(w, r, "the cursor to read after must be one this API returned", problem.FieldError{Pointer: pointer, Detail: "not a cursor"})
			return p, false
		}
		p.from, p.next = rtstream.From{After: &c}, after
	}
	return p, true
}

// Bounds of a JSON poll.
const (
	defaultPollLimit = 100
	maxPollLimit     = 1000
	maxPollWait      = 60 * time.Second
)

// poll serves a page of results as JSON: up to limit results after the
// cursor in ?after= (from the stream's first result without one). With
// ?wait=, a poll that finds nothing blocks until a result arrives or the wait
// ends. "next" is the cursor to poll after next time.
func (s *server) poll(w http.ResponseWriter, r *http.Request, id string) {
	pp, ok := pollParams(w, r)
	if !ok {
		return
	}
	limit, wait, from, next := pp.limit, pp.wait, pp.from, pp.next
	if wait > 0 {
		// A long poll is held like an SSE or WebSocket stream, and counts
		// against the same caps: otherwise one key could hold thousands.
		release, ok := s.conns.acquire(w, r)
		if !ok {
			return
		}
		defer release()
	}
	if err := s.streamExists(r, id); err != nil {
		s.fail(w, r, err)
		return
	}
	feed, err := s.Subscribe(r.Context(), id, from)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer feed.Close()

	var page []rtstream.Delivery
	take := func(ds []rtstream.Delivery) {
		if room := limit - len(page); len(ds) > room {
			ds = ds[:room]
		}
		page = append(page, ds...)
	}
	caughtUp := feed.CaughtUp()
	var waitC <-chan time.Time
collect:
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
				break
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
			break collect
		case <-feed.Done():
			if errors.Is(feed.Err(), rtstream.ErrNotFound) && len(page) == 0 {
				s.fail(w, r, feed.Err())
				return
			}
			if err := feed.Err(); err != nil && !errors.Is(err, rtstream.ErrNotFound) && len(page) == 0 {
				s.fail(w, r, err)
				return
			}
			break collect
		case <-r.Context().Done():
			return
		}
	}

	now := time.Now()
	buf := make([]byte, 0, 256*len(page)+64)
	buf = append(buf, `{"results":[`...)
	for i := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendWithCursor(buf, &page[i])
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

// appendWithCursor appends d's result object with its cursor as the first
// field: the shape of SSE data plus "cursor", as WebSocket frames have it.
func appendWithCursor(buf []byte, d *rtstream.Delivery) []byte {
	buf = append(buf, `{"cursor":"`...)
	buf = append(buf, d.Cursor.String()...)
	buf = append(buf, `",`...)
	start := len(buf)
	buf = record.AppendResult(buf, &d.Result)
	// AppendJSON wrote an object; drop its opening brace.
	return append(buf[:start], buf[start+1:]...)
}
