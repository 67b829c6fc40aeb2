package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/internal/testenv"
)

// testPrefix is a key prefix of the test's own, so tests and runs sharing
// one Redis never see each other's keys. The keys under it are deleted when
// the test ends: answers live 24 h, and the shared Redis is not ours to fill.
func testPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	prefix := "rtstream-test:idempotency:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		rc := redis.NewClient(mustParseURL(t, testenv.RedisURL(t)))
		defer rc.Close()
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("deleting the test's keys: %v", err)
		}
	})
	return prefix
}

func newTestRedis(t testing.TB, cfg Config) *Redis {
	t.Helper()
	s, err := NewRedis(RedisConfig{Config: cfg, URL: testenv.RedisURL(t), KeyPrefix: testPrefix(t), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stores are the implementations every contract test runs against.
var stores = []struct {
	name string
	new  func(t testing.TB, cfg Config) Store
}{
	{"memory", func(_ testing.TB, cfg Config) Store { return NewMemory(cfg, 100) }},
	{"redis", func(t testing.TB, cfg Config) Store { return newTestRedis(t, cfg) }},
}

// TestStoreContract walks one key through the life of a request on each
// store: claim, duplicates while in flight, answer, replays, mismatches,
// release and a fresh claim.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	for _, impl := range stores {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			s := impl.new(t, Config{})
			ctx := t.Context()
			answer := Answer{Status: 202, Body: []byte(`{"accepted":1,"event_ids":["a"]}` + "\n")}
			var token string

			type step struct {
				name      string
				do        func(t *testing.T) (Outcome, error)
				wantState State
			}
			begin := func(key, fp string) func(t *testing.T) (Outcome, error) {
				return func(*testing.T) (Outcome, error) { return s.Begin(ctx, key, fp) }
			}
			steps := []step{
				{"a new key is claimed", func(t *testing.T) (Outcome, error) {
					o, err := s.Begin(ctx, "k1", "fp-a")
					token = o.Token
					if err == nil && token == "" {
						t.Fatal("claimed without a token")
					}
					return o, err
				}, Claimed},
				{"same request while in flight", begin("k1", "fp-a"), InFlight},
				{"another request while in flight", begin("k1", "fp-b"), Mismatch},
				{"another key is independent", begin("k2", "fp-a"), Claimed},
				{"complete, then the same request replays", func(t *testing.T) (Outcome, error) {
					if err := s.Complete(ctx, "k1", token, answer); err != nil {
						t.Fatalf("Complete: %v", err)
					}
					return s.Begin(ctx, "k1", "fp-a")
				}, Replay},
				{"replays again", begin("k1", "fp-a"), Replay},
				{"another request after the answer", begin("k1", "fp-b"), Mismatch},
				{"a second Complete of the same claim is refused", func(t *testing.T) (Outcome, error) {
					if err := s.Complete(ctx, "k1", token, Answer{Status: 202, Body: []byte("other")}); !errors.Is(err, ErrClaimLost) {
						t.Fatalf("second Complete: %v, want ErrClaimLost", err)
					}
					return s.Begin(ctx, "k1", "fp-a")
				}, Replay},
				{"release: the retry claims afresh", func(t *testing.T) (Outcome, error) {
					o, err := s.Begin(ctx, "k3", "fp-a")
					if err != nil || o.State != Claimed {
						t.Fatalf("Begin k3: %+v %v", o, err)
					}
					if err := s.Release(ctx, "k3", o.Token); err != nil {
						t.Fatalf("Release: %v", err)
					}
					if err := s.Complete(ctx, "k3", o.Token, answer); !errors.Is(err, ErrClaimLost) {
						t.Fatalf("Complete after Release: %v, want ErrClaimLost", err)
					}
					return s.Begin(ctx, "k3", "fp-a")
				}, Claimed},
				{"a stale token does not release the new claim", func(t *testing.T) (Outcome, error) {
					o, err := s.Begin(ctx, "k4", "fp-a")
					if err != nil || o.State != Claimed {
						t.Fatalf("Begin k4: %+v %v", o, err)
					}
					if err := s.Release(ctx, "k4", token); err != nil { // k1's token
						t.Fatalf("Release: %v", err)
					}
					return s.Begin(ctx, "k4", "fp-a")
				}, InFlight},
			}
			for _, st := range steps {
				o, err := st.do(t)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if o.State != st.wantState {
					t.Fatalf("%s: state %v, want %v", st.name, o.State, st.wantState)
				}
				if o.State == Replay && (o.Answer.Status != answer.Status || string(o.Answer.Body) != string(answer.Body)) {
					t.Fatalf("%s: replayed %d %q, want %d %q", st.name, o.Answer.Status, o.Answer.Body, answer.Status, answer.Body)
				}
			}
		})
	}
}

// TestStoreExpiry checks both windows on each store: a claim whose holder
// never answers frees the key after PendingTTL, and an answer is forgotten
// after TTL.
func TestStoreExpiry(t *testing.T) {
	t.Parallel()
	for _, impl := range stores {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			// Windows of a second: the answer must be completed before
			// its claim lapses, even when a loaded machine stalls.
			s := impl.new(t, Config{TTL: 1500 * time.Millisecond, PendingTTL: time.Second})
			ctx := t.Context()
			abandoned, err := s.Begin(ctx, "crashed", "fp")
			if err != nil || abandoned.State != Claimed {
				t.Fatalf("Begin: %+v %v", abandoned, err)
			}
			o, err := s.Begin(ctx, "answered", "fp")
			if err != nil || o.State != Claimed {
				t.Fatalf("Begin: %+v %v", o, err)
			}
			if err := s.Complete(ctx, "answered", o.Token, Answer{Status: 202, Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			for _, key := range []string{"crashed", "answered"} {
				o, err := s.Begin(ctx, key, "fp-other")
				if err != nil || o.State != Claimed {
					t.Errorf("%s after its window: %+v %v, want a fresh claim", key, o, err)
				}
			}
			if err := s.Complete(ctx, "crashed", abandoned.Token, Answer{Status: 202}); !errors.Is(err, ErrClaimLost) {
				t.Errorf("Complete of an expired and retaken claim: %v, want ErrClaimLost", err)
			}
		})
	}
}

// TestStoreConcurrentBegin: of many concurrent requests with one key,
// exactly one is claimed; the others see it in flight.
func TestStoreConcurrentBegin(t *testing.T) {
	t.Parallel()
	for _, impl := range stores {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			s := impl.new(t, Config{})
			const n = 32
			states := make([]State, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					o, err := s.Begin(context.Background(), "hot", "fp")
					if err != nil {
						t.Error(err)
					}
					states[i] = o.State
				})
			}
			wg.Wait()
			count := map[State]int{}
			for _, st := range states {
				count[st]++
			}
			if count[Claimed] != 1 || count[InFlight] != n-1 {
				t.Fatalf("states %v, want 1 claimed and %d in flight", count, n-1)
			}
		})
	}
}

// TestMemoryLRU: over MaxKeys the least recently used answer goes, a replay
// counts as a use, and claims in flight are never evicted.
func TestMemoryLRU(t *testing.T) {
	t.Parallel()
	m := NewMemory(Config{}, 2)
	ctx := t.Context()
	answer := func(key string) {
		t.Helper()
		o, err := m.Begin(ctx, key, "fp")
		if err != nil || o.State != Claimed {
			t.Fatalf("Begin %s: %+v %v", key, o, err)
		}
		if err := m.Complete(ctx, key, o.Token, Answer{Status: 202, Body: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	inFlight, err := m.Begin(ctx, "in-flight", "fp")
	if err != nil || inFlight.State != Claimed {
		t.Fatal(inFlight, err)
	}
	answer("a")
	answer("b")
	if o, _ := m.Begin(ctx, "a", "fp"); o.State != Replay { // a is now the most recent
		t.Fatalf("a: %v, want replay", o.State)
	}
	answer("c") // evicts b, the least recently used
	tests := []struct {
		key  string
		want State
	}{
		{"a", Replay},
		{"c", Replay},
		{"in-flight", InFlight},
		{"b", Claimed},
	}
	for _, tt := range tests {
		if o, err := m.Begin(ctx, tt.key, "fp"); err != nil || o.State != tt.want {
			t.Errorf("%s: %v %v, want %v", tt.key, o.State, err, tt.want)
		}
	}
	if answers, _ := m.Len(); answers > 2 {
		t.Errorf("%d answers held, want at most 2", answers)
	}
}

// TestMemoryReplayIsACopy: a caller changing a replayed body does not change
// the stored answer.
func TestMemoryReplayIsACopy(t *testing.T) {
	t.Parallel()
	m := NewMemory(Config{}, 10)
	ctx := t.Context()
	o, _ := m.Begin(ctx, "k", "fp")
	body := []byte("answer")
	if err := m.Complete(ctx, "k", o.Token, Answer{Status: 202, Body: body}); err != nil {
		t.Fatal(err)
	}
	body[0] = 'X'
	r, _ := m.Begin(ctx, "k", "fp")
	r.Answer.Body[1] = 'Y'
	if r2, _ := m.Begin(ctx, "k", "fp"); string(r2.Answer.Body) != "answer" {
		t.Fatalf("stored body changed to %q", r2.Answer.Body)
	}
}

// TestRedisSharedAcrossClients: two stores on one Redis and prefix (two
// instances) share claims and answers; another prefix (another deployment)
// does not.
func TestRedisSharedAcrossClients(t *testing.T) {
	t.Parallel()
	url, prefix := testenv.RedisURL(t), testPrefix(t)
	open := func(prefix string) *Redis {
		s, err := NewRedis(RedisConfig{URL: url, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b, other := open(prefix), open(prefix), open(prefix+"other:")
	ctx := t.Context()
	o, err := a.Begin(ctx, "k", "fp")
	if err != nil || o.State != Claimed {
		t.Fatal(o, err)
	}
	if o2, err := b.Begin(ctx, "k", "fp"); err != nil || o2.State != InFlight {
		t.Fatalf("other instance while in flight: %v %v, want in_flight", o2.State, err)
	}
	if err := a.Complete(ctx, "k", o.Token, Answer{Status: 202, Body: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if o2, err := b.Begin(ctx, "k", "fp"); err != nil || o2.State != Replay || string(o2.Answer.Body) != "ok" {
		t.Fatalf("other instance after the answer: %+v %v, want the replay", o2, err)
	}
	if o3, err := other.Begin(ctx, "k", "fp"); err != nil || o3.State != Claimed {
		t.Fatalf("another prefix: %v %v, want claimed", o3.State, err)
	}
	// The answer lives for the TTL, the claim only for the pending TTL.
	rc := redis.NewClient(mustParseURL(t, url))
	defer rc.Close()
	if ttl := rc.PTTL(ctx, prefix+"k").Val(); ttl < DefaultTTL-time.Minute {
		t.Errorf("answer TTL %v, want about %v", ttl, DefaultTTL)
	}
	if ttl := rc.PTTL(ctx, prefix+"other:k").Val(); ttl <= 0 || ttl > DefaultPendingTTL {
		t.Errorf("claim TTL %v, want at most %v", ttl, DefaultPendingTTL)
	}
}

func mustParseURL(t testing.TB, u string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRedisUnavailable: a Redis that does not answer is an error from every
// call (the caller fails closed), logged once per outage, not per call.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	var mu sync.Mutex
	log := newTestLogger(&mu, &logs)
	// Nothing listens on port 1 of the loopback address.
	s, err := NewRedis(RedisConfig{URL: "redis://127.0.0.1:1/0", Timeout: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if _, err := s.Begin(t.Context(), "k", "fp"); err == nil {
			t.Fatal("Begin against a dead Redis: no error")
		}
	}
	if err := s.Complete(t.Context(), "k", `{"s":"pending","f":"fp"}`, Answer{Status: 202}); err == nil || errors.Is(err, ErrClaimLost) {
		t.Fatalf("Complete against a dead Redis: %v, want a store error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "idempotency store unavailable"); n != 1 {
		t.Errorf("logged the outage %d times, want once:\n%s", n, logs.String())
	}
}

func TestNewRedisHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := NewRedis(RedisConfig{URL: "redis://user:s3cret@[::1:6379/0"})
	if err == nil {
		t.Fatal("no error for a malformed URL")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
}
