package handlers

import (
	"context"
	"math"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/rtstream/rtstream/console"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/openapi"
	"github.com/rtstream/rtstream/problem"
)

// NewServer returns the HTTP API. Every route is listed here.
func NewServer(deps Deps) *Server {
	cfg := deps.Config
	cfg.setDefaults()
	log := deps.Logger
	if log == nil {
		log = discardLogger()
	}
	perKey := cfg.MaxStreamsPerKey
	if deps.Quotas != nil {
		perKey = math.MaxInt // the held-connections quota counts instead, across instances
	}
	s := &server{Deps: deps, cfg: cfg, log: log, conns: newConnLimits(cfg.MaxStreams, perKey)}
	s.sseBuffers.New = newSSEBuffer
	s.replaying = make(chan struct{}, cfg.ReplayWriters)
	s.life, s.endLife = context.WithCancel(context.Background())

	r := chi.NewRouter()
	// The client address is resolved first: the access log and the IP
	// limit use it.
	r.Use(present(deps.ResolveClientIP, middleware.SecureHeaders, middleware.CORS(deps.Origins))...)
	r.Use(middleware.Log(log, deps.ClientIP), middleware.Instrument(deps.Metrics), middleware.Recover(log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110 requires Allow on a 405. chi's own 405 handler sets it,
		// but a custom one is not told the methods, so ask the router.
		if allow := allowedMethods(r, req); allow != "" {
			w.Header().Set("Allow", allow)
		}
		problem.Write(w, req, problem.New(http.StatusMethodNotAllowed, "method not allowed on this route"))
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	// Public documentation of this API: no credential, no rate limit.
	r.Get("/openapi.yaml", openapi.Serve)
	if deps.MetricsHandler != nil {
		r.Method(http.MethodGet, "/metrics", deps.MetricsHandler)
	}
	// The browser console: public files (own CSP); the API calls the page
	// makes carry the key its user types in, through the Guard below.
	r.Handle(console.Path, console.Handler())
	r.Handle(console.Path+"/*", console.Handler())

	r.Group(func(r chi.Router) {
		// The IP limit runs before authentication (it protects it), the
		// key limit after it (it needs the principal).
		r.Use(present(deps.LimitIP, deps.Authenticate, deps.LimitKey)...)
		r.Group(func(r chi.Router) {
			// Routes that read a body answer quickly: bound their reads.
			r.Use(middleware.ReadDeadline(cfg.ReadTimeout))
			r.Post("/v1/streams", s.audit("stream.create", s.need(middleware.ScopeStreamsWrite, s.createStream)))
			r.Get("/v1/streams", s.need(middleware.ScopeStreamsRead, s.listStreams))
			r.Put("/v1/streams/{id}", s.audit("stream.put", s.need(middleware.ScopeStreamsWrite, s.putStream)))
			r.Get("/v1/streams/{id}", s.need(middleware.ScopeStreamsRead, s.getStream))
			r.Get("/v1/streams/{id}/dead-letters", s.need(middleware.ScopeResultsRead, s.deadLetters))
			r.Delete("/v1/streams/{id}", s.audit("stream.delete", s.need(middleware.ScopeStreamsWrite, s.deleteStream)))
			r.Post("/v1/streams/{id}/events", s.need(middleware.ScopeEventsWrite, s.sendEvents))
			r.Get("/v1/usage", s.need(middleware.ScopeStreamsRead, s.usage))
			r.Post("/v1/streams/{id}/tokens", s.audit("token.issue", s.need(middleware.ScopeResultsRead, s.createToken)))
			// Seed-compatible routes: the same handlers, the same rules.
			r.Post("/stream/start", s.audit("stream.create", s.need(middleware.ScopeStreamsWrite, s.createStream)))
			r.Post("/stream/{id}/send", s.need(middleware.ScopeEventsWrite, s.sendEvents))
		})
		// Streaming routes: no read deadline, a write deadline per flush
		// (SSE) or per frame (WebSocket). Sends over a WebSocket need
		// events:write too, checked per frame.
		r.Get("/v1/streams/{id}/results", s.need(middleware.ScopeResultsRead, s.results))
		r.Get("/stream/{id}/results", s.need(middleware.ScopeResultsRead, s.results))
		r.Get("/v1/streams/{id}/ws", s.need(middleware.ScopeResultsRead, s.websocket))
	})
	return &Server{Handler: r, s: s}
}

// allowedMethods lists, for an Allow header, the methods the router serves
// at the request's path ("" when none).
func allowedMethods(mux *chi.Mux, r *http.Request) string {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range []string{
		http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
	} {
		if mux.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

// present is the middleware given, in order, without the nil ones.
func present(mw ...func(http.Handler) http.Handler) []func(http.Handler) http.Handler {
	out := mw[:0:0]
	for _, m := range mw {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}
