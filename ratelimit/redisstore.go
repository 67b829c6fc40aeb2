package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-limiter"
)

// redisStore keeps token buckets in Redis so that every instance draws on
// the same budget. Each bucket is one hash, changed only by Lua scripts, so a
// take is one atomic round trip whatever the number of instances.
//
// The bucket is GCRA, the token bucket written as one timestamp: "tat", the
// time at which the bucket will be full again, in microseconds of Redis's own
// clock (TIME), so instances whose clocks disagree still agree on budgets.
// A take is allowed when, after it, the bucket would not be more than a
// whole burst behind: tat+emission-now <= burst*emission. Tokens come back
// one every emission interval (1/RPS), not a window at a time.
//
// We wrote the script rather than use redis_rate: that library has no
// counterpart for go-limiter's Set and Burst, wants an integer rate per
// period (RATE_LIMIT_RPS is a float), and the script is short enough to read.
type redisStore struct {
	client    redis.UniversalClient
	prefix    string
	burst     uint64
	emission  time.Duration // time for one token to come back: 1/RPS
	setTTL    time.Duration // how long Set's and Burst's changes outlive the last use
	closeFunc func() error
}

var _ limiter.Store = (*redisStore)(nil)

// takeScript takes a token (ARGV[3] == "1") or only looks (ARGV[3] == "0").
// KEYS[1] is the bucket; ARGV[1] the default burst; ARGV[2] the default
// emission interval in microseconds; ARGV[4] the TTL in ms that a bucket
// changed by Set or Burst keeps. Fields b and e override the burst and the
// emission interval (Set); x counts extra tokens (Burst), spent only when the
// bucket itself is empty. Numbers are written with %.0f: Lua's own
// conversion keeps 14 digits, and microseconds since 1970 have 16.
//
// It returns {allowed, burst, remaining, wait_us}: wait_us is how long until
// the bucket is full again or, when the take was refused, until a token is
// back.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 'tat', 'b', 'e', 'x')
local burst = tonumber(v[2]) or tonumber(ARGV[1])
local em = tonumber(v[3]) or tonumber(ARGV[2])
local extra = tonumber(v[4]) or 0
local tat = tonumber(v[1]) or now
if tat < now then tat = now end
local window = burst * em
local allowed = 0
if ARGV[3] == '1' then
  if tat + em - now <= window then
    allowed = 1
    tat = tat + em
    redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
  elseif extra > 0 then
    allowed = 1
    extra = extra - 1
    if extra > 0 then
      redis.call('HSET', KEYS[1], 'x', string.format('%.0f', extra))
    else
      redis.call('HDEL', KEYS[1], 'x')
    end
  end
  local ttl = math.ceil((tat - now) / 1000) + 1000
  if v[2] or extra > 0 then
    ttl = math.max(ttl, tonumber(ARGV[4]))
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local remaining = math.floor((now + window - tat) / em)
if remaining < 0 then remaining = 0 end
remaining = remaining + extra
local wait = tat - now
if ARGV[3] == '1' and allowed == 0 then
  wait = tat + em - window - now
end
return {allowed, burst, remaining, math.ceil(wait)}
`)

// setScript replaces a bucket with a full one of ARGV[1] tokens that come
// back one every ARGV[2] microseconds; it lasts ARGV[3] ms past its last use.
var setScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// burstScript adds ARGV[1] extra tokens to a bucket; they last at least
// ARGV[2] ms.
var burstScript = redis.NewScript(`
redis.call('HINCRBY', KEYS[1], 'x', ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= 0 and ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// Take takes a token from key's bucket. reset is, in Unix nanoseconds, when
// the bucket is full again or, when the take was refused, when the next
// token is back: the earliest retry that can succeed.
func (s *redisStore) Take(ctx context.Context, key string) (tokens, remaining, reset uint64, ok bool, err error) {
	res, err := takeScript.Run(ctx, s.client, []string{s.prefix + key},
		s.burst, micros(s.emission), "1", s.setTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, 0, false, fmt.Errorf("redis rate limit take: %w", err)
	}
	if len(res) != 4 {
		return 0, 0, 0, false, fmt.Errorf("redis rate limit take: script answered %d values, want 4", len(res))
	}
	reset = uint64(time.Now().Add(time.Duration(res[3]) * time.Microsecond).UnixNano())
	return uint64(res[1]), uint64(res[2]), reset, res[0] == 1, nil
}

// Get returns key's burst and the tokens it has now, without taking one.
func (s *redisStore) Get(ctx context.Context, key string) (tokens, remaining uint64, err error) {
	res, err := takeScript.Run(ctx, s.client, []string{s.prefix + key},
		s.burst, micros(s.emission), "0", s.setTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("redis rate limit get: %w", err)
	}
	if len(res) != 4 {
		return 0, 0, fmt.Errorf("redis rate limit get: script answered %d values, want 4", len(res))
	}
	return uint64(res[1]), uint64(res[2]), nil
}

// Set gives key a full bucket of tokens that refills completely over
// interval, as go-limiter's memorystore does.
func (s *redisStore) Set(ctx context.Context, key string, tokens uint64, interval time.Duration) error {
	if tokens == 0 || interval <= 0 {
		return fmt.Errorf("redis rate limit set: need tokens > 0 and interval > 0, got %d and %v", tokens, interval)
	}
	err := setScript.Run(ctx, s.client, []string{s.prefix + key},
		tokens, micros(interval/time.Duration(tokens)), s.setTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("redis rate limit set: %w", err)
	}
	return nil
}

// Burst gives key tokens extra tokens beyond its burst, spent once the
// bucket itself is empty.
func (s *redisStore) Burst(ctx context.Context, key string, tokens uint64) error {
	if err := burstScript.Run(ctx, s.client, []string{s.prefix + key}, tokens, s.setTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("redis rate limit burst: %w", err)
	}
	return nil
}

// Close closes the Redis client, when the store owns it.
func (s *redisStore) Close(context.Context) error {
	if s.closeFunc == nil {
		return nil
	}
	if err := s.closeFunc(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// micros is d in whole microseconds, at least 1, so a very high RPS cannot
// make the emission interval zero (and every take free).
func micros(d time.Duration) int64 {
	return max(1, int64(math.Round(float64(d)/float64(time.Microsecond))))
}
