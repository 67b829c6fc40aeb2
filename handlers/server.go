// Package handlers is rtstream's HTTP API: every route, request decoding and
// validation, problem+json errors, and the server-sent events feed. It declares
// the small interfaces it needs and never imports the Kafka layer.
package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/quota"
	"github.com/rtstream/rtstream/schema"
)

// Streams is the stream registry.
type Streams interface {
	// Create stores s; when s.ID exists it returns that stream with
	// created=false if the definitions match, or rtstream.ErrConflict.
	Create(ctx context.Context, s rtstream.Stream) (stream rtstream.Stream, created bool, err error)
	// Get answers with every create and delete acknowledged anywhere.
	Get(ctx context.Context, id string) (rtstream.Stream, error)
	// List lists tenant's streams ("": every tenant's).
	List(ctx context.Context, tenant, after string, limit int) ([]rtstream.Stream, error)
	Delete(ctx context.Context, id string) error
}

// Events accepts the events of one request, all or nothing, and returns
// their ids once they are durable.
type Events interface {
	Send(ctx context.Context, streamID string, data []json.RawMessage) ([]string, error)
}

// Check is one readiness check; it returns nil when its part is ready.
type Check func(ctx context.Context) error

// Defaults of Config.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxBatch         = 1000
	DefaultHeartbeat        = 15 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSendTimeout      = 10 * time.Second
	DefaultReadTimeout      = 30 * time.Second
	DefaultMaxStreams       = 10000
	DefaultMaxStreamsPerKey = 100
)

// Config holds the HTTP limits. Zero fields take the defaults.
type Config struct {
	// MaxBodyBytes of a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxBatch events in one request. Default 1000.
	MaxBatch int
	// Heartbeat between SSE ": ping" comments. Default 15 s.
	Heartbeat time.Duration
	// WriteTimeout of one write to a streaming client; a client that does
	// not take a write in this time is dropped. Default 10 s.
	WriteTimeout time.Duration
	// SendTimeout bounds how long a send waits for Kafka. Default 10 s.
	SendTimeout time.Duration
	// ReadTimeout bounds reading a request on the non-streaming routes.
	// Default 30 s.
	ReadTimeout time.Duration
	// MaxStreams caps open result streams (SSE) on this instance: 503 over
	// it. Default 10000.
	MaxStreams int
	// MaxStreamsPerKey caps one principal's open result streams: 429 over
	// it. Default 100.
	MaxStreamsPerKey int
	// ReplayWriters bounds how many connections write replayed results at
	// once (live results are never held back): a burst of resumes then
	// queues for CPU instead of crowding out the live subscribers. Default
	// half of GOMAXPROCS, at least 1 (measured: benchmarks/RESULTS.md).
	ReplayWriters int
	// Schema limits the streams' JSON Schemas and budgets checking events
	// against them; zero fields take package schema's defaults.
	Schema schema.Config
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxStreamsPerKey <= 0 {
		c.MaxStreamsPerKey = DefaultMaxStreamsPerKey
	}
	if c.ReplayWriters <= 0 {
		c.ReplayWriters = max(1, runtime.GOMAXPROCS(0)/2)
	}
}

// Deps are what the server is built from. Streams, Events and Subscribe are
// required.
type Deps struct {
	Config  Config
	Logger  *slog.Logger
	Streams Streams
	Events  Events
	// Subscribe starts a feed of a stream's results from a point: live,
	// after a cursor, or from the earliest result.
	Subscribe func(ctx context.Context, streamID string, from rtstream.From) (rtstream.Feed, error)
	// DeadLetters reads the events the pipeline could not process; nil
	// serves the dead-letters route as an empty list.
	DeadLetters DeadLetters
	// Ready are the readiness checks by name, run by /readyz.
	Ready map[string]Check
	// MetricsHandler, when set, is served at /metrics.
	MetricsHandler http.Handler
	// Metrics records what the handlers do; nil records nothing.
	Metrics *observability.Metrics
	// Idempotency keeps the answers of sends made with an Idempotency-Key;
	// nil accepts the header but deduplicates nothing (tests, tools).
	Idempotency rtstream.Idempotency
	// Tokens mints subscribe tokens; nil answers 501 on the tokens route.
	Tokens TokenIssuer
	// Quotas bounds what each tenant holds and sends; nil bounds nothing
	// but the per-instance connection cap. Owned counts a tenant's streams
	// for its streams quota (required with Quotas).
	Quotas *quota.Quotas
	Owned  func(ctx context.Context, tenant string) (int, error)
	// QuotaPerKey applies the connection and byte quotas per key rather
	// than per tenant: the deployment has no tenants (API_KEYS only).
	QuotaPerKey bool
	// Sources lets streams follow existing Kafka topics: the topics
	// SourceTopics allows, checked by Sources. Nil refuses every source.
	Sources      SourceChecker
	SourceTopics []string
	// ClientIP, when set, names the client in the access log.
	ClientIP func(*http.Request) string
	// The middleware of the API; nil ones are skipped. routes.go puts
	// them in their order.
	//
	// ResolveClientIP finds the client's address (behind trusted proxies):
	// the access log and LimitIP use it.
	ResolveClientIP func(http.Handler) http.Handler
	// LimitIP limits requests per client address, before authentication,
	// which it protects.
	LimitIP func(http.Handler) http.Handler
	// Authenticate puts the request's principal in its context, or refuses.
	Authenticate func(http.Handler) http.Handler
	// LimitKey limits requests per authenticated principal.
	LimitKey func(http.Handler) http.Handler
	// Origins are the browser origins (CORS_ORIGINS) that may open a
	// WebSocket beside the server's own; "*" allows any. Browsers apply no
	// CORS to WebSockets, so the handler checks this itself.
	Origins []string
}

// server holds the dependencies of the handlers.
type server struct {
	Deps
	cfg   Config
	log   *slog.Logger
	conns *connLimits
	// sseBuffers lends SSE connections their write buffers (sseBuffer).
	sseBuffers sync.Pool
	// replaying holds a slot per connection writing replayed results.
	replaying chan struct{}
	// life ends when the server closes; streams are the connections the
	// server took over from net/http (SSE), each on a goroutine of its own.
	life    context.Context
	endLife context.CancelFunc
	streams sync.WaitGroup
	// closed, under closeMu, refuses new streams once Close began waiting:
	// a handler between its hijack and its hand-over is not seen by
	// http.Server.Shutdown.
	closeMu sync.Mutex
	closed  bool
	// draining: the instance is shutting down; /readyz answers 503.
	draining atomic.Bool
	// schemaCache holds the streams' compiled schemas (see schemas).
	schemaOnce  sync.Once
	schemaCache *schema.Cache
}

// schemas is the cache of the streams' compiled schemas, made on first use.
func (s *server) schemas() *schema.Cache {
	s.schemaOnce.Do(func() { s.schemaCache = schema.NewCache(s.cfg.Schema) })
	return s.schemaCache
}

// Server is the HTTP API. net/http serves its requests, except the SSE
// connections that it takes over (one goroutine each, no net/http buffers):
// http.Server.Shutdown does not see those, and Close ends them.
type Server struct {
	http.Handler
	s *server
}

// Drain makes /readyz answer 503 from now on, so that load balancers take
// the instance out of rotation while it still serves what reaches it.
func (sv *Server) Drain() { sv.s.draining.Store(true) }

// Close ends every result stream with a hint to reconnect (SSE "retry:",
// WebSocket 1001), then waits for the SSE streams it took over from
// net/http to finish, or for ctx. http.Server.Shutdown waits for the rest.
func (sv *Server) Close(ctx context.Context) error {
	sv.s.closeMu.Lock()
	sv.s.closed = true
	sv.s.closeMu.Unlock()
	sv.s.endLife()
	done := make(chan struct{})
	go func() { sv.s.streams.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("result streams still closing: %w", ctx.Err())
	}
}

// replaySlot waits, while feed still replays, for one of the ReplayWriters
// slots, and returns its release; a live feed writes at once. false: ctx
// ended first.
func (s *server) replaySlot(ctx context.Context, feed rtstream.Feed) (release func(), ok bool) {
	select {
	case <-feed.CaughtUp():
		return func() {}, true
	default:
	}
	select {
	case s.replaying <- struct{}{}:
		return func() { <-s.replaying }, true
	case <-ctx.Done():
		return nil, false
	}
}

// enter counts a result stream that Close must wait for (a taken-over SSE
// connection, a WebSocket: net/http's Shutdown sees neither); false once
// Close began. leave must be called when the stream ends.
func (s *server) enter() (leave func(), ok bool) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil, false
	}
	s.streams.Add(1)
	return s.streams.Done, true
}
