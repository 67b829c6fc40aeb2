package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/problem"
)

// Bounds of the pages the list routes answer and of a long poll.
const (
	defaultPage = 100
	maxPage     = 1000
	maxPollWait = 60 * time.Second
)

// paramError is a query parameter or header that cannot be read: answered
// 400 with its detail and a pointer to it, in the same words on every route.
type paramError struct {
	detail string
	field  problem.FieldError
}

func (s *server) badParam(w http.ResponseWriter, r *http.Request, e *paramError) {
	badRequest(w, r, e.detail, e.field)
}

// queryLimit reads ?limit=: defaultPage when absent or empty.
func queryLimit(q url.Values) (int, *paramError) {
	v := q.Get("limit")
	if v == "" {
		return defaultPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, &paramError{fmt.Sprintf("limit must be a whole number from 1 to %d", maxPage),
			problem.FieldError{Pointer: "#/query/limit", Detail: "out of range"}}
	}
	return n, nil
}

// queryPage reads a list's ?limit= and ?after=; valid says whether after is
// one of the list's cursors, notCursor and why say so when it is not.
func queryPage(q url.Values, valid func(string) bool, notCursor, why string) (limit int, after string, _ *paramError) {
	limit, perr := queryLimit(q)
	if perr != nil {
		return 0, "", perr
	}
	after = q.Get("after")
	if after != "" && !valid(after) {
		return 0, "", &paramError{notCursor, problem.FieldError{Pointer: "#/query/after", Detail: why}}
	}
	return limit, after, nil
}

// resultsQuery is what the results routes read from the query and headers.
type resultsQuery struct {
	limit int
	wait  time.Duration
	// earliest is ?from=earliest.
	earliest bool
	// after is the cursor of ?after= (the JSON poll's); resume is the one of
	// Last-Event-ID or ?last_event_id= (a reconnecting stream's).
	after, resume *rtstream.Cursor
	// next is the cursor given, as given: a poll's "next" when its page is
	// empty.
	next string
}

// readResultsQuery reads and checks the results route's limit, wait, from
// and cursors. Both of its forms check all of them, a malformed parameter
// being an error wherever it is sent, save one: a poll that names ?after=
// never reads the cursor a stream reconnects with, and does not check it.
func readResultsQuery(r *http.Request, stream bool) (rq resultsQuery, _ *paramError) {
	q := r.URL.Query()
	var perr *paramError
	if rq.limit, perr = queryLimit(q); perr != nil {
		return rq, perr
	}
	if rq.wait, perr = queryWait(q); perr != nil {
		return rq, perr
	}
	if rq.earliest, perr = queryFrom(q); perr != nil {
		return rq, perr
	}
	rq.next = q.Get("after")
	if rq.after, perr = cursorParam(rq.next, "#/query/after"); perr != nil {
		return rq, perr
	}
	if stream || rq.after == nil {
		var resume string
		if rq.resume, resume, perr = resumeCursor(r); perr != nil {
			return rq, perr
		}
		if rq.next == "" {
			rq.next = resume
		}
	}
	return rq, nil
}

// readStreamStart reads where a WebSocket starts, from and the cursor it
// reconnects with: the only parameters of its route (limit, wait and after
// are the results route's, and are not read there).
func readStreamStart(r *http.Request) (rq resultsQuery, _ *paramError) {
	var perr *paramError
	if rq.earliest, perr = queryFrom(r.URL.Query()); perr != nil {
		return rq, perr
	}
	if rq.resume, _, perr = resumeCursor(r); perr != nil {
		return rq, perr
	}
	return rq, nil
}

// queryFrom reads ?from=: true for earliest; latest, now and none are live.
func queryFrom(q url.Values) (bool, *paramError) {
	switch v := q.Get("from"); v {
	case "", "latest", "now":
		return false, nil
	case "earliest":
		return true, nil
	}
	return false, &paramError{"from must be earliest or latest",
		problem.FieldError{Pointer: "#/query/from", Detail: "unknown starting point"}}
}

// resumeCursor reads the cursor a stream reconnects with: Last-Event-ID, or
// ?last_event_id= for clients that cannot set headers; it returns it as given
// too.
func resumeCursor(r *http.Request) (*rtstream.Cursor, string, *paramError) {
	v, pointer := r.Header.Get("Last-Event-ID"), "#/header/Last-Event-ID"
	if v == "" {
		v, pointer = r.URL.Query().Get("last_event_id"), "#/query/last_event_id"
	}
	c, perr := cursorParam(v, pointer)
	return c, v, perr
}

// queryWait reads ?wait=: a duration such as 10s, or whole seconds.
func queryWait(q url.Values) (time.Duration, *paramError) {
	v := q.Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		var secs int
		if secs, err = strconv.Atoi(v); err == nil {
			d = time.Duration(secs) * time.Second
		}
	}
	if err != nil || d < 0 || d > maxPollWait {
		return 0, &paramError{fmt.Sprintf("wait must be a duration such as 10s (or seconds), at most %s", maxPollWait),
			problem.FieldError{Pointer: "#/query/wait", Detail: "not a duration in range"}}
	}
	return d, nil
}

// cursorParam reads a results cursor; "" is none.
func cursorParam(v, pointer string) (*rtstream.Cursor, *paramError) {
	if v == "" {
		return nil, nil
	}
	c, err := rtstream.ParseCursor(v)
	if err != nil {
		return nil, &paramError{"the cursor to read after must be one this API returned",
			problem.FieldError{Pointer: pointer, Detail: "not a cursor"}}
	}
	return &c, nil
}

// streamFrom is where a result stream (SSE, WebSocket) starts: after the
// cursor it reconnects with, from the first result with from=earliest, or
// live.
func (rq resultsQuery) streamFrom() rtstream.From {
	switch {
	case rq.resume != nil:
		return rtstream.From{After: rq.resume}
	case rq.earliest:
		return rtstream.From{Earliest: true}
	}
	return rtstream.From{}
}

// pollFrom is where a JSON poll reads from: after ?after=, else after the
// reconnecting cursor, else from the stream's first result.
func (rq resultsQuery) pollFrom() rtstream.From {
	switch {
	case rq.after != nil:
		return rtstream.From{After: rq.after}
	case rq.resume != nil:
		return rtstream.From{After: rq.resume}
	}
	return rtstream.From{Earliest: true}
}

// openFeed is how every results route starts: the stream must exist, a held
// request (SSE, WebSocket, long poll) takes a slot of the connection caps,
// and the feed is subscribed before anything is answered, so that every
// result made after the client saw the answer reaches it. It answers every
// refusal itself; close releases what it took.
func (s *server) openFeed(w http.ResponseWriter, r *http.Request, id string, from rtstream.From, held bool) (feed rtstream.Feed, close func(), ok bool) {
	if err := s.streamExists(r, id); err != nil {
		s.fail(w, r, err)
		return nil, nil, false
	}
	release := func() {}
	if held {
		if release, ok = s.conns.acquire(w, r); !ok {
			return nil, nil, false
		}
		releaseQuota, ok := s.acquireHeld(w, r)
		if !ok {
			release()
			return nil, nil, false
		}
		releaseConn := release
		release = func() { releaseQuota(); releaseConn() }
	}
	feed, err := s.Subscribe(r.Context(), id, from)
	if err != nil {
		release()
		s.fail(w, r, err)
		return nil, nil, false
	}
	return feed, func() { feed.Close(); release() }, true
}
