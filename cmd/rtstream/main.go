// Command rtstream is the rtstream server: the HTTP API, the processing router
// and the fan-out of results, wired to Kafka. It is the only place that reads
// the environment or handles signals.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gometrics "github.com/rcrowley/go-metrics"
	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/fanout"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/quota"
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

// run starts the server and blocks until ctx is done, then shuts down in
// order: HTTP (stop accepting, end result feeds, finish sends) → router →
// results → registry → publishers → embedded broker.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := configure(getenv, stdout)
	if err != nil {
		return err
	}
	a := &app{cfg: cfg, log: log, reg: observability.NewRegistry()}
	defer a.close()
	if !cfg.MetricsDisabled {
		t := a.kcfg().Topics()
		a.metrics = observability.NewMetrics(a.reg, t.Events, t.Results, t.Poison)
	}
	if err := a.startTracing(ctx); err != nil {
		return err
	}
	if err := a.startKafka(ctx); err != nil {
		return err
	}
	if err := a.startResults(); err != nil {
		return err
	}
	if err := a.startRouter(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	a.startBackground(ctx)
	api, err := a.newAPI(ctx, stdout)
	if err != nil {
		return err
	}
	return a.serve(ctx, api)
}

// configure reads the configuration (environment over .env) and makes the
// logger.
func configure(getenv func(string) string, stdout io.Writer) (config, *slog.Logger, error) {
	dotenv, err := loadDotEnv(".env")
	if err != nil {
		return config{}, nil, fmt.Errorf("reading .env: %w", err)
	}
	cfg, err := parseConfig(func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return dotenv[k]
	})
	if err != nil {
		return config{}, nil, err
	}
	log, err := observability.NewLogger(stdout, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return config{}, nil, err
	}
	// go-redis logs through one process-wide logger and offers no
	// per-client one; unset, it writes plain lines into the JSON log.
	redis.SetLogger(observability.PrintfLogger{Log: log, Component: "redis"})
	return cfg, log, nil
}

// app is the running server's components, in the order they started.
type app struct {
	cfg     config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *observability.Metrics
	tracing *observability.Tracing // nil: off
	closers []func()               // run in reverse by close

	pub, routerPub *pubsub.Publisher
	registry       *pubsub.Registry
	deadLetters    *pubsub.DeadLetters
	sources        *pubsub.Sources
	quotas         *quota.Quotas
	results        *pubsub.Results
	hub            *fanout.Hub
	router         *routerRun
	kafkaTLS       *tls.Config // from KAFKA_TLS_*; nil: plain connections
}

// onClose runs fn when the app closes, before what started earlier.
func (a *app) onClose(fn func()) { a.closers = append(a.closers, fn) }

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

func (a *app) kcfg() pubsub.Config {
	return pubsub.Config{Brokers: a.cfg.Brokers, TopicPrefix: a.cfg.TopicPrefix,
		Partitions: int32(a.cfg.Partitions), Replication: int16(a.cfg.Replication), Linger: a.cfg.KafkaLinger,
		SessionTimeout: a.cfg.KafkaSessionTimeout, HeartbeatInterval: a.cfg.KafkaHeartbeat, InstanceID: a.cfg.KafkaInstanceID,
		TLS: a.kafkaTLS, SASL: pubsub.SASL{Mechanism: a.cfg.KafkaSASLMechanism, User: a.cfg.KafkaSASLUser, Password: a.cfg.KafkaSASLPassword}}
}

// startKafka starts the embedded broker when no brokers are set, makes the
// topics, and opens the publishers, the registry and the dead letters.
func (a *app) startKafka(ctx context.Context) error {
	if len(a.cfg.Brokers) == 0 {
		dir := filepath.Join(a.cfg.DataDir, "kafka")
		broker, err := pubsub.StartEmbedded(dir)
		if err != nil {
			return err
		}
		a.onClose(func() { broker.Close() })
		a.cfg.Brokers = []string{broker.Addr()}
		a.log.Warn("KAFKA_BROKERS is not set: using the EMBEDDED single-node development broker. "+
			"It has no replication and is not for production; set KAFKA_BROKERS to use Kafka.",
			"addr", broker.Addr(), "data_dir", dir)
	}
	if a.cfg.KafkaSASLMechanism == pubsub.SASLPlain && !a.cfg.KafkaTLS {
		a.log.Warn("KAFKA_SASL_MECHANISM=PLAIN without KAFKA_TLS: the Kafka password travels in clear text")
	}
	if a.cfg.KafkaTLS {
		var err error
		if a.kafkaTLS, err = pubsub.LoadTLS(a.cfg.KafkaTLSCA, a.cfg.KafkaTLSCert, a.cfg.KafkaTLSKey); err != nil {
			return err
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	kcfg := a.kcfg()
	if err := kcfg.Validate(); err != nil {
		return err
	}
	if err := pubsub.EnsureTopics(startCtx, kcfg); err != nil {
		return err
	}
	var err error
	// The API and the router publish through producers of their own, so
	// that neither waits behind the other's in-flight request.
	if a.pub, err = pubsub.NewPublisher(kcfg, a.cfg.SendTimeout, 1, a.metrics); err != nil {
		return err
	}
	a.onClose(func() { a.pub.Close() })
	if a.routerPub, err = pubsub.NewPublisher(kcfg, 0, a.cfg.RouterProducers, a.metrics); err != nil {
		return err
	}
	a.onClose(func() { a.routerPub.Close() })
	if a.registry, err = pubsub.OpenRegistry(startCtx, kcfg, a.log); err != nil {
		return err
	}
	a.onClose(func() { a.registry.Close() })
	if a.deadLetters, err = pubsub.OpenDeadLetters(kcfg); err != nil {
		return err
	}
	a.onClose(func() { a.deadLetters.Close() })
	return a.startSources(ctx)
}

// startSources copies the source streams' topics into the events topic, on
// every instance (each source stream's group spreads its partitions), whatever
// SOURCE_TOPICS says now: that list decides which streams may be created.
func (a *app) startSources(ctx context.Context) error {
	var err error
	if a.sources, err = pubsub.OpenSources(pubsub.SourcesConfig{Kafka: a.kcfg(), Log: a.log, Metrics: a.metrics}, a.registry); err != nil {
		return err
	}
	a.onClose(func() { a.sources.Close() })
	a.goBackground(ctx, a.sources.Run)
	return nil
}

// startResults follows the results topic into the fan-out hub.
func (a *app) startResults() error {
	var err error
	if a.results, err = pubsub.OpenResults(a.kcfg(), a.log); err != nil {
		return err
	}
	a.onClose(func() { a.results.Close() })
	a.hub = fanout.New(fanout.Config{Source: a.results, Exists: a.registry.Has, Logger: a.log,
		OnSlow: a.metrics.SlowDisconnect, OnResume: a.metrics.Resumed,
		OnLive:        func(receivedAt time.Time) { a.metrics.AgeAt(observability.AtFollower, receivedAt) },
		Trace:         a.deliveryTrace(),
		OnInvalidUTF8: func(n int) { a.metrics.InvalidUTF8(observability.AtFollower, n) }})
	a.registry.OnDelete(a.hub.End)
	return a.hub.Start()
}

// startBackground keeps the readiness, router and lag gauges current until
// the app closes.
func (a *app) startBackground(ctx context.Context) {
	if a.metrics == nil {
		return
	}
	a.goBackground(ctx, func(ctx context.Context) {
		watchReadiness(ctx, a.readyChecks(), a.router.rt.IsRunning, a.metrics, 5*time.Second)
	})
	a.goBackground(ctx, func(ctx context.Context) {
		if err := pubsub.MonitorLag(ctx, a.kcfg(), a.router.group, a.results, a.metrics, a.log, 5*time.Second); err != nil {
			a.log.Warn("consumer lag monitor stopped", "err", err)
		}
	})
}

// goBackground runs fn in a goroutine the app owns: it runs until the app
// closes (not when ctx ends: shutdown needs it until then), and close
// waits for it.
func (a *app) goBackground(ctx context.Context, fn func(context.Context)) {
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(bgCtx)
	}()
	a.onClose(func() {
		stop()
		<-done
	})
}
