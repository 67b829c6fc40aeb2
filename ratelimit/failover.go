package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-limiter"
)

// failover is a limiter.Store that uses a shared store (Redis) and, while
// that fails, a store of this instance's own (memory): it fails open to
// per-instance limits. See docs/decisions/0009-rate-limit-redis-failure.md.
//
// Why open and not closed: Redis only shares budgets between instances; it
// is not what protects the service. Failing closed would turn a Redis outage
// into a full API outage, and failing open to no limit at all would drop the
// protection exactly when something is already wrong. The memory store keeps
// every client limited, only per instance: with N instances a client can get
// up to N times its budget until Redis is back.
//
// Every call to the shared store is bounded by timeout, so a hung Redis
// costs a request at most that. While the shared store is failing, only one
// request per retry interval tries it again; the others go straight to the
// fallback, so an outage adds no latency to most requests and no load to a
// Redis that is coming back.
type failover struct {
	shared, local limiter.Store
	timeout       time.Duration
	retry         time.Duration
	log           *slog.Logger
	errors        prometheus.Counter
	degraded      prometheus.Gauge

	// nextTry is 0 while the shared store works; during an outage it is the
	// Unix time in ns after which one request may try the shared store again.
	nextTry atomic.Int64

	mu       sync.Mutex // guards the outage record below
	down     bool
	since    time.Time
	failures int
}

var _ limiter.Store = (*failover)(nil)

// use reports whether this call should go to the shared store.
func (f *failover) use() bool {
	next := f.nextTry.Load()
	if next == 0 {
		return true
	}
	now := time.Now().UnixNano()
	if now < next {
		return false
	}
	// One caller wins the retry; the others keep using the fallback.
	return f.nextTry.CompareAndSwap(next, now+int64(f.retry))
}

// call runs op against the shared store within the timeout. It reports
// whether op succeeded; on failure the caller must use the fallback.
func (f *failover) call(ctx context.Context, op func(context.Context) error) bool {
	if !f.use() {
		return false
	}
	// A client that hangs up must not count as a Redis failure, so the
	// request's cancellation is dropped and only the timeout bounds the call.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
	defer cancel()
	start := time.Now()
	if err := op(ctx); err != nil {
		f.failed(err)
		return false
	}
	if f.nextTry.Load() != 0 {
		f.recovered(start)
	}
	return true
}

// failed counts a failed call and, on the first of an outage, logs it.
func (f *failover) failed(err error) {
	f.errors.Inc()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	f.nextTry.Store(time.Now().Add(f.retry).UnixNano())
	if f.down {
		return
	}
	f.down, f.since, f.failures = true, time.Now(), 1
	f.degraded.Set(1)
	f.log.Warn("rate limit store unavailable; limiting per instance until it is back",
		slog.Any("error", err), slog.Duration("retry_every", f.retry))
}

// recovered ends an outage, unless the call that succeeded began before it:
// a slow success from before must not hide the failure that followed.
func (f *failover) recovered(callStart time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.down || callStart.Before(f.since) {
		return
	}
	f.log.Info("rate limit store is back; limits are shared again",
		slog.Duration("outage", time.Since(f.since)), slog.Int("failed_calls", f.failures))
	f.down = false
	f.degraded.Set(0)
	f.nextTry.Store(0)
}

func (f *failover) Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error) {
	if f.call(ctx, func(ctx context.Context) error {
		tokens, remaining, reset, ok, err = f.shared.Take(ctx, key)
		return err
	}) {
		return tokens, remaining, reset, ok, nil
	}
	return f.local.Take(ctx, key)
}

func (f *failover) Get(ctx context.Context, key string) (tokens, remaining uint64, err error) {
	if f.call(ctx, func(ctx context.Context) error {
		tokens, remaining, err = f.shared.Get(ctx, key)
		return err
	}) {
		return tokens, remaining, nil
	}
	return f.local.Get(ctx, key)
}

func (f *failover) Set(ctx context.Context, key string, tokens uint64, interval time.Duration) error {
	if f.call(ctx, func(ctx context.Context) error { return f.shared.Set(ctx, key, tokens, interval) }) {
		return nil
	}
	return f.local.Set(ctx, key, tokens, interval)
}

func (f *failover) Burst(ctx context.Context, key string, tokens uint64) error {
	if f.call(ctx, func(ctx context.Context) error { return f.shared.Burst(ctx, key, tokens) }) {
		return nil
	}
	return f.local.Burst(ctx, key, tokens)
}

// Close closes both stores; the caller owns neither once it is built.
func (f *failover) Close(ctx context.Context) error {
	return joinClose(ctx, f.shared, f.local)
}
