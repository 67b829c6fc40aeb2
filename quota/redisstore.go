package quota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStore keeps the counts in Redis so that every instance enforces the
// same quotas. Leases and the byte bucket change only through Lua scripts
// that read Redis's own clock (TIME): each is one atomic round trip, and
// instances whose clocks disagree still agree on what expired and what fits.
// Every script touches one key, so the store also works on a Redis Cluster.
//
// Keys, after the prefix (tenant as keyTenant writes it):
//
//	held:<tenant>               sorted set: lease id → expiry, ms of Redis's clock
//	bytes:<tenant>              string: the byte bucket's tat, µs of Redis's clock
//	use:<tenant>:m:<unix min>   hash: r (requests) and b (bytes) of one minute
//	use:<tenant>:h:<unix hour>  hash: the same for one hour
//
// The usage buckets are named by this instance's clock (time.Now), not
// Redis's: they are written with plain commands in one pipeline, and an
// instance whose clock is off by a second moves a few requests into the
// neighbouring bucket of a statistic, which no quota depends on.
type redisStore struct {
	client   redis.UniversalClient
	prefix   string
	leaseTTL time.Duration
	// now names the usage buckets; tests set it to cross minute and hour
	// boundaries without waiting.
	now func() time.Time
}

var _ store = (*redisStore)(nil)

// How long usage buckets outlive their minute (hour): a little more than
// the longest window that reads them, so a read never misses a bucket.
const (
	minuteBucketTTL = 2 * time.Hour
	hourBucketTTL   = 26 * time.Hour
)

// renewBatch bounds the ids of one renew script, so that a tenant with
// thousands of connections does not block Redis for one long script.
const renewBatch = 500

func newRedisStore(client redis.UniversalClient, prefix string, leaseTTL time.Duration) store {
	return &redisStore{client: client, prefix: prefix, leaseTTL: leaseTTL, now: time.Now}
}

// nowMS is the Lua that sets now to Redis's clock in milliseconds.
const nowMS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// acquireScript adds lease ARGV[1] to the set KEYS[1] unless ARGV[2] live
// leases are there already; ARGV[3] is the lease TTL in ms. A lease has
// expired when its score is <= now. It returns {held, ok}. An id already
// held is renewed, so a retried acquire does not count twice. The key
// outlives its last lease by a second: a tenant that goes away leaves
// nothing behind.
var acquireScript = redis.NewScript(nowMS + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local n = redis.call('ZCARD', KEYS[1])
local exp = string.format('%.0f', now + tonumber(ARGV[3]))
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], exp, ARGV[1])
elseif n < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], exp, ARGV[1])
  n = n + 1
else
  return {n, 0}
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
return {n, 1}
`)

// renewScript pushes the expiry of leases ARGV[2..] of KEYS[1] to now +
// ARGV[1] ms. Expired leases are removed first and ZADD XX adds no member,
// so a lease that expired (or was released) stays gone: it was counted out
// already, and bringing it back could put the tenant over its limit.
var renewScript = redis.NewScript(nowMS + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local exp = string.format('%.0f', now + tonumber(ARGV[1]))
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
return 1
`)

// heldScript counts the live leases of KEYS[1] (score > now); it writes
// nothing, the next acquire or renew removes the expired ones.
var heldScript = redis.NewScript(nowMS + `
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
`)

// takeScript is weighted GCRA, as in ratelimit/redisstore.go, with the
// whole state in one string: tat, in µs of Redis's clock, when the bucket is
// full again. Taking n bytes pushes tat by their cost, ARGV[1] µs; it is
// allowed when tat is then at most the burst window, ARGV[2] µs (one
// second: a burst of rate bytes), ahead of now. It returns {ok, wait_us},
// wait_us being, when refused, how long until the take would fit. The key
// expires a second after the bucket is full again, when it holds nothing
// a new bucket would not. Numbers are written with %.0f: Lua's own
// conversion keeps 14 digits, and microseconds since 1970 have 16.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + tonumber(ARGV[1])
local ahead = tat - now
local window = tonumber(ARGV[2])
if ahead > window then
  return {0, math.ceil(ahead - window)}
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil(ahead / 1000) + 1000)
return {1, 0}
`)

func (s *redisStore) key(kind, tenant string) string {
	return s.prefix + kind + ":" + keyTenant(tenant)
}

func (s *redisStore) acquire(ctx context.Context, tenant, id string, limit int) (int64, bool, error) {
	res, err := acquireScript.Run(ctx, s.client, []string{s.key("held", tenant)},
		id, limit, s.leaseTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("redis quota acquire: %w", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("redis quota acquire: script answered %d values, want 2", len(res))
	}
	return res[0], res[1] == 1, nil
}

func (s *redisStore) release(ctx context.Context, tenant, id string) error {
	if err := s.client.ZRem(ctx, s.key("held", tenant), id).Err(); err != nil {
		return fmt.Errorf("redis quota release: %w", err)
	}
	return nil
}

func (s *redisStore) renew(ctx context.Context, tenant string, ids []string) error {
	key := s.key("held", tenant)
	for len(ids) > 0 {
		batch := ids[:min(len(ids), renewBatch)]
		ids = ids[len(batch):]
		args := make([]any, 0, 1+len(batch))
		args = append(args, s.leaseTTL.Milliseconds())
		for _, id := range batch {
			args = append(args, id)
		}
		if err := renewScript.Run(ctx, s.client, []string{key}, args...).Err(); err != nil {
			return fmt.Errorf("redis quota renew: %w", err)
		}
	}
	return nil
}

func (s *redisStore) held(ctx context.Context, tenant string) (int64, error) {
	n, err := heldScript.Run(ctx, s.client, []string{s.key("held", tenant)}).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis quota held: %w", err)
	}
	return n, nil
}

// take charges n bytes to the tenant's bucket; see takeScript. A take over
// the burst is refused here, without a round trip: it can never fit.
func (s *redisStore) take(ctx context.Context, tenant string, n, rate int64) (bool, time.Duration, error) {
	if rate <= 0 || n <= 0 {
		return true, 0, nil
	}
	if n > rate {
		return false, overBurstWait(n, rate), nil
	}
	res, err := takeScript.Run(ctx, s.client, []string{s.key("bytes", tenant)},
		bucketCost(n, rate, time.Microsecond), time.Second.Microseconds()).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("redis quota take: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redis quota take: script answered %d values, want 2", len(res))
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

func (s *redisStore) useKey(tenant, unit string, at int64) string {
	return s.key("use", tenant) + ":" + unit + ":" + strconv.FormatInt(at, 10)
}

func (s *redisStore) count(ctx context.Context, tenant string, requests, n int64) error {
	now := s.now().Unix()
	minute, hour := s.useKey(tenant, "m", now/60), s.useKey(tenant, "h", now/3600)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, minute, "r", requests)
		p.HIncrBy(ctx, minute, "b", n)
		p.Expire(ctx, minute, minuteBucketTTL)
		p.HIncrBy(ctx, hour, "r", requests)
		p.HIncrBy(ctx, hour, "b", n)
		p.Expire(ctx, hour, hourBucketTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis quota count: %w", err)
	}
	return nil
}

// windows reads the 60 minute and 24 hour buckets in one pipeline and sums
// them as windowsOf documents.
func (s *redisStore) windows(ctx context.Context, tenant string) ([]Window, error) {
	now := s.now()
	minute, hour := now.Unix()/60, now.Unix()/3600
	var minCmds [60]*redis.SliceCmd
	var hourCmds [24]*redis.SliceCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range minCmds {
			minCmds[i] = p.HMGet(ctx, s.useKey(tenant, "m", minute-int64(i)), "r", "b")
		}
		for i := range hourCmds {
			hourCmds[i] = p.HMGet(ctx, s.useKey(tenant, "h", hour-int64(i)), "r", "b")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis quota windows: %w", err)
	}
	var mins [60]counts
	var hours [24]counts
	for i, c := range minCmds {
		if mins[i], err = bucketCounts(c); err != nil {
			return nil, err
		}
	}
	for i, c := range hourCmds {
		if hours[i], err = bucketCounts(c); err != nil {
			return nil, err
		}
	}
	return windowsOf(now, mins, hours), nil
}

// bucketCounts parses HMGET r b; a missing bucket (or field) is zero.
func bucketCounts(c *redis.SliceCmd) (counts, error) {
	var out counts
	vals := c.Val()
	for i, dst := range []*int64{&out.requests, &out.bytes} {
		if i >= len(vals) || vals[i] == nil {
			continue
		}
		str, ok := vals[i].(string)
		if !ok {
			return counts{}, fmt.Errorf("redis quota windows: %s: field is %T, want a string", c.Args()[1], vals[i])
		}
		n, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return counts{}, fmt.Errorf("redis quota windows: %s: %w", c.Args()[1], err)
		}
		*dst = n
	}
	return out, nil
}

// maxKeyTenant bounds a tenant's part of a key; longer ones are hashed.
const maxKeyTenant = 128

// keyTenant is tenant as it appears in a key. Tenant names come from API
// keys and JWT subjects, which may hold anything: a ':' could make one
// tenant's key look like another's, braces would choose a Cluster hash slot,
// and an unbounded subject makes unbounded keys. So a tenant made of
// [a-z0-9._:-] (every key name and key id) is kept as it is, readable in
// redis-cli; any other byte is written %XX; and a result longer than
// maxKeyTenant becomes "~" and 32 hex digits of its SHA-256. The three forms
// cannot collide: only escaped ones have '%', only hashed ones have '~'.
// The suffixes after a tenant (":m:<digits>") are read from the right
// (the last ':' starts the digits), so they cannot make two tenants' keys
// equal either.
func keyTenant(tenant string) string {
	clean := true
	for i := range len(tenant) {
		if !keySafe(tenant[i]) {
			clean = false
			break
		}
	}
	if clean && len(tenant) <= maxKeyTenant {
		return tenant
	}
	var b strings.Builder
	for i := range len(tenant) {
		if c := tenant[i]; keySafe(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() <= maxKeyTenant {
		return b.String()
	}
	sum := sha256.Sum256([]byte(tenant))
	return "~" + hex.EncodeToString(sum[:16])
}

func keySafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}
