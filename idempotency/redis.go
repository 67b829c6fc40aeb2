package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for the zero fields of RedisConfig.
const (
	DefaultRedisKeyPrefix = "rtstream:idempotency:"
	DefaultRedisTimeout   = time.Second
)

// RedisConfig configures the Redis store.
type RedisConfig struct {
	Config
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS
	// (REDIS_URL).
	URL string
	// KeyPrefix starts every key; deployments (and tests) sharing one Redis
	// use their own. Default "rtstream:idempotency:".
	KeyPrefix string
	// Timeout bounds each Redis call. A failed call fails the request (503),
	// so it is longer than the rate limiter's, which has a fallback.
	// Default 1 s.
	Timeout time.Duration
	// Logger receives one line when Redis becomes unavailable and one when
	// it is back. Default: discard.
	Logger *slog.Logger
}

// Redis is the Store shared by every instance that uses the same Redis and
// key prefix. Each key is one string: a pending record while its request
// runs, then the answer. Begin is SET-if-absent in a script that also returns
// what was there, so a claim and the check of an existing record are one
// atomic step; Complete and Release compare the exact pending record first,
// so a holder whose claim expired cannot overwrite whoever claimed after it.
type Redis struct {
	client  *redis.Client
	cfg     RedisConfig
	log     *slog.Logger
	mu      sync.Mutex // guards down
	down    bool
	downAt  time.Time
	failed  int
	closeFn func() error
}

var _ Store = (*Redis)(nil)

// record is the value under a key. It is compared as a string by the
// scripts, so it is encoded once and carried in the claim token.
type record struct {
	State       string `json:"s"` // "pending" or "done"
	Nonce       string `json:"n,omitempty"`
	Fingerprint string `json:"f"`
	Status      int    `json:"c,omitempty"`
	Body        []byte `json:"b,omitempty"`
}

// beginScript returns the record under KEYS[1], or sets it to ARGV[1] for
// ARGV[2] ms and returns nil.
var beginScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// completeScript replaces the pending record ARGV[1] with ARGV[2] for ARGV[3]
// ms; it returns 0 when ARGV[1] is no longer there.
var completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// releaseScript deletes the pending record ARGV[1] if it is still there.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// NewRedis returns the Redis store. It does not ping Redis: a Redis that is
// down at start-up is an outage like any other.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	cfg.setDefaults()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultRedisKeyPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		// url.Parse quotes the whole URL in its error, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = &url.Error{Op: ue.Op, URL: "(redacted)", Err: ue.Err}
		}
		return nil, fmt.Errorf("idempotency: REDIS_URL: %w", err)
	}
	opts.ContextTimeoutEnabled = true // without it go-redis ignores ctx deadlines on reads
	opts.MaxRetries = -1              // a retry of a claim whose answer was lost could see its own claim
	opts.DialerRetries = 1
	opts.DisableIdentity = true // saves a CLIENT SETINFO round trip per connection
	client := redis.NewClient(opts)
	return &Redis{client: client, cfg: cfg, log: cfg.Logger, closeFn: client.Close}, nil
}

// Begin claims key or reports what holds it.
func (s *Redis) Begin(ctx context.Context, key, fingerprint string) (Outcome, error) {
	pending, err := json.Marshal(record{State: "pending", Nonce: newToken(), Fingerprint: fingerprint})
	if err != nil {
		return Outcome{}, err
	}
	var v string
	err = s.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = beginScript.Run(ctx, s.client, []string{s.cfg.KeyPrefix + key},
			string(pending), s.cfg.PendingTTL.Milliseconds()).Text()
		if errors.Is(err, redis.Nil) {
			v, err = "", nil
		}
		return err
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("idempotency begin: %w", err)
	}
	if v == "" {
		return Outcome{State: Claimed, Token: string(pending)}, nil
	}
	var rec record
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return Outcome{}, fmt.Errorf("idempotency begin: unreadable record: %w", err)
	}
	switch {
	case rec.Fingerprint != fingerprint:
		return Outcome{State: Mismatch}, nil
	case rec.State == "done":
		return Outcome{State: Replay, Answer: Answer{Status: rec.Status, Body: rec.Body}}, nil
	default:
		return Outcome{State: InFlight}, nil
	}
}

// Complete replaces the claim token with the answer, for the TTL.
func (s *Redis) Complete(ctx context.Context, key, token string, a Answer) error {
	var claim record
	if err := json.Unmarshal([]byte(token), &claim); err != nil || claim.State != "pending" {
		return fmt.Errorf("idempotency complete: not a claim token")
	}
	done, err := json.Marshal(record{State: "done", Fingerprint: claim.Fingerprint, Status: a.Status, Body: a.Body})
	if err != nil {
		return err
	}
	var n int64
	err = s.call(ctx, func(ctx context.Context) error {
		var err error
		n, err = completeScript.Run(ctx, s.client, []string{s.cfg.KeyPrefix + key},
			token, string(done), s.cfg.TTL.Milliseconds()).Int64()
		return err
	})
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	if n == 0 {
		return ErrClaimLost
	}
	return nil
}

// Release deletes the claim if token still holds the key.
func (s *Redis) Release(ctx context.Context, key, token string) error {
	err := s.call(ctx, func(ctx context.Context) error {
		return releaseScript.Run(ctx, s.client, []string{s.cfg.KeyPrefix + key}, token).Err()
	})
	if err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	return nil
}

// Close closes the Redis client.
func (s *Redis) Close() error {
	if err := s.closeFn(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// call runs op within the timeout and keeps the outage record. The request's
// cancellation is dropped: a client hanging up is not a Redis failure, and a
// Complete must land even when its client has gone (its retry will ask).
func (s *Redis) call(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := op(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.failed++
		if !s.down {
			s.down, s.downAt, s.failed = true, time.Now(), 1
			s.log.Warn("idempotency store unavailable; sends with an Idempotency-Key answer 503 until it is back",
				slog.Any("error", err))
		}
	case s.down && !start.Before(s.downAt):
		// Only a call that began after the outage did ends it: a slow
		// success from before must not hide the failure that followed.
		s.log.Info("idempotency store is back",
			slog.Duration("outage", time.Since(s.downAt)), slog.Int("failed_calls", s.failed))
		s.down = false
	}
	return err
}
