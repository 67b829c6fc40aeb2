package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/internal/testenv"
)

// storeKind is one implementation of store. open returns two stores that
// stand for two instances: on Redis two clients on one key prefix; in
// memory the same store twice, as one process is one instance.
type storeKind struct {
	name string
	open func(t *testing.T, leaseTTL time.Duration) (a, b store)
}

// storeKinds are the stores every case runs against.
func storeKinds() []storeKind {
	return []storeKind{
		{"memory", func(_ *testing.T, leaseTTL time.Duration) (store, store) {
			s := newMemStoreLeases(leaseTTL)
			return s, s
		}},
		{"redis", openRedis},
	}
}

// openRedis opens two stores on the test's Redis, with a key prefix of the
// test's own; at the end it checks that every key the test left has an
// expiry (nothing a tenant does lives forever) and deletes them.
func openRedis(t *testing.T, leaseTTL time.Duration) (store, store) {
	t.Helper()
	url := testenv.RedisURL(t)
	prefix := testPrefix(t)
	var clients [2]*redis.Client
	for i := range clients {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("RTSTREAM_TEST_REDIS_URL: %v", err)
		}
		clients[i] = redis.NewClient(opts)
		c := clients[i]
		t.Cleanup(func() { _ = c.Close() })
	}
	// Registered after the closes, so it runs before them.
	t.Cleanup(func() { dropKeys(t, clients[0], prefix) })
	return newRedisStore(clients[0], prefix, leaseTTL), newRedisStore(clients[1], prefix, leaseTTL)
}

func dropKeys(t *testing.T, c *redis.Client, prefix string) {
	t.Helper()
	// t.Context is done by now.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx, globEscape(prefix)+"*").Result()
	if err != nil {
		t.Errorf("list the test's keys: %v", err)
		return
	}
	for _, k := range keys {
		if ttl, err := c.PTTL(ctx, k).Result(); err == nil && ttl < 0 && ttl != -2*time.Nanosecond {
			t.Errorf("key %s has no expiry (PTTL %v)", k, ttl)
		}
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete the test's keys: %v", err)
		}
	}
}

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}

// testPrefix is a key prefix of the test's own, so tests (and runs) sharing
// one Redis never see each other's counts.
func testPrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "rtstream-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// leaseStep is one call on instance on (0 or 1) of the two stores, or a
// pause. For acquire, wantHeld and wantOK are what it returns; after any
// other call, wantHeld is what held then says.
type leaseStep struct {
	name     string
	on       int
	op       string // "acquire", "release", "renew", "held", "sleep"
	tenant   string // "" is "acme"
	ids      []string
	limit    int
	sleep    time.Duration
	wantHeld int64
	wantOK   bool
}

func runLeaseSteps(t *testing.T, stores [2]store, steps []leaseStep) {
	t.Helper()
	ctx := t.Context()
	for _, st := range steps {
		s, tenant := stores[st.on], st.tenant
		if tenant == "" {
			tenant = "acme"
		}
		var err error
		switch st.op {
		case "acquire":
			held, ok, err := s.acquire(ctx, tenant, st.ids[0], st.limit)
			if err != nil {
				t.Fatalf("%s: acquire: %v", st.name, err)
			}
			if held != st.wantHeld || ok != st.wantOK {
				t.Fatalf("%s: acquire = held %d ok %v, want %d %v", st.name, held, ok, st.wantHeld, st.wantOK)
			}
			continue
		case "release":
			err = s.release(ctx, tenant, st.ids[0])
		case "renew":
			err = s.renew(ctx, tenant, st.ids)
		case "sleep":
			time.Sleep(st.sleep)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", st.name, st.op, err)
		}
		held, err := s.held(ctx, tenant)
		if err != nil {
			t.Fatalf("%s: held: %v", st.name, err)
		}
		if held != st.wantHeld {
			t.Fatalf("%s: held = %d, want %d", st.name, held, st.wantHeld)
		}
	}
}

func TestStoreLeases(t *testing.T) {
	t.Parallel()
	ids := func(ids ...string) []string { return ids }
	cases := []struct {
		name     string
		leaseTTL time.Duration
		steps    []leaseStep
	}{
		{"the limit holds across instances", time.Minute, []leaseStep{
			{name: "first", op: "acquire", ids: ids("a"), limit: 3, wantHeld: 1, wantOK: true},
			{name: "second, on the other instance", on: 1, op: "acquire", ids: ids("b"), limit: 3, wantHeld: 2, wantOK: true},
			{name: "third", op: "acquire", ids: ids("c"), limit: 3, wantHeld: 3, wantOK: true},
			{name: "fourth refused", op: "acquire", ids: ids("d"), limit: 3, wantHeld: 3},
			{name: "fourth refused on the other instance", on: 1, op: "acquire", ids: ids("d"), limit: 3, wantHeld: 3},
			{name: "a retried acquire counts once", op: "acquire", ids: ids("a"), limit: 3, wantHeld: 3, wantOK: true},
			{name: "both instances see 3", on: 1, op: "held", wantHeld: 3},
			{name: "another tenant has its own count", op: "acquire", tenant: "jwt:Other {tenant}", ids: ids("a"), limit: 3, wantHeld: 1, wantOK: true},
			{name: "release one, on the other instance", on: 1, op: "release", ids: ids("b"), wantHeld: 2},
			{name: "then the fourth fits", op: "acquire", ids: ids("d"), limit: 3, wantHeld: 3, wantOK: true},
			{name: "releasing an unknown lease changes nothing", op: "release", ids: ids("zz"), wantHeld: 3},
			{name: "renewing an unknown lease adds none", op: "renew", ids: ids("zz"), wantHeld: 3},
		}},
		// Margins of 100 ms either side of every expiry.
		{"an expired lease stops counting, a renewed one does not", 300 * time.Millisecond, []leaseStep{
			{name: "dead", op: "acquire", ids: ids("dead"), limit: 2, wantHeld: 1, wantOK: true},
			{name: "alive", on: 1, op: "acquire", ids: ids("alive"), limit: 2, wantHeld: 2, wantOK: true},
			{name: "full", op: "acquire", ids: ids("new"), limit: 2, wantHeld: 2},
			{name: "wait 200 ms", op: "sleep", sleep: 200 * time.Millisecond},
			{name: "renew alive", on: 1, op: "renew", ids: ids("alive"), wantHeld: 2},
			{name: "wait until dead expired", op: "sleep", sleep: 200 * time.Millisecond},
			{name: "dead no longer counts", op: "held", wantHeld: 1},
			{name: "renewing an expired lease does not revive it", op: "renew", ids: ids("dead"), wantHeld: 1},
			{name: "a new lease fits", op: "acquire", ids: ids("new"), limit: 2, wantHeld: 2, wantOK: true},
			{name: "alive still counts", on: 1, op: "acquire", ids: ids("more"), limit: 2, wantHeld: 2},
		}},
	}
	for _, kind := range storeKinds() {
		for _, tc := range cases {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a, b := kind.open(t, tc.leaseTTL)
				runLeaseSteps(t, [2]store{a, b}, tc.steps)
			})
		}
	}
}

// TestMemStoreLeasesWithoutTTL checks newMemStore, the one Quotas uses
// without Redis: its leases last until released, as nothing outlives the
// process that would release them.
func TestMemStoreLeasesWithoutTTL(t *testing.T) {
	s := newMemStore().(*memStore)
	ctx := t.Context()
	if _, ok, err := s.acquire(ctx, "acme", "a", 1); err != nil || !ok {
		t.Fatalf("acquire: ok %v err %v", ok, err)
	}
	later := time.Now().Add(24 * time.Hour)
	s.now = func() time.Time { return later }
	if held, ok, err := s.acquire(ctx, "acme", "b", 1); err != nil || ok || held != 1 {
		t.Fatalf("acquire a day later = held %d ok %v err %v, want 1 false: the lease must still count", held, ok, err)
	}
}

func TestStoreTake(t *testing.T) {
	t.Parallel()
	// take is one take on instance on; with afterWait it first sleeps the
	// wait the previous step was told.
	type take struct {
		on        int
		n, rate   int64
		afterWait bool
		wantOK    bool
		waitMin   time.Duration
		waitMax   time.Duration
	}
	cases := []struct {
		name  string
		takes []take
	}{
		{"a refused take fits after its wait, on either instance", []take{
			{n: 600, rate: 1000, wantOK: true},
			{on: 1, n: 600, rate: 1000, waitMin: 100 * time.Millisecond, waitMax: 200 * time.Millisecond},
			{n: 600, rate: 1000, afterWait: true, wantOK: true},
			// The bucket is empty again, a whole second ahead.
			{on: 1, n: 600, rate: 1000, waitMin: 500 * time.Millisecond, waitMax: 600 * time.Millisecond},
		}},
		{"a whole burst at once", []take{
			{n: 1000, rate: 1000, wantOK: true},
			{on: 1, n: 100, rate: 1000, waitMin: 50 * time.Millisecond, waitMax: 100 * time.Millisecond},
		}},
		{"over the burst never fits and takes nothing", []take{
			{n: 1500, rate: 1000, waitMin: 2 * time.Second, waitMax: 2 * time.Second},
			{n: 3000, rate: 1000, waitMin: 3 * time.Second, waitMax: 3 * time.Second},
			{n: 1000, rate: 1000, wantOK: true},
		}},
		{"rate 0 is no limit", []take{
			{n: 1 << 40, rate: 0, wantOK: true},
			{on: 1, n: 1 << 40, rate: 0, wantOK: true},
		}},
		{"nothing to take", []take{
			{n: 1000, rate: 1000, wantOK: true},
			{n: 0, rate: 1000, wantOK: true},
		}},
	}
	for _, kind := range storeKinds() {
		for _, tc := range cases {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a, b := kind.open(t, time.Minute)
				stores := [2]store{a, b}
				var wait time.Duration
				for i, tk := range tc.takes {
					if tk.afterWait {
						time.Sleep(wait + 2*time.Millisecond)
					}
					ok, w, err := stores[tk.on].take(t.Context(), "acme", tk.n, tk.rate)
					if err != nil {
						t.Fatalf("take %d: %v", i, err)
					}
					if ok != tk.wantOK {
						t.Fatalf("take %d of %d bytes: ok %v (wait %v), want %v", i, tk.n, ok, w, tk.wantOK)
					}
					if !ok && (w < tk.waitMin || w > tk.waitMax) {
						t.Fatalf("take %d of %d bytes: wait %v, want %v..%v", i, tk.n, w, tk.waitMin, tk.waitMax)
					}
					wait = w
				}
			})
		}
	}
}

func TestStoreWindows(t *testing.T) {
	t.Parallel()
	// The sends are at base, half past the minute; the stores' clocks are
	// set, so the windows cross minutes, hours and days without waiting.
	base := time.Date(2030, 1, 1, 10, 0, 30, 0, time.UTC)
	type want struct{ requests, bytes int64 }
	cases := []struct {
		name           string
		sends          []int64
		after          time.Duration // when windows is read, after base
		min, hour, day want
	}{
		{"just sent", []int64{10, 20, 30}, time.Second, want{3, 60}, want{3, 60}, want{3, 60}},
		// 10:01:15: a quarter of the current minute is gone, so three
		// quarters of the previous one count.
		{"the previous minute, weighted", []int64{15, 15, 15, 15}, 45 * time.Second, want{3, 45}, want{4, 60}, want{4, 60}},
		{"out of the minute", []int64{15, 15, 15, 15}, 100 * time.Second, want{}, want{4, 60}, want{4, 60}},
		{"the last of the hour", []int64{15, 15, 15, 15}, 59*time.Minute + 29*time.Second, want{}, want{4, 60}, want{4, 60}},
		{"out of the hour", []int64{15, 15, 15, 15}, time.Hour + 15*time.Second, want{}, want{}, want{4, 60}},
		{"the last of the day", []int64{15, 15, 15, 15}, 23*time.Hour + 59*time.Minute, want{}, want{}, want{4, 60}},
		{"out of the day", []int64{15, 15, 15, 15}, 24 * time.Hour, want{}, want{}, want{}},
	}
	for _, kind := range storeKinds() {
		for _, tc := range cases {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s, _ := kind.open(t, time.Minute)
				now := base
				setClock(t, s, func() time.Time { return now })
				for _, n := range tc.sends {
					if err := s.count(t.Context(), "acme", 1, n); err != nil {
						t.Fatalf("count: %v", err)
					}
				}
				now = base.Add(tc.after)
				ws, err := s.windows(t.Context(), "acme")
				if err != nil {
					t.Fatalf("windows: %v", err)
				}
				wantWs := []Window{
					{"1m", tc.min.requests, tc.min.bytes},
					{"1h", tc.hour.requests, tc.hour.bytes},
					{"24h", tc.day.requests, tc.day.bytes},
				}
				if len(ws) != len(wantWs) {
					t.Fatalf("windows = %+v, want %+v", ws, wantWs)
				}
				for i := range ws {
					if ws[i] != wantWs[i] {
						t.Errorf("windows = %+v, want %+v", ws, wantWs)
						break
					}
				}
			})
		}
	}
}

// setClock sets the clock s names its usage buckets by.
func setClock(t *testing.T, s store, now func() time.Time) {
	t.Helper()
	switch s := s.(type) {
	case *memStore:
		s.now = now
	case *redisStore:
		s.now = now
	default:
		t.Fatalf("no clock to set in %T", s)
	}
}

func TestKeyTenant(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, tenant, want string
		hashed             bool
	}{
		{"a key name", "acme.prod_1-a", "acme.prod_1-a", false},
		{"a key id", "key-0a1b2c", "key-0a1b2c", false},
		{"a lower-case subject", "jwt:alice", "jwt:alice", false},
		{"upper case is escaped", "jwt:Alice", "jwt:%41lice", false},
		{"spaces and braces are escaped", "jwt:a b{c}", "jwt:a%20b%7Bc%7D", false},
		{"'%' is escaped, so escapes cannot be forged", "jwt:%41lice", "jwt:%2541lice", false},
		{"'~' is escaped, so hashes cannot be forged", "~abc", "%7Eabc", false},
		{"long clean names are hashed", strings.Repeat("a", maxKeyTenant+1), "", true},
		{"long escapes are hashed", "jwt:" + strings.Repeat("A", 50), "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := keyTenant(tc.tenant)
			if tc.hashed {
				if len(got) != 33 || got[0] != '~' {
					t.Errorf("keyTenant(%q) = %q, want '~' and 32 hex digits", tc.tenant, got)
				}
				if keyTenant(tc.tenant+"x") == got {
					t.Errorf("keyTenant(%q) equals the key of a longer name", tc.tenant)
				}
				return
			}
			if got != tc.want {
				t.Errorf("keyTenant(%q) = %q, want %q", tc.tenant, got, tc.want)
			}
		})
	}
}
