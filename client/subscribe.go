package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// SubscribeOptions say where a subscription starts and how it reconnects.
// The zero value follows the stream live, with the defaults below.
type SubscribeOptions struct {
	// After starts after this cursor (a Result.Cursor from an earlier
	// subscription or poll): every result after it is replayed, then the
	// subscription continues live. It wins over Earliest.
	After string
	// Earliest starts from the stream's first result. Without After or
	// Earliest the subscription is live: results made from its first
	// connection on. Once a result arrived every reconnect resumes after
	// it; but a live subscription cut before its first result reconnects
	// live again and may miss what was made in between (there is no
	// cursor to resume from yet). Use Earliest or After where that gap
	// matters.
	Earliest bool

	// InitialBackoff bounds the first wait before a reconnect (default
	// 250ms, or the server's "retry:" field when it sent one); each failed
	// reconnect doubles the bound up to MaxBackoff (default 5s). Waits are
	// drawn below the bound (full jitter), and a 429 or 503 waits at
	// least its Retry-After. A connection that delivered a result resets
	// the bound.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxReconnects ends the subscription after this many reconnects in a
	// row without a result; 0 means never (until ctx ends).
	MaxReconnects int
	// IdleTimeout reconnects when nothing, not even a ": ping", arrived
	// for this long: a connection that died without the client's kernel
	// noticing. Default 45s, three of the server's default heartbeats; a
	// server with a longer SSE_HEARTBEAT needs a longer timeout. Negative
	// disables it.
	IdleTimeout time.Duration
	// OnReconnect, if set, is called before each wait for a reconnect with
	// the reason and the wait, for logging. It runs on the iterating
	// goroutine.
	OnReconnect func(err error, wait time.Duration)
}

func (o SubscribeOptions) withDefaults() SubscribeOptions {
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 45 * time.Second
	}
	return o
}

// errIdle cuts a connection on which nothing arrived for IdleTimeout.
var errIdle = errors.New("rtstream client: no data or heartbeat within the idle timeout")

// Subscribe follows the stream's results over server-sent events. It
// reconnects by itself whenever the connection ends (a server restart, a
// proxy's timeout, the server cutting a subscriber that fell behind), and
// resumes after the last result it delivered, with Last-Event-ID: the
// server replays what was missed, so nothing is lost or delivered twice.
//
// It is an iterator rather than a callback or a channel because the caller's
// loop then owns the pace and the lifetime: results are read from the
// connection only as fast as the loop takes them (a consumer that falls far
// behind is cut by the server and resumes from its cursor), breaking out of
// the loop closes the connection at once, and no goroutine is left behind,
// since the reading happens on the caller's goroutine.
//
// The sequence yields results with a nil error. It ends when the loop
// breaks, or after yielding one non-nil error:
//   - ErrStreamDeleted (errors.Is) when the stream was deleted;
//   - ctx's error when ctx ends;
//   - an *Error for an answer that no retry can change (401, 403, 400 for a
//     bad cursor, 404 for a stream that did not exist at the first
//     connection);
//   - the last failure when MaxReconnects is reached.
//
// Transient failures (transport errors, 429, 5xx, a cut connection) are not
// yielded; they go to OnReconnect.
func (c *Client) Subscribe(ctx context.Context, streamID string, o SubscribeOptions) iter.Seq2[Result, error] {
	o = o.withDefaults()
	return func(yield func(Result, error) bool) {
		s := &subscription{c: c, streamID: streamID, o: o, cursor: o.After, earliest: o.Earliest}
		s.run(ctx, yield)
	}
}

// subscription is the state of one iteration of a Subscribe sequence.
type subscription struct {
	c        *Client
	streamID string
	o        SubscribeOptions
	cursor   string // the last result delivered, or where to start
	earliest bool
	opened   bool          // a connection was answered 200 once
	retry    time.Duration // the server's "retry:" field
}

// errStopped says the consumer broke out of its loop.
var errStopped = errors.New("stopped")

func (s *subscription) run(ctx context.Context, yield func(Result, error) bool) {
	failures := 0
	for {
		delivered, err := s.connect(ctx, yield)
		if errors.Is(err, errStopped) {
			return
		}
		if ctx.Err() != nil {
			yield(Result{}, ctx.Err())
			return
		}
		if terminal(err) {
			yield(Result{}, err)
			return
		}
		if delivered > 0 {
			failures = 0
		}
		if s.o.MaxReconnects > 0 && failures >= s.o.MaxReconnects {
			yield(Result{}, fmt.Errorf("rtstream client: gave up after %d reconnects: %w", failures, err))
			return
		}
		initial := max(s.o.InitialBackoff, s.retry)
		wait := backoff(initial, max(s.o.MaxBackoff, initial), failures, rand.Float64)
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			wait = max(wait, e.RetryAfter)
		}
		if s.o.OnReconnect != nil {
			s.o.OnReconnect(err, wait)
		}
		if sleep(ctx, wait) != nil {
			yield(Result{}, ctx.Err())
			return
		}
		failures++
	}
}

// terminal reports whether a connection's failure ends the subscription.
func terminal(err error) bool {
	if errors.Is(err, ErrStreamDeleted) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		switch {
		case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusTooManyRequests, e.StatusCode >= 500:
			return false
		}
		return true
	}
	var pe *protocolError
	return errors.As(err, &pe)
}

// protocolError is an answer that is not the event stream the contract
// promises; reconnecting would not help.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "rtstream client: " + e.msg }

// connect makes one connection and yields its results until it ends. It
// returns how many results it delivered and why it ended (never nil).
func (s *subscription) connect(ctx context.Context, yield func(Result, error) bool) (int, error) {
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The idle timer covers the wait for the answer's headers too: a
	// server that accepted the connection and hangs is as dead as one
	// that stopped sending.
	var idle *time.Timer
	if s.o.IdleTimeout > 0 {
		idle = time.AfterFunc(s.o.IdleTimeout, func() { cancel(errIdle) })
		defer idle.Stop()
	}
	cause := func(err error) error {
		if c := context.Cause(connCtx); c != nil && ctx.Err() == nil {
			return c
		}
		return err
	}
	resp, err := s.open(connCtx, cause)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	r := newSSEReader(resp.Body)
	if idle != nil {
		r.onLine = func() { idle.Reset(s.o.IdleTimeout) }
	}
	return s.read(r, idle, yield, cause)
}

// open asks for the results as an event stream, after the cursor of the last
// result delivered, and checks that the answer is one. cause explains a
// transport error by the connection's end (idle, canceled).
func (s *subscription) open(ctx context.Context, cause func(error) error) (*http.Response, error) {
	q := url.Values{}
	if s.cursor == "" && s.earliest {
		q.Set("from", "earliest")
	}
	req, err := s.c.newRequest(ctx, http.MethodGet, s.c.url(streamPath(s.streamID, "results"), q), nil, "")
	if err != nil {
		return nil, &protocolError{err.Error()}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.cursor != "" {
		req.Header.Set("Last-Event-ID", s.cursor)
	}
	resp, err := s.c.hc.Do(req)
	if err != nil {
		return nil, cause(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		e := readError(resp, http.MethodGet, req.URL.Path)
		if e.StatusCode == http.StatusNotFound && s.opened {
			// It existed when this subscription first connected.
			return nil, fmt.Errorf("%w: %w", ErrStreamDeleted, e)
		}
		return nil, e
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, &protocolError{fmt.Sprintf("GET %s answered %q, not text/event-stream", req.URL.Path, mt)}
	}
	s.opened = true
	return resp, nil
}

// read yields the stream's results until it ends; idle, when set, is stopped
// while the consumer holds a result: its time is not the server's silence.
// cause explains a read error by the connection's end.
func (s *subscription) read(r *sseReader, idle *time.Timer, yield func(Result, error) bool, cause func(error) error) (delivered int, _ error) {
	for {
		f, err := r.next()
		if r.retry > 0 {
			s.retry = r.retry
		}
		if err != nil {
			if err == io.EOF {
				err = errors.New("rtstream client: the server closed the stream")
			}
			return delivered, cause(err)
		}
		if f.IsComment {
			continue // ": connected", ": ping"
		}
		switch f.Event {
		case "result":
			res := Result{Cursor: f.ID}
			if err := json.Unmarshal([]byte(f.Data), &res); err != nil {
				return delivered, &protocolError{fmt.Sprintf("result after cursor %q is not JSON: %v", s.cursor, err)}
			}
			res.Cursor = f.ID
			if f.ID != "" {
				s.cursor = f.ID
			}
			delivered++
			if idle != nil {
				idle.Stop()
			}
			if !yield(res, nil) {
				return delivered, errStopped
			}
			if idle != nil {
				idle.Reset(s.o.IdleTimeout)
			}
		case "end":
			return delivered, ErrStreamDeleted
		}
		// Other event types are for newer clients; skip them.
	}
}
