// Package ratelimit limits rtstream's HTTP API per client IP and per API key
// with token buckets: a client may send Burst requests at once, and its
// bucket refills at RPS requests a second. In Redis a token comes back every
// 1/RPS; in memory (go-limiter's fixed intervals) the whole bucket comes back
// every Burst/RPS, the same rate in coarser steps.
//
// ResolveClientIP finds the client behind trusted proxies and ClientIP
// returns it; Limiter.IP, Limiter.Key and Limiter.Limit are the middleware.
// Every limited answer carries RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (IETF draft style, in seconds); a refused one is a 429
// problem+json with Retry-After.
//
// Buckets live in memory (go-limiter's memorystore) or, with a Redis URL, in
// Redis, shared by every instance. When Redis fails the limiter falls back to
// its memory store (fail open to per-instance limits) and goes back to Redis
// when it answers again.
//
// The package reads no environment: cmd does, and passes a Config.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter"
	"github.com/sethvargo/go-limiter/memorystore"
)

// Defaults for the zero fields of Config.
const (
	DefaultRPS                = 100
	DefaultBurst              = 200
	DefaultRedisKeyPrefix     = "rtstream:ratelimit:"
	DefaultRedisTimeout       = 100 * time.Millisecond
	DefaultRedisRetryInterval = time.Second
)

// Config configures a Limiter. Zero fields take the documented defaults.
type Config struct {
	// RPS is the rate at which a bucket refills, in requests per second: the
	// rate a client can keep up. Default 100 (RATE_LIMIT_RPS).
	RPS float64
	// Burst is the size of a bucket: the requests a client may send at once
	// after a quiet spell. Default 200 (RATE_LIMIT_BURST).
	Burst int

	// RedisURL, when set (redis://[user:pass@]host:port/db, rediss:// for
	// TLS), keeps the buckets in Redis so every instance shares one budget
	// per client (REDIS_URL). Empty: each instance limits on its own.
	RedisURL string
	// RedisKeyPrefix starts every Redis key. Default "rtstream:ratelimit:".
	RedisKeyPrefix string
	// RedisTimeout bounds each Redis call, so a hung Redis cannot hang
	// requests; past it the request is limited by the memory store.
	// Default 100 ms (REDIS_TIMEOUT).
	RedisTimeout time.Duration
	// RedisRetryInterval is how often, while Redis fails, one request tries
	// it again; the others use the memory store directly. Default 1 s.
	RedisRetryInterval time.Duration

	// Registerer, when set, receives the limiter's metrics:
	// rtstream_ratelimit_denied_total{limiter}, and with Redis
	// rtstream_ratelimit_store_errors_total and rtstream_ratelimit_store_degraded.
	Registerer prometheus.Registerer
	// Logger receives one line when Redis becomes unavailable and one when
	// it is back. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RPS == 0 {
		c.RPS = DefaultRPS
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.RedisKeyPrefix == "" {
		c.RedisKeyPrefix = DefaultRedisKeyPrefix
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.RedisRetryInterval == 0 {
		c.RedisRetryInterval = DefaultRedisRetryInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first field that cannot work. New calls it after
// filling in the defaults, so zero fields are errors here.
func (c Config) Validate() error {
	switch {
	case !(c.RPS > 0) || math.IsInf(c.RPS, 0):
		return fmt.Errorf("ratelimit: RPS must be a positive number, got %v", c.RPS)
	case c.Burst <= 0:
		return fmt.Errorf("ratelimit: Burst must be positive, got %d", c.Burst)
	case c.RedisTimeout <= 0:
		return fmt.Errorf("ratelimit: RedisTimeout must be positive, got %v", c.RedisTimeout)
	case c.RedisRetryInterval <= 0:
		return fmt.Errorf("ratelimit: RedisRetryInterval must be positive, got %v", c.RedisRetryInterval)
	}
	if float64(c.Burst)/c.RPS > (100 * 365 * 24 * time.Hour).Seconds() {
		return fmt.Errorf("ratelimit: RPS %v is too low for Burst %d (a bucket would take over a century to refill)", c.RPS, c.Burst)
	}
	return nil
}

// refill is how long an empty bucket takes to fill.
func (c Config) refill() time.Duration {
	return time.Duration(float64(c.Burst) / c.RPS * float64(time.Second))
}

// Limiter holds the buckets and metrics behind the rate-limit middleware.
// Close it on shutdown: the memory store runs a sweeper goroutine and the
// Redis client holds connections.
type Limiter struct {
	store  limiter.Store
	denied *prometheus.CounterVec
}

// New builds a Limiter. It does not contact Redis: a Redis that is down at
// start-up is an outage like any other, and the limiter starts on its memory
// store.
func New(cfg Config) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mem, err := newMemoryStore(cfg)
	if err != nil {
		return nil, err
	}
	// Registered like every rtstream metric: promauto on the Registerer
	// given (nil registers nowhere); a second limiter on one registry is a
	// programming error and panics, as for any duplicate metric.
	f := promauto.With(cfg.Registerer)
	l := &Limiter{
		store: mem,
		denied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstream_ratelimit_denied_total",
			Help: "Requests refused with 429, by limiter (ip, key, ...).",
		}, []string{"limiter"}),
	}
	if cfg.RedisURL != "" {
		shared, err := newRedisStore(cfg)
		if err != nil {
			_ = mem.Close(context.Background())
			return nil, err
		}
		fo := &failover{
			shared:  shared,
			local:   mem,
			timeout: cfg.RedisTimeout,
			retry:   cfg.RedisRetryInterval,
			log:     cfg.Logger,
			errors: f.NewCounter(prometheus.CounterOpts{
				Name: "rtstream_ratelimit_store_errors_total",
				Help: "Redis rate-limit calls that failed or timed out; each was answered from this instance's memory store.",
			}),
			degraded: f.NewGauge(prometheus.GaugeOpts{
				Name: "rtstream_ratelimit_store_degraded",
				Help: "1 while Redis is failing and this instance limits on its own, else 0.",
			}),
		}
		l.store = fo
	}
	return l, nil
}

// Close stops the memory store's sweeper and closes the Redis client. After
// Close the middleware lets every request through: the server is stopping.
func (l *Limiter) Close(ctx context.Context) error {
	return joinClose(ctx, l.store)
}

// newMemoryStore maps the token bucket onto memorystore, which refills a
// whole bucket at once at the end of each interval: Burst tokens every
// Burst/RPS. The long-run rate is RPS, as asked; the difference from a true
// token bucket is that the tokens come back together rather than one every
// 1/RPS, so a client that spent its burst waits up to Burst/RPS (2 s with the
// defaults), and one that spends a burst at the end of an interval can spend
// another at the start of the next. Redis buckets refill smoothly.
func newMemoryStore(cfg Config) (limiter.Store, error) {
	interval := max(cfg.refill(), time.Millisecond)
	store, err := memorystore.New(&memorystore.Config{
		Tokens:   uint64(cfg.Burst),
		Interval: interval,
		// An idle bucket is full again after one interval, the same as a new
		// one, so buckets can be dropped soon after: this bounds the memory a
		// scan from many IPs can take (the default keeps them 12 hours).
		SweepInterval: time.Minute,
		SweepMinTTL:   max(2*interval, time.Minute),
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: memory store: %w", err)
	}
	return store, nil
}

// newRedisStore parses cfg.RedisURL into a client that gives up with the
// caller's context instead of retrying: the failover's timeout is the bound.
func newRedisStore(cfg Config) (*redisStore, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		// url.Parse quotes the whole URL in its error, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = &url.Error{Op: ue.Op, URL: "(redacted)", Err: ue.Err}
		}
		return nil, fmt.Errorf("ratelimit: REDIS_URL: %w", err)
	}
	opts.ContextTimeoutEnabled = true // without it go-redis ignores ctx deadlines on reads
	opts.MaxRetries = -1              // a retry cannot fit in the timeout
	opts.DialerRetries = 1
	opts.DisableIdentity = true // saves a CLIENT SETINFO round trip per connection
	client := redis.NewClient(opts)
	return &redisStore{
		client:    client,
		prefix:    cfg.RedisKeyPrefix,
		burst:     uint64(cfg.Burst),
		emission:  time.Duration(float64(time.Second) / cfg.RPS),
		setTTL:    time.Hour + cfg.refill(),
		closeFunc: client.Close,
	}, nil
}

// joinClose closes every store and joins their errors.
func joinClose(ctx context.Context, stores ...limiter.Store) error {
	var errs []error
	for _, s := range stores {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
