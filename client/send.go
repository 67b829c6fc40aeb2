package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// RetryPolicy says how often and how patiently a send is retried. The zero
// value of a field is its default.
type RetryPolicy struct {
	// MaxAttempts is the number of tries in all, the first included
	// (default 5).
	MaxAttempts int
	// InitialBackoff is the bound of the first wait (default 100ms); each
	// later bound doubles, up to MaxBackoff (default 5s). The wait is
	// drawn uniformly below the bound ("full jitter"), so that clients
	// refused together do not all come back together.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy is the policy of a client made without
// WithRetryPolicy.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultRetryPolicy.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultRetryPolicy.MaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// backoff is the wait before retry number retry (0 for the first retry):
// full jitter below min(MaxBackoff, InitialBackoff·2^retry). rnd returns a
// number in [0, 1).
func backoff(initial, max time.Duration, retry int, rnd func() float64) time.Duration {
	bound := initial
	for i := 0; i < retry && bound < max; i++ {
		bound *= 2
	}
	bound = min(bound, max)
	return time.Duration(rnd() * float64(bound))
}

// retryDelay is the wait before retry number retry after err: the server's
// Retry-After when it sent one (never sooner: it knows why it refused),
// plus a jitter below InitialBackoff so that the clients it refused at
// once do not return at once; otherwise the policy's backoff.
func (p RetryPolicy) retryDelay(retry int, err error, rnd func() float64) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter + time.Duration(rnd()*float64(p.InitialBackoff))
	}
	return backoff(p.InitialBackoff, p.MaxBackoff, retry, rnd)
}

// SendOptions are the options of SendBatch.
type SendOptions struct {
	// IdempotencyKey is sent as the Idempotency-Key header: the server
	// answers a repeat of the request (same key, body and stream, within
	// its window, 24h by default) with the first answer and adds no
	// events. 1 to 255 printable ASCII characters.
	IdempotencyKey string
	// Retry retries the send on 429, 503, a 409 for a key still in flight,
	// and transport errors, following the client's RetryPolicy and the
	// server's Retry-After. Retries need an Idempotency-Key to be safe
	// (the first try may have been accepted and only its answer lost), so
	// one is generated when IdempotencyKey is empty.
	Retry bool
}

// SendResult is the answer to a send: the events Kafka acknowledged, all of
// the request's.
type SendResult struct {
	Accepted int      `json:"accepted"`
	EventIDs []string `json:"event_ids"`
	// Replayed is true when the answer is that of an earlier request with
	// the same Idempotency-Key: these events were not added again.
	Replayed bool `json:"-"`
	// IdempotencyKey is the key the send carried ("" for none), so that a
	// caller can retry later with the key that was generated.
	IdempotencyKey string `json:"-"`
	// Attempts is how many requests the send took.
	Attempts int `json:"-"`
}

// Send sends events to the stream as one request, once: without a key or
// retries (see SendBatch). Each event is one JSON value. The answer comes
// after Kafka acknowledged every event; an error means none was accepted,
// unless it is a transport error, after which nobody knows.
func (c *Client) Send(ctx context.Context, streamID string, events ...json.RawMessage) (*SendResult, error) {
	return c.SendBatch(ctx, streamID, events, SendOptions{})
}

// SendBatch sends events to the stream as one request: all of them are
// accepted, or none. With o.Retry it is retried under an Idempotency-Key,
// so that a retry of a request that was in fact accepted adds nothing;
// without a key it is never retried, since a retry could add the events
// twice.
func (c *Client) SendBatch(ctx context.Context, streamID string, events []json.RawMessage, o SendOptions) (*SendResult, error) {
	if len(events) == 0 {
		return nil, errorf("send: no events")
	}
	// Always a JSON array, even for one event: a single event that is
	// itself an array would otherwise be read as a batch of its elements.
	body := make([]byte, 0, 64*len(events))
	body = append(body, '[')
	for i, ev := range events {
		if !json.Valid(ev) {
			return nil, errorf("send: event %d is not valid JSON", i)
		}
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, ev...)
	}
	body = append(body, ']')

	key := o.IdempotencyKey
	if key == "" && o.Retry {
		key = c.newKey()
	}
	attempts := 1
	if o.Retry {
		attempts = c.retry.MaxAttempts
	}
	u := c.url(streamPath(streamID, "events"), nil)
	var lastErr error
	for try := 0; try < attempts; try++ {
		if try > 0 {
			if err := sleep(ctx, c.retry.retryDelay(try-1, lastErr, rand.Float64)); err != nil {
				return nil, fmt.Errorf("%w (gave up retrying: %w)", lastErr, err)
			}
		}
		res, err := c.sendOnce(ctx, u, body, key)
		if err == nil {
			res.IdempotencyKey, res.Attempts = key, try+1
			return res, nil
		}
		lastErr = err
		if ctx.Err() != nil || !retryable(err, key != "") {
			break
		}
	}
	return nil, lastErr
}

// sendOnce makes one send request.
func (c *Client) sendOnce(ctx context.Context, u string, body []byte, key string) (*SendResult, error) {
	req, err := c.newRequest(ctx, http.MethodPost, u, body, "application/json")
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil, errorf("send: unexpected status %d", resp.StatusCode)
		}
		return nil, readError(resp, http.MethodPost, req.URL.Path)
	}
	var res SendResult
	// A body cut short is a transport error: the events were accepted but
	// the client cannot say which ids they got, and a keyed retry will
	// get the answer again.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&res); err != nil {
		return nil, &transportError{err}
	}
	res.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return &res, nil
}

// transportError marks a failure to read an answer as one of transport.
type transportError struct{ err error }

func (e *transportError) Error() string {
	return "rtstream client: reading the answer: " + e.err.Error()
}
func (e *transportError) Unwrap() error { return e.err }

// retryable reports whether a failed send may be retried: only with a key,
// and only for answers that say "later" (429, 503, and 409 "the same key is
// still in flight") or when no answer came at all.
func retryable(err error, keyed bool) bool {
	if !keyed {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusConflict:
			return true
		}
		return false
	}
	// No answer: the connection failed, or the answer was cut short.
	return true
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newIdempotencyKey is 128 random bits: no two logical sends share one.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return "rtsc-" + hex.EncodeToString(b[:])
}
