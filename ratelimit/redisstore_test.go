package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

func newTestRedisStore(t *testing.T, rps float64, burst int) *redisStore {
	t.Helper()
	cfg := Config{RPS: rps, Burst: burst, RedisURL: testenv.RedisURL(t), RedisKeyPrefix: testPrefix(t)}
	cfg.setDefaults()
	s, err := newRedisStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// TestRedisStore checks the store contract step by step on one key.
func TestRedisStore(t *testing.T) {
	t.Parallel()
	// 1 token a second, burst 2: one token back every second. The steps
	// that depend on time have 500 ms of slack either way (Redis's clock
	// decides, and a loaded CI machine stalls).
	s := newTestRedisStore(t, 1, 2)
	ctx := t.Context()
	const key = "k"

	type step struct {
		name          string
		do            func(t *testing.T) (tokens, remaining uint64, ok bool)
		wantTokens    uint64
		wantRemaining uint64
		wantOK        bool
	}
	take := func(t *testing.T) (uint64, uint64, bool) {
		tok, rem, _, ok, err := s.Take(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok, rem, ok
	}
	getter := func(t *testing.T) (uint64, uint64, bool) {
		tok, rem, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok, rem, true
	}
	steps := []step{
		{"get on a new key: a full bucket", getter, 2, 2, true},
		{"take 1", take, 2, 1, true},
		{"take 2", take, 2, 0, true},
		{"get does not take", getter, 2, 0, true},
		{"take 3 refused", take, 2, 0, false},
		{"a token is back after 1/RPS, not a whole window", func(t *testing.T) (uint64, uint64, bool) {
			time.Sleep(1500 * time.Millisecond)
			return take(t)
		}, 2, 0, true},
		{"set: a full bucket of the new size", func(t *testing.T) (uint64, uint64, bool) {
			if err := s.Set(ctx, key, 5, 50*time.Second); err != nil {
				t.Fatal(err)
			}
			return getter(t)
		}, 5, 5, true},
		{"take from the set bucket", take, 5, 4, true},
		{"burst adds tokens beyond the size", func(t *testing.T) (uint64, uint64, bool) {
			if err := s.Burst(ctx, key, 3); err != nil {
				t.Fatal(err)
			}
			return getter(t)
		}, 5, 7, true},
	}
	for _, st := range steps {
		tok, rem, ok := st.do(t)
		if tok != st.wantTokens || rem != st.wantRemaining || ok != st.wantOK {
			t.Fatalf("%s: tokens %d remaining %d ok %v, want %d %d %v", st.name, tok, rem, ok, st.wantTokens, st.wantRemaining, st.wantOK)
		}
	}
	// The 4 bucket tokens go first, then the 3 extra ones, then no more
	// (the set bucket refills one token per 10 s).
	for i := range 7 {
		if _, _, ok := take(t); !ok {
			t.Fatalf("take %d of the bucket and burst refused", i+1)
		}
	}
	if _, _, ok := take(t); ok {
		t.Fatal("take after bucket and burst were spent allowed")
	}
}

func TestRedisStoreResetAndExpiry(t *testing.T) {
	t.Parallel()
	// 1 token per 10 s, burst 3: a full bucket is 30 s of tokens.
	s := newTestRedisStore(t, 0.1, 3)
	ctx := t.Context()
	var reset uint64
	for range 3 {
		_, _, r, ok, err := s.Take(ctx, "k")
		if err != nil || !ok {
			t.Fatalf("take: ok %v err %v", ok, err)
		}
		reset = r
	}
	// After three takes the bucket is full again in 30 s.
	if d := time.Until(time.Unix(0, int64(reset))); d < 29*time.Second || d > 31*time.Second {
		t.Errorf("reset after the burst in %v, want about 30 s (bucket full)", d)
	}
	_, _, r, ok, err := s.Take(ctx, "k")
	if err != nil || ok {
		t.Fatalf("take 4: ok %v err %v, want refused", ok, err)
	}
	// Refused: the next token, not the full bucket, is what to wait for.
	if d := time.Until(time.Unix(0, int64(r))); d < 9*time.Second || d > 11*time.Second {
		t.Errorf("reset when refused in %v, want about 10 s (next token)", d)
	}
	// The key expires once it would be full again: Redis keeps no idle state.
	ttl, err := s.client.PTTL(ctx, s.prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 29*time.Second || ttl > 32*time.Second {
		t.Errorf("key TTL %v, want about 31 s", ttl)
	}
}

func TestRedisStoreSetRejectsZero(t *testing.T) {
	t.Parallel()
	s := newTestRedisStore(t, 1, 1)
	for _, tc := range []struct {
		tokens   uint64
		interval time.Duration
	}{{0, time.Second}, {1, 0}} {
		if err := s.Set(t.Context(), "k", tc.tokens, tc.interval); err == nil {
			t.Errorf("Set(%d, %v): no error", tc.tokens, tc.interval)
		}
	}
}

func TestRedisStoreAfterClose(t *testing.T) {
	t.Parallel()
	s := newTestRedisStore(t, 1, 1)
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := s.Take(t.Context(), "k"); err == nil {
		t.Error("Take after Close: no error")
	}
}
