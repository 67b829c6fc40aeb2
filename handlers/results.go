package handlers

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
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
	s.serveSSE(w, r, id, rq.streamFrom())
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
	held, release := middleware.Hold(r.Context(), r.Context())
	defer release()
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
		s.Metrics.Delivered(now, page[i].Result.ReceivedAt, traceID(&page[i]))
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
	if _, err := w.Write(buf); err == nil {
		markWritten(addTraces(nil, page), "poll", now)
	}
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
