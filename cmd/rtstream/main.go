// Command rtstream is the rtstream server: the HTTP API, the processing router
// and the fan-out of results, wired to Kafka. It is the only place that reads
// the environment or handles signals.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	gometrics "github.com/rcrowley/go-metrics"
	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/fanout"
	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/ratelimit"
	"github.com/rtstream/rtstream/router"
)

func main() {
	// Sarama records every request in go-metrics histograms that nothing here
	// reads (rtstream exports its own Prometheus series); under load they
	// took ~3.5% of the server's CPU. Sarama documents this process-wide
	// switch for turning them off, so it is set once, here, before any
	// client exists.
	gometrics.UseNilMetrics = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rtstream:", err)
		os.Exit(1)
	}
}

// run starts the server and blocks until ctx is done, then shuts down in order:
// HTTP (stop accepting, end result feeds, finish sends) → router → results
// follower → registry → publisher → embedded broker.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	dotenv, err := loadDotEnv(".env")
	if err != nil {
		return fmt.Errorf("reading .env: %w", err)
	}
	env := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return dotenv[k]
	}
	cfg, err := parseConfig(env)
	if err != nil {
		return err
	}
	log, err := observability.NewLogger(stdout, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	// go-redis logs through one process-wide logger and offers no
	// per-client one; unset, it writes plain lines into the JSON log.
	redis.SetLogger(observability.PrintfLogger{Log: log, Component: "redis"})

	if len(cfg.Brokers) == 0 {
		dir := filepath.Join(cfg.DataDir, "kafka")
		broker, err := pubsub.StartEmbedded(dir)
		if err != nil {
			return err
		}
		defer broker.Close()
		cfg.Brokers = []string{broker.Addr()}
		log.Warn("KAFKA_BROKERS is not set: using the EMBEDDED single-node development broker. "+
			"It has no replication and is not for production; set KAFKA_BROKERS to use Kafka.",
			"addr", broker.Addr(), "data_dir", dir)
	}

	kcfg := pubsub.Config{
		Brokers:     cfg.Brokers,
		TopicPrefix: cfg.TopicPrefix,
		Partitions:  int32(cfg.Partitions),
		Replication: int16(cfg.Replication),
	}
	reg := observability.NewRegistry()
	var metrics *observability.Metrics
	if !cfg.MetricsDisabled {
		t := kcfg.Topics()
		metrics = observability.NewMetrics(reg, t.Events, t.Results, t.Poison)
	}

	startCtx, cancelStart := context.WithTimeout(ctx, 60*time.Second)
	defer cancelStart()
	if err := pubsub.EnsureTopics(startCtx, kcfg); err != nil {
		return err
	}

	// The API and the router publish through producers of their own, so
	// that neither waits behind the other's in-flight request.
	pub, err := pubsub.NewPublisher(kcfg, cfg.SendTimeout, 1, metrics)
	if err != nil {
		return err
	}
	defer pub.Close()
	routerPub, err := pubsub.NewPublisher(kcfg, 0, cfg.RouterProducers, metrics)
	if err != nil {
		return err
	}
	defer routerPub.Close()

	registry, err := pubsub.OpenRegistry(startCtx, kcfg, log)
	if err != nil {
		return err
	}
	defer registry.Close()

	deadLetters, err := pubsub.OpenDeadLetters(kcfg)
	if err != nil {
		return err
	}
	defer deadLetters.Close()

	results, err := pubsub.OpenResults(kcfg, log)
	if err != nil {
		return err
	}
	defer results.Close()
	hub := fanout.New(fanout.Config{Source: results, Exists: registry.Has, Logger: log,
		OnSlow: metrics.SlowDisconnect, OnResume: metrics.Resumed})
	registry.OnDelete(hub.End)
	if err := hub.Start(); err != nil {
		return err
	}

	wlog := watermill.NewSlogLogger(log.With("component", "watermill"))
	group := cfg.TopicPrefix + "-router"
	var sub message.Subscriber
	if sub, err = pubsub.NewSubscriber(kcfg, group, wlog); err != nil {
		return err
	}
	var routerOut message.Publisher = routerPub
	var wm *wmetrics.PrometheusMetricsBuilder
	if metrics != nil {
		b := wmetrics.NewPrometheusMetricsBuilder(reg, "rtstream", "watermill")
		wm = &b
		if sub, err = wm.DecorateSubscriber(sub); err != nil {
			return err
		}
		if routerOut, err = wm.DecoratePublisher(routerOut); err != nil {
			return err
		}
	}
	marks, err := pubsub.OpenMarks(kcfg)
	if err != nil {
		return err
	}
	defer marks.Close()
	crashGuard := router.NewCrashGuard(marks, log.With("component", "router"), metrics)
	rt, err := router.New(router.Config{
		CrashGuard:        crashGuard,
		Topics:            kcfg.Topics(),
		Streams:           registry,
		ConsumerGroup:     group,
		ThrottlePerSecond: int64(cfg.Throttle),
		Metrics:           metrics,
	}, sub, routerOut, wlog)
	if err != nil {
		return err
	}
	if wm != nil {
		wm.AddPrometheusRouterMetrics(rt)
	}

	routerCtx, stopRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouter()
	routerDone := make(chan error, 1)
	go func() { routerDone <- rt.Run(routerCtx) }()
	select {
	case <-rt.Running():
	case err := <-routerDone:
		return fmt.Errorf("router: %w", err)
	case <-ctx.Done():
		return nil
	}

	ready := map[string]handlers.Check{
		"kafka":  registry.Ping,
		"fanout": results.Check,
		"router": func(context.Context) error {
			if !rt.IsRunning() {
				return errors.New("not running")
			}
			return nil
		},
	}
	// Background gauges (readiness, router, consumer lag) until shutdown.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	defer func() {
		stopBackground()
		background.Wait()
	}()
	if metrics != nil {
		background.Add(2)
		go func() {
			defer background.Done()
			watchReadiness(bgCtx, ready, rt.IsRunning, metrics, 5*time.Second)
		}()
		go func() {
			defer background.Done()
			if err := pubsub.MonitorLag(bgCtx, kcfg, group, results, metrics, log, 5*time.Second); err != nil {
				log.Warn("consumer lag monitor stopped", "err", err)
			}
		}()
	}

	auth, err := newAuth(ctx, cfg, stdout, reg)
	if err != nil {
		return err
	}
	if cfg.AuthDisabled {
		log.Warn("AUTHENTICATION IS DISABLED (AUTH_DISABLED=true): every route is served to anyone without a key; never run this way where the port is reachable")
	}
	origins, err := middleware.ParseOrigins(cfg.CORSOrigins)
	if err != nil {
		return err
	}
	trusted, err := ratelimit.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	limiter, err := ratelimit.New(ratelimit.Config{
		RPS:          cfg.RateLimitRPS,
		Burst:        cfg.RateLimitBurst,
		RedisURL:     cfg.RedisURL,
		RedisTimeout: cfg.RedisTimeout,
		Registerer:   reg,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	defer limiter.Close(context.Background())
	// Closed after the HTTP server (defers run in reverse), so no send is
	// left holding a claim it cannot complete.
	idem, err := newIdempotency(cfg, log)
	if err != nil {
		return err
	}
	defer idem.Close()
	// The key limit applies to authenticated principals only: with auth
	// disabled every client is "anonymous", and one shared bucket would
	// make the whole server one client's budget.
	keyID := func(r *http.Request) (string, bool) {
		p, ok := middleware.PrincipalFrom(r.Context())
		return p.ID, ok && p.ID != middleware.Anonymous
	}

	var metricsHandler http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if cfg.MetricsAuth {
		metricsHandler = auth.Middleware(metricsHandler)
	}

	api := handlers.NewServer(handlers.Deps{
		Config: handlers.Config{
			MaxBodyBytes:     cfg.MaxBodyBytes,
			MaxBatch:         cfg.MaxBatch,
			Heartbeat:        cfg.Heartbeat,
			SendTimeout:      cfg.SendTimeout,
			ReadTimeout:      cfg.ReadTimeout,
			MaxStreams:       cfg.MaxStreams,
			MaxStreamsPerKey: cfg.MaxStreamsPerKey,
		},
		// The client IP is resolved first: the access log and the IP limit
		// both use it. The IP limit runs before auth (it protects auth), the
		// key limit after it.
		Outer:          []func(http.Handler) http.Handler{ratelimit.ResolveClientIP(trusted), middleware.SecureHeaders, middleware.CORS(origins)},
		ClientIP:       func(r *http.Request) string { return ratelimit.ClientIP(r.Context()) },
		Guard:          []func(http.Handler) http.Handler{limiter.IP(), auth.Middleware, limiter.Key(keyID)},
		Origins:        origins,
		Logger:         log,
		Streams:        registry,
		DeadLetters:    deadLetters,
		Events:         pubsub.NewEvents(kcfg, pub),
		Subscribe:      hub.Feed,
		Ready:          ready,
		MetricsHandler: metricsHandler,
		Metrics:        metrics,
		Idempotency:    idempotencyAdapter{idem},
	})

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler: api,
		// No ReadTimeout or WriteTimeout: either would cut result streams.
		// Non-streaming routes bound their reads themselves, streaming ones
		// bound each write.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers; result feeds never end by themselves, so
	// end them as soon as shutdown begins.
	srv.RegisterOnShutdown(hub.Close)
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("rtstream listening", "addr", ln.Addr().String(), "brokers", cfg.Brokers, "topic_prefix", cfg.TopicPrefix)

	select {
	case <-ctx.Done():
	case err := <-serveDone:
		return fmt.Errorf("http: %w", err)
	case err := <-routerDone:
		return fmt.Errorf("router stopped: %w", err)
	}

	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	stopRouter()
	if err := <-routerDone; err != nil {
		log.Warn("router shutdown", "err", err)
	}
	// Its own deadline: draining subscribers may have used up the grace.
	releaseCtx, cancelRelease := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelRelease()
	if err := crashGuard.Release(releaseCtx); err != nil {
		log.Warn("router shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// watchReadiness keeps the readiness and router gauges current for alerts,
// which must not depend on someone polling /readyz.
func watchReadiness(ctx context.Context, checks map[string]handlers.Check, routerRunning func() bool, m *observability.Metrics, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ok := true
		for _, check := range checks {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if check(cctx) != nil {
				ok = false
			}
			cancel()
		}
		m.Ready(ok)
		m.RouterRunning(routerRunning())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
