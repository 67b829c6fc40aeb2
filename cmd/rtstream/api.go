package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/ratelimit"
)

// newAPI builds the HTTP API: authentication, rate limits, the idempotency
// store and the handlers over the components started before.
func (a *app) newAPI(ctx context.Context, stdout io.Writer) (*handlers.Server, error) {
	if err := a.startQuotas(ctx); err != nil {
		return nil, err
	}
	auth, tokens, err := a.newAuth(ctx, stdout)
	if err != nil {
		return nil, err
	}
	if a.cfg.AuthDisabled {
		a.log.Warn("AUTHENTICATION IS DISABLED (AUTH_DISABLED=true): every route is served to anyone without a key; never run this way where the port is reachable")
	}
	origins, err := middleware.ParseOrigins(a.cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	trusted, err := ratelimit.ParseTrustedProxies(a.cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	limiter, err := ratelimit.New(ratelimit.Config{RPS: a.cfg.RateLimitRPS, Burst: a.cfg.RateLimitBurst,
		RedisURL: a.cfg.RedisURL, RedisTimeout: a.cfg.RedisTimeout, Registerer: a.reg, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.onClose(func() { limiter.Close(context.Background()) })
	// Closed after the HTTP server (closers run in reverse), so no send is
	// left holding a claim it cannot complete.
	idem, err := newIdempotency(a.cfg, a.log)
	if err != nil {
		return nil, err
	}
	a.onClose(func() { idem.Close() })
	// The key limit applies to authenticated principals only: with auth
	// disabled every client is "anonymous", and one shared bucket would
	// make the whole server one client's budget.
	keyID := func(r *http.Request) (string, bool) {
		p, ok := middleware.PrincipalFrom(r.Context())
		return p.ID, ok && p.ID != middleware.Anonymous
	}
	// OpenMetrics when the scraper asks for it (Prometheus does): only that
	// format carries the histograms' exemplars, the trace ids.
	var metricsHandler http.Handler = promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg, EnableOpenMetrics: true})
	if a.cfg.MetricsAuth {
		metricsHandler = auth.Middleware(metricsHandler)
	}
	return handlers.NewServer(handlers.Deps{
		Config: handlers.Config{MaxBodyBytes: a.cfg.MaxBodyBytes, MaxBatch: a.cfg.MaxBatch, Heartbeat: a.cfg.Heartbeat,
			SendTimeout: a.cfg.SendTimeout, ReadTimeout: a.cfg.ReadTimeout,
			MaxStreams: a.cfg.MaxStreams},
		ResolveClientIP: ratelimit.ResolveClientIP(trusted),
		ClientIP:        func(r *http.Request) string { return ratelimit.ClientIP(r.Context()) },
		LimitIP:         limiter.IP(),
		Authenticate:    auth.Middleware,
		LimitKey:        limiter.Key(keyID),
		Origins:         origins,
		Logger:          a.log,
		Streams:         a.registry,
		DeadLetters:     a.deadLetters,
		Events:          pubsub.NewEvents(a.kcfg(), a.pub, a.tracing),
		Subscribe:       a.hub.Feed,
		Ready:           a.readyChecks(),
		MetricsHandler:  metricsHandler,
		Metrics:         a.metrics,
		Idempotency:     idem,
		Tokens:          tokens,
		Sources:         a.sources,
		Quotas:          a.quotas,
		Owned:           a.registry.Owned,
		// Without tenants (API_KEYS only) the connection and byte quotas
		// are per key.
		QuotaPerKey:  a.cfg.APIKeysFile == "" && a.cfg.JWKSURL == "" && a.cfg.JWTPublicKey == "",
		SourceTopics: a.cfg.SourceTopics,
	}), nil
}

// serve serves api until ctx is done or a part fails, then shuts down:
// HTTP first (its feeds end at once, sends finish), then the router.
func (a *app) serve(ctx context.Context, api *handlers.Server) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler: a.tracing.HTTP(api),
		// No ReadTimeout or WriteTimeout: either would cut result streams.
		// Non-streaming routes bound their reads themselves, streaming ones
		// bound each write.
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers; result feeds never end by themselves, so
	// end them as soon as shutdown begins.
	srv.RegisterOnShutdown(a.hub.Close)
	if a.cfg.PprofAddr != "" {
		stopPprof, err := servePprof(a.cfg.PprofAddr, a.log)
		if err != nil {
			return err
		}
		a.onClose(stopPprof)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	a.log.Info("rtstream listening", "addr", ln.Addr().String(), "brokers", a.cfg.Brokers, "topic_prefix", a.cfg.TopicPrefix)
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		return fmt.Errorf("http: %w", err)
	case err := <-a.router.done:
		return fmt.Errorf("router stopped: %w", err)
	}
	// Out of rotation first, still serving: load balancers stop sending
	// new requests during the delay. Then sends in flight finish, and
	// every result stream is told to reconnect (elsewhere).
	api.Drain()
	a.log.Info("shutting down", "drain_delay", a.cfg.DrainDelay, "timeout", a.cfg.ShutdownGrace)
	time.Sleep(a.cfg.DrainDelay)
	// SHUTDOWN_TIMEOUT bounds what follows the delay, as the chart's
	// grace period (preStop + drain + timeout) counts it.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	if err := api.Close(shutdownCtx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	a.router.shutdown(a.log)
	a.log.Info("stopped")
	return nil
}
