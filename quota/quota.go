// Package quota bounds the amounts each tenant may hold and send, where the
// rate limits bound only how often it asks: the streams it owns, the bytes of
// events it sends per second, and the result connections (SSE, WebSocket,
// long polls) it holds at once across every instance. It also keeps what a
// tenant used in the last minute, hour and day, for the usage route. With a
// Redis client the counts are shared by every instance; without one each
// instance counts alone.
package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Limits.
const (
	// DefaultStreams a tenant may own: each costs every instance about
	// 0.5 KiB of registry, so a million streams would be 0.5 GB each.
	DefaultStreams = 10_000
	// DefaultHeldConnections a tenant may hold at once; today's per-key cap
	// on one instance was 100.
	DefaultHeldConnections = 100
	// DefaultIngestBytesPerSecond is 0: no byte rate quota.
	DefaultIngestBytesPerSecond = 0
)

// The quotas, by the names the problems, the usage route and the metrics use.
const (
	Streams         = "streams"
	IngestBytes     = "ingest_bytes_per_second"
	HeldConnections = "held_connections"
)

// Limits are one tenant's quotas; 0 is "no limit" for the byte rate only.
type Limits struct {
	Streams              int   `json:"streams"`
	IngestBytesPerSecond int64 `json:"ingest_bytes_per_second"`
	HeldConnections      int   `json:"held_connections"`
}

// Config configures Quotas.
type Config struct {
	// Defaults apply to every tenant without an override.
	Defaults Limits
	// Tenants override Defaults field by field: a zero field of an
	// override keeps the default (the keys file says only what differs).
	Tenants map[string]Limits
	// Redis, when set, shares every count across instances; nil counts
	// per instance.
	Redis redis.UniversalClient
	// Prefix of the Redis keys. Default "rtstream:quota:".
	Prefix string
	// LeaseTTL is how long a held connection counts after its instance
	// stopped renewing it (the instance died). Default 30 s.
	LeaseTTL time.Duration
	// OnStoreError, if not nil, is told of every store error (logged and
	// counted by the caller); the request it concerned went through.
	OnStoreError func(error)
	// Timeout bounds one store call (a Redis round trip). Default 250 ms.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Defaults.Streams <= 0 {
		c.Defaults.Streams = DefaultStreams
	}
	if c.Defaults.HeldConnections <= 0 {
		c.Defaults.HeldConnections = DefaultHeldConnections
	}
	if c.Prefix == "" {
		c.Prefix = "rtstream:quota:"
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 250 * time.Millisecond
	}
}

// ErrExceeded is wrapped by every *Exceeded.
var ErrExceeded = errors.New("quota exceeded")

// Exceeded says which quota a request would go over, its limit and the use.
type Exceeded struct {
	Quota string
	Limit int64
	Use   int64
	// RetryAfter, for the byte rate, is when the request would fit.
	RetryAfter time.Duration
}

func (e *Exceeded) Error() string {
	if e.Quota == IngestBytes {
		return fmt.Sprintf("quota %s exceeded: limit %d bytes per second; this request is %d bytes", e.Quota, e.Limit, e.Use)
	}
	return fmt.Sprintf("quota %s exceeded: limit %d, in use %d", e.Quota, e.Limit, e.Use)
}

func (e *Exceeded) Unwrap() error { return ErrExceeded }

// Limits returns the tenant's quotas.
func (q *Quotas) Limits(tenant string) Limits {
	l := q.cfg.Defaults
	q.mu.Lock()
	o, ok := q.tenants[tenant]
	q.mu.Unlock()
	if ok {
		if o.Streams > 0 {
			l.Streams = o.Streams
		}
		if o.IngestBytesPerSecond > 0 {
			l.IngestBytesPerSecond = o.IngestBytesPerSecond
		}
		if o.HeldConnections > 0 {
			l.HeldConnections = o.HeldConnections
		}
	}
	return l
}

// CheckStreams refuses one more stream for a tenant that owns owned already.
func (q *Quotas) CheckStreams(tenant string, owned int) error {
	if limit := q.Limits(tenant).Streams; owned >= limit {
		return &Exceeded{Quota: Streams, Limit: int64(limit), Use: int64(owned)}
	}
	return nil
}

// Usage is what the usage route shows: each quota's limit and use (by the
// quota's name), and the requests and event bytes sent in the last minute,
// hour and day (by "minute", "hour", "day").
type Usage struct {
	Tenant string                `json:"tenant"`
	Quotas map[string]QuotaUsage `json:"quotas"`
	Sent   map[string]Sent       `json:"sent"`
}

// QuotaUsage is one quota of Usage. Limit 0 is "no limit".
type QuotaUsage struct {
	Used  int64 `json:"used"`
	Limit int64 `json:"limit"`
}

// Sent is what a tenant sent in one window.
type Sent struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// Window is what a tenant sent in one window, as a store keeps it.
type Window struct {
	Window   string // "1m", "1h", "24h"
	Requests int64
	Bytes    int64
}

// windowNames are the usage route's names of the store's windows.
var windowNames = map[string]string{"1m": "minute", "1h": "hour", "24h": "day"}

// Quotas enforces Config. Its counts live in a store: Redis, or this
// process's memory.
type Quotas struct {
	cfg      Config
	store    store
	failures atomic.Int64

	mu      sync.Mutex
	tenants map[string]Limits // the overrides: Config.Tenants, then SetTenants
	leases  map[string]string // this instance's held leases: id → tenant
	pending map[string]tally  // sends not yet in the store's windows
	// reserves are the bytes taken from the tenants' buckets ahead of
	// their sends (TakeBytes).
	reserves map[string]reserve
}

// tally is what Sent counted since the last flush.
type tally struct{ requests, bytes int64 }

// store keeps the counts; memStore and redisStore implement it.
type store interface {
	// acquire adds lease id to tenant's held connections unless limit of
	// them are held already; it returns the number held (with id when ok).
	acquire(ctx context.Context, tenant, id string, limit int) (held int64, ok bool, err error)
	// release removes the lease.
	release(ctx context.Context, tenant, id string) error
	// renew keeps the leases alive (called every LeaseTTL/3).
	renew(ctx context.Context, tenant string, ids []string) error
	// held counts tenant's live leases.
	held(ctx context.Context, tenant string) (int64, error)
	// take takes n bytes of tenant's bucket, refilled at rate bytes per
	// second up to a burst of one second; when it does not fit, wait is how
	// long until it would.
	take(ctx context.Context, tenant string, n, rate int64) (ok bool, wait time.Duration, err error)
	// count adds requests that sent n bytes in all to tenant's windows.
	count(ctx context.Context, tenant string, requests, n int64) error
	// windows returns the last minute's, hour's and day's sums.
	windows(ctx context.Context, tenant string) ([]Window, error)
}

// New makes Quotas with cfg's store.
func New(cfg Config) *Quotas {
	cfg.setDefaults()
	q := &Quotas{cfg: cfg, tenants: cfg.Tenants, leases: map[string]string{}, pending: map[string]tally{}, reserves: map[string]reserve{}}
	if cfg.Redis != nil {
		q.store = newRedisStore(cfg.Redis, cfg.Prefix, cfg.LeaseTTL)
	} else {
		q.store = newMemStore()
	}
	return q
}

// SetTenants replaces the per-tenant overrides (a keys file reload).
func (q *Quotas) SetTenants(t map[string]Limits) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tenants = t
}

// Acquire counts one more held connection for tenant, or returns an
// *Exceeded. release must be called once when the connection ends. A store
// that fails (Redis down) lets the connection through: a quota must not
// take the service down with its store, and the per-instance cap
// (MAX_SSE_CONNECTIONS) still holds.
func (q *Quotas) Acquire(ctx context.Context, tenant string) (release func(), err error) {
	limit := q.Limits(tenant).HeldConnections
	id := newLeaseID()
	cctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	held, ok, err := q.store.acquire(cctx, tenant, id, limit)
	if err != nil {
		q.storeFailed(err)
		return func() {}, nil
	}
	if !ok {
		return nil, &Exceeded{Quota: HeldConnections, Limit: int64(limit), Use: held}
	}
	q.mu.Lock()
	q.leases[id] = tenant
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		delete(q.leases, id)
		q.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.Timeout)
		defer cancel()
		if err := q.store.release(ctx, tenant, id); err != nil {
			q.storeFailed(err) // the lease expires by itself
		}
	}, nil
}

// Run renews this instance's leases until ctx is done, so that a lease
// outlives its instance by LeaseTTL at most, and hands the sends' tally to
// the store every second (and once more at the end).
func (q *Quotas) Run(ctx context.Context) {
	t := time.NewTicker(q.cfg.LeaseTTL / 3)
	defer t.Stop()
	f := time.NewTicker(time.Second)
	defer f.Stop()
	for {
		select {
		case <-ctx.Done():
			q.flush(context.WithoutCancel(ctx))
			return
		case <-f.C:
			q.flush(ctx)
			continue
		case <-t.C:
		}
		byTenant := map[string][]string{}
		q.mu.Lock()
		for id, tenant := range q.leases {
			byTenant[tenant] = append(byTenant[tenant], id)
		}
		q.mu.Unlock()
		for tenant, ids := range byTenant {
			if err := q.store.renew(ctx, tenant, ids); err != nil {
				q.storeFailed(err)
			}
		}
	}
}

// reserveShare is the part of a second's byte rate an instance takes from
// the shared bucket ahead of its sends, and reserveLife how long it keeps
// what it did not spend: a Redis round trip per send cost 20% of a
// single-event send's throughput (rtbench -phases quota), and with a
// reserve most sends need none. The reserve comes out of the same bucket,
// so the instances together never pass the rate; what expires unspent is
// lost to them for that moment.
const (
	reserveShare = 10 // a tenth of a second's bytes
	reserveLife  = time.Second
)

// reserve is the bytes this instance took from a tenant's bucket and has
// not spent yet.
type reserve struct {
	bytes int64
	until time.Time
}

// TakeBytes charges a send of n event bytes to tenant's byte rate: all or
// nothing, an *Exceeded with RetryAfter when it does not fit. It spends
// this instance's reserve first, and takes more (n's missing part, plus a
// tenth of a second's bytes for the next sends) when it runs short.
func (q *Quotas) TakeBytes(ctx context.Context, tenant string, n int64) error {
	rate := q.Limits(tenant).IngestBytesPerSecond
	if rate <= 0 {
		return nil
	}
	now := time.Now()
	q.mu.Lock()
	r := q.reserves[tenant]
	if now.After(r.until) {
		r = reserve{}
	}
	if r.bytes >= n {
		r.bytes -= n
		q.reserves[tenant] = r
		q.mu.Unlock()
		return nil
	}
	// This send takes what is left of the reserve: no other send may
	// spend it meanwhile.
	delete(q.reserves, tenant)
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	need, extra := n-r.bytes, rate/reserveShare
	ok, wait, err := q.store.take(ctx, tenant, need+extra, rate)
	if err == nil && !ok {
		extra = 0 // without the reserve, the send alone may still fit
		ok, wait, err = q.store.take(ctx, tenant, need, rate)
	}
	if err != nil {
		q.storeFailed(err)
		return nil
	}
	keep := extra
	if !ok {
		keep = r.bytes // not spent: back to the reserve
	}
	q.mu.Lock()
	cur := q.reserves[tenant]
	q.reserves[tenant] = reserve{bytes: cur.bytes + keep, until: now.Add(reserveLife)}
	q.mu.Unlock()
	if !ok {
		return &Exceeded{Quota: IngestBytes, Limit: rate, Use: n, RetryAfter: wait}
	}
	return nil
}

// Sent adds an accepted send of n event bytes to tenant's usage windows.
// It only adds to this instance's tally, which Run hands to the store once
// a second: a store round trip per send would cost the send path more than
// the windows are worth.
func (q *Quotas) Sent(_ context.Context, tenant string, n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending[tenant]
	p.requests++
	p.bytes += n
	q.pending[tenant] = p
}

// flush hands the tally of Sent to the store.
func (q *Quotas) flush(ctx context.Context) {
	q.mu.Lock()
	pending := q.pending
	q.pending = map[string]tally{}
	q.mu.Unlock()
	for tenant, p := range pending {
		cctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
		err := q.store.count(cctx, tenant, p.requests, p.bytes)
		cancel()
		if err != nil {
			q.storeFailed(err) // these sends are missing from the windows
		}
	}
}

// Held counts tenant's held connections across instances.
func (q *Quotas) Held(ctx context.Context, tenant string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	return q.store.held(ctx, tenant)
}

// Usage is tenant's use of each quota (owned: the streams it owns now) and
// what it sent lately.
func (q *Quotas) Usage(ctx context.Context, tenant string, owned int) (Usage, error) {
	q.flush(ctx) // this instance's latest sends too
	l := q.Limits(tenant)
	held, err := q.store.held(ctx, tenant)
	if err != nil {
		return Usage{}, fmt.Errorf("quota: held connections: %w", err)
	}
	sent, err := q.store.windows(ctx, tenant)
	if err != nil {
		return Usage{}, fmt.Errorf("quota: usage windows: %w", err)
	}
	u := Usage{Tenant: tenant, Sent: map[string]Sent{}, Quotas: map[string]QuotaUsage{
		Streams:         {Used: int64(owned), Limit: int64(l.Streams)},
		IngestBytes:     {Used: bytesLastSecond(sent), Limit: l.IngestBytesPerSecond},
		HeldConnections: {Used: held, Limit: int64(l.HeldConnections)},
	}}
	for _, w := range sent {
		u.Sent[windowNames[w.Window]] = Sent{Requests: w.Requests, Bytes: w.Bytes}
	}
	return u, nil
}

// bytesLastSecond estimates the current byte rate from the last minute.
func bytesLastSecond(sent []Window) int64 {
	if len(sent) == 0 {
		return 0
	}
	return sent[0].Bytes / 60
}

// storeFailed notes a store error; the caller goes on as if within quota.
func (q *Quotas) storeFailed(err error) {
	q.failures.Add(1)
	if q.cfg.OnStoreError != nil {
		q.cfg.OnStoreError(err)
	}
}

// StoreFailures counts the store errors so far (each let a request through).
func (q *Quotas) StoreFailures() int64 { return q.failures.Load() }

func newLeaseID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
