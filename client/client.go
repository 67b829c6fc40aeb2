// Package client is the Go client of the rtstream HTTP API: streams, sends
// with safe retries, JSON polls, dead letters, and a result subscriber that
// follows a stream over server-sent events and resumes by itself after a
// disconnect.
//
// It speaks HTTP only (the standard library's net/http) and shares the
// domain types of the root package, so that a program using it pulls in
// neither Kafka nor the server's handlers.
//
//	c, err := client.New("http://localhost:8080", client.WithAPIKey("dev-key"))
//	st, err := c.CreateStream(ctx, "sensors", nil)
//	_, err = c.Send(ctx, st.ID, json.RawMessage(`{"temp":31.5}`))
//	for r, err := range c.Subscribe(ctx, st.ID, client.SubscribeOptions{Earliest: true}) {
//		if err != nil { ... }  // the subscription ended; see Subscribe
//		fmt.Println(r.Cursor, string(r.Data))
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rtstream/rtstream"
)

// Processor is a stream's optional filter and map, as the API takes and
// shows them. It is the server's own type, so the two cannot drift apart.
type Processor = rtstream.Processor

// DeadLetter is an event the pipeline could not process: its data as sent
// and why it failed.
type DeadLetter = rtstream.DeadLetter

// Stream is a stream as the API shows it.
type Stream struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	Processor *Processor `json:"processor,omitempty"`
	// Schema is the JSON Schema every event sent must match, as the
	// server keeps it (compacted); nil when the stream has none.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Source is the Kafka topic a read-only stream follows; nil for a
	// stream that takes sends.
	Source *Source `json:"source,omitempty"`
	Links  Links   `json:"links"`
}

// Source makes a stream follow an existing Kafka topic, read-only: each
// record becomes a result (its value in Format, key, headers, timestamp,
// topic, partition and offset), and sends to the stream are refused (409).
// The server's SOURCE_TOPICS says which topics may be followed (403
// otherwise); a topic that does not exist is a 422.
type Source struct {
	Topic string `json:"topic"`
	// Format is "json" (the default), "text" or "bytes" (base64).
	Format string `json:"format,omitempty"`
	// Key, when set, keeps only the records with this key.
	Key string `json:"key,omitempty"`
	// From is where a new stream starts: "latest" (the default) or
	// "earliest".
	From string `json:"from,omitempty"`
}

// Links are the paths of a stream's routes, relative to the API's base URL.
type Links struct {
	Events  string `json:"events"`
	Results string `json:"results"`
}

// Client calls one rtstream deployment. It is safe for concurrent use; make
// one and share it, since it holds the connection pool of its *http.Client.
type Client struct {
	base   *url.URL
	key    string
	token  string
	hc     *http.Client
	retry  RetryPolicy
	agent  string
	newKey func() string // generates Idempotency-Keys; replaced in tests
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as X-API-Key on every request.
func WithAPIKey(key string) Option { return func(c *Client) { c.key = key } }

// WithToken sends a subscribe token (CreateToken) as Authorization: Bearer.
// Such a client may only read the results of the token's stream (Subscribe,
// Poll, DeadLetters) until the token expires.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc for every request instead of a client of its own.
// A result subscription is one long response: hc must not set a Timeout
// (use contexts, or SubscribeOptions.IdleTimeout, to bound waits).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetryPolicy replaces DefaultRetryPolicy for sends that retry.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.retry = p } }

// WithUserAgent sets the User-Agent header, so that server logs can tell
// programs apart.
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client of the API at baseURL, such as
// "http://localhost:8080" (a path prefix, for a server behind a proxy, is
// kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("rtstream client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("rtstream client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, hc: &http.Client{}, retry: DefaultRetryPolicy, agent: "rtstream-go-client", newKey: newIdempotencyKey}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	c.retry = c.retry.withDefaults()
	return c, nil
}

// BaseURL is the API's base URL as given to New, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// url is the absolute URL of an API path with an optional query.
func (c *Client) url(path string, q url.Values) string {
	// path is escaped already (streamPath), so it is joined as text.
	u := *c.base
	u.RawQuery, u.Fragment = "", ""
	s := strings.TrimRight(u.String(), "/") + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// streamPath is the path of a stream's route. The id is escaped: the
// server's ids never need it, but a caller's typo must not turn into
// another route.
func streamPath(id string, rest ...string) string {
	p := "/v1/streams/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// newRequest builds a request with the client's headers.
func (c *Client) newRequest(ctx context.Context, method, u string, body []byte, contentType string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.agent != "" {
		req.Header.Set("User-Agent", c.agent)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// maxAnswer bounds the JSON answers the client reads (a page of 1000
// results of up to 1 MiB each is the largest legitimate one).
const maxAnswer = 1 << 30

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil). Any other status is an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in any, out any) (*http.Response, error) {
	var body []byte
	ct := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("rtstream client: encoding the request: %w", err)
		}
		ct = "application/json"
	}
	req, err := c.newRequest(ctx, method, c.url(path, q), body, ct)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, readError(resp, method, req.URL.Path)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return resp, fmt.Errorf("rtstream client: %s %s: decoding the answer: %w", method, req.URL.Path, err)
	}
	return resp, nil
}

// StreamDefinition is what a stream is created from; every field is
// optional.
type StreamDefinition struct {
	Name      string     `json:"name,omitempty"`
	Processor *Processor `json:"processor,omitempty"`
	// Schema is a JSON Schema (2020-12) every event sent to the stream must
	// match: a request with an event that does not is refused whole, an
	// *Error with status 422 whose Errors point at each failure ("/3/temp":
	// the fourth event's temp). It is sent as is; a schema the server
	// cannot use is a 422 at creation, pointing under "/schema".
	Schema json.RawMessage `json:"schema,omitempty"`
	// Source, when set, makes a read-only stream of an existing topic.
	Source *Source `json:"source,omitempty"`
}

// CreateStream creates a stream with a server-chosen id. A nil processor
// makes a passthrough stream. A processor that does not compile is an
// *Error with status 400 whose Errors point at the expression.
func (c *Client) CreateStream(ctx context.Context, name string, p *Processor) (*Stream, error) {
	return c.CreateStreamFrom(ctx, StreamDefinition{Name: name, Processor: p})
}

// CreateStreamFrom creates a stream from a whole definition (a schema
// included) with a server-chosen id.
func (c *Client) CreateStreamFrom(ctx context.Context, def StreamDefinition) (*Stream, error) {
	var st Stream
	if _, err := c.do(ctx, http.MethodPost, "/v1/streams", nil, def, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// PutStream creates the stream id, or finds it: created reports which. It
// is idempotent, so it is safe to retry; a stream id that exists with
// another definition is an *Error with status 409 (see IsConflict).
func (c *Client) PutStream(ctx context.Context, id, name string, p *Processor) (st *Stream, created bool, err error) {
	return c.PutStreamFrom(ctx, id, StreamDefinition{Name: name, Processor: p})
}

// PutStreamFrom is PutStream with a whole definition. A stream's schema
// cannot be changed in place (another definition is a 409): delete the
// stream and create it again; sends are checked against the definition
// current when they arrive.
func (c *Client) PutStreamFrom(ctx context.Context, id string, def StreamDefinition) (st *Stream, created bool, err error) {
	var s Stream
	resp, err := c.do(ctx, http.MethodPut, streamPath(id), nil, def, &s)
	if err != nil {
		return nil, false, err
	}
	return &s, resp.StatusCode == http.StatusCreated, nil
}

// GetStream returns the stream id; an unknown or deleted one is an error
// for which IsNotFound is true.
func (c *Client) GetStream(ctx context.Context, id string) (*Stream, error) {
	var st Stream
	if _, err := c.do(ctx, http.MethodGet, streamPath(id), nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// DeleteStream deletes the stream id. Its open subscriptions end with
// ErrStreamDeleted.
func (c *Client) DeleteStream(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, streamPath(id), nil, nil, nil)
	return err
}

// Token is a subscribe token: results:read on one stream, until ExpiresAt.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateToken mints a subscribe token for stream id, for a browser to pass
// as ?token= (or another client as WithToken) instead of a key. ttl 0 asks
// for the server's default; more than SUBSCRIBE_TOKEN_MAX_TTL gets that.
func (c *Client) CreateToken(ctx context.Context, id string, ttl time.Duration) (*Token, error) {
	var in any
	if ttl > 0 {
		in = map[string]string{"ttl": ttl.String()}
	}
	var tok Token
	if _, err := c.do(ctx, http.MethodPost, streamPath(id, "tokens"), nil, in, &tok); err != nil {
		return nil, err
	}
	return &tok, nil
}

// ListOptions selects a page of streams.
type ListOptions struct {
	// Limit is the page size, 1 to 1000; 0 is the server's default (100).
	Limit int
	// After is the id the page starts after: the Next of the previous page.
	After string
}

// StreamPage is one page of streams in id order.
type StreamPage struct {
	Streams []Stream `json:"streams"`
	// Next is the After of the following page, "" on the last page.
	Next string `json:"next"`
}

// ListStreams returns one page of streams.
func (c *Client) ListStreams(ctx context.Context, o ListOptions) (*StreamPage, error) {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	var page StreamPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/streams", q, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllStreams iterates over every stream, fetching pages of o.Limit as it
// goes, from o.After on. An error ends the iteration: it is yielded once,
// with a zero Stream.
func (c *Client) AllStreams(ctx context.Context, o ListOptions) iter.Seq2[Stream, error] {
	return func(yield func(Stream, error) bool) {
		for {
			page, err := c.ListStreams(ctx, o)
			if err != nil {
				yield(Stream{}, err)
				return
			}
			for _, st := range page.Streams {
				if !yield(st, nil) {
					return
				}
			}
			if page.Next == "" || len(page.Streams) == 0 {
				return
			}
			o.After = page.Next
		}
	}
}

// Result is one processed event as a subscriber or a poll receives it.
type Result struct {
	// Cursor is the result's place in its stream: hand it back (as
	// SubscribeOptions.After or PollOptions.After) to continue after it.
	// It is opaque; compare cursors only for equality.
	Cursor      string          `json:"cursor"`
	StreamID    string          `json:"stream_id"`
	EventID     string          `json:"event_id"`
	ReceivedAt  time.Time       `json:"received_at"`
	ProcessedAt time.Time       `json:"processed_at"`
	Data        json.RawMessage `json:"data"`
}

// PollOptions selects a page of results.
type PollOptions struct {
	// After is the cursor the page starts after; "" is the stream's first
	// result.
	After string
	// Limit is the page size, 1 to 1000; 0 is the server's default (100).
	Limit int
	// Wait, when positive, makes a poll that finds nothing block until a
	// result exists or Wait has passed (at most 60s): a long poll.
	Wait time.Duration
}

// ResultPage is one page of results.
type ResultPage struct {
	Results []Result `json:"results"`
	// Next is the After of the next poll: the last result's cursor, or the
	// After of this poll when it found nothing.
	Next string `json:"next"`
}

// Poll returns a page of results as JSON, for programs that would rather
// ask than follow a stream. An empty page is not an error.
func (c *Client) Poll(ctx context.Context, streamID string, o PollOptions) (*ResultPage, error) {
	q := url.Values{}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Wait > 0 {
		q.Set("wait", o.Wait.String())
	}
	var page ResultPage
	if _, err := c.do(ctx, http.MethodGet, streamPath(streamID, "results"), q, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// DeadLetterPage is one page of dead letters.
type DeadLetterPage struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	// Next is the after of the next read, "" when there is none yet. A
	// page may be short, even empty, and still name a next one: the
	// server bounds the work of one read.
	Next string `json:"next"`
}

// DeadLetters returns up to limit (0: the server's default) of the events
// the stream's processor failed on, after the cursor after ("" from the
// first).
func (c *Client) DeadLetters(ctx context.Context, streamID, after string, limit int) (*DeadLetterPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var page DeadLetterPage
	if _, err := c.do(ctx, http.MethodGet, streamPath(streamID, "dead-letters"), q, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}
