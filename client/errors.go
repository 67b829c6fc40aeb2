package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrStreamDeleted ends a subscription whose stream was deleted: the server
// said so with "event: end", or answered a reconnect with 404. Test for it
// with errors.Is.
var ErrStreamDeleted = errors.New("rtstream client: stream deleted")

// FieldError points at the part of a request a problem is about, such as
// "/processor/filter" or "/0/temp".
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Error is a 4xx or 5xx answer: the RFC 9457 problem the API sends with
// every one. Get it with errors.As.
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Type, Title, Detail, Instance and Errors are the problem's fields.
	// Title is the status text and Detail the start of the body when the
	// answer was not a problem (from a proxy in front of the API, say).
	Type     string
	Title    string
	Detail   string
	Instance string
	Errors   []FieldError
	// RetryAfter is the answer's Retry-After header (429 and 503 carry
	// one); 0 when there was none.
	RetryAfter time.Duration
	// Method and Path name the request, for messages.
	Method, Path string
}

// problemJSON is the wire form of a problem.
type problemJSON struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Errors   []FieldError `json:"errors"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rtstream: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, fe := range e.Errors {
		b.WriteString("; " + fe.Pointer + ": " + fe.Detail)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: the API
// was rate limited (429) or unavailable (5xx). It does not say whether a
// retry is safe; a send is safe to retry only with an Idempotency-Key.
func (e *Error) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// StatusCode returns the HTTP status of err's *Error, or 0 when err is not
// an answer of the API (a transport error, say).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is a 404: an unknown or deleted stream.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409: a PutStream whose id exists with
// another definition, or a send whose Idempotency-Key is still in flight.
func IsConflict(err error) bool { return StatusCode(err) == http.StatusConflict }

// IsUnprocessable reports whether err is a 422: the request can never
// succeed as it is, such as a send with an event that does not match the
// stream's schema (Errors point at each failure), or a stream definition
// whose schema or processor the server cannot use.
func IsUnprocessable(err error) bool { return StatusCode(err) == http.StatusUnprocessableEntity }

// IsRateLimited reports whether err is a 429.
func IsRateLimited(err error) bool { return StatusCode(err) == http.StatusTooManyRequests }

// IsUnavailable reports whether err is a 503: Kafka did not acknowledge in
// time. Its detail says whether nothing was accepted or the events may still
// be stored (retry with the same Idempotency-Key then).
func IsUnavailable(err error) bool { return StatusCode(err) == http.StatusServiceUnavailable }

// maxProblem bounds how much of an error answer is read.
const maxProblem = 64 << 10

// readError turns a non-2xx answer into an *Error. The body is read (up to
// maxProblem) and decoded when it is a problem; otherwise its start becomes
// the detail, so that a proxy's HTML page still says something.
func readError(resp *http.Response, method, path string) *Error {
	e := &Error{StatusCode: resp.StatusCode, Method: method, Path: path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p problemJSON
	if (mt == "application/problem+json" || mt == "application/json") && json.Unmarshal(data, &p) == nil {
		e.Type, e.Title, e.Detail, e.Instance, e.Errors = p.Type, p.Title, p.Detail, p.Instance, p.Errors
	} else if s := strings.TrimSpace(string(data)); s != "" {
		const max = 200
		if len(s) > max {
			s = s[:max] + "..."
		}
		e.Detail = s
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110, 10.2.3). Anything else, or a date in the past, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// A server that asks for more than a day means something else.
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// errorf formats a client-side error in the package's style.
func errorf(format string, args ...any) error {
	return fmt.Errorf("rtstream client: "+format, args...)
}
