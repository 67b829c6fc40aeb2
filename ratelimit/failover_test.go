package ratelimit

import (
	"context"
	"io"
	"math"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/internal/testenv"
)

// hangBound is how long a request may take while Redis is broken: the 50 ms
// call timeout plus generous slack for -race on a small machine. The test
// asserts "does not hang", not a latency.
const hangBound = 2 * time.Second

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// hungServer accepts connections and never answers, like a Redis that is
// stuck; it is stopped when the test ends.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestRedisUnavailable checks the fail mode: with Redis refusing or hung,
// requests are answered within the bound and limited by the memory store,
// the errors are counted, and the outage is logged once.
func TestRedisUnavailable(t *testing.T) {
	cases := []struct {
		name string
		addr func(*testing.T) string
	}{
		{"refused", closedPort},
		{"hung", hungServer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &logBuffer{}
			l := newTestLimiter(t, Config{
				RPS: lowRate, Burst: 2,
				RedisURL:           "redis://" + tc.addr(t) + "/0",
				RedisTimeout:       50 * time.Millisecond,
				RedisRetryInterval: 100 * time.Millisecond,
				Logger:             logs.logger(),
			})
			f := failoverOf(t, l)
			r := chi.NewRouter()
			r.Use(ResolveClientIP(nil), l.IP())
			r.Get("/", okHandler)
			srv := serve(t, r)

			want := []int{200, 200, 429, 429, 429}
			timed := func(i, want int) {
				t.Helper()
				start := time.Now()
				a := get(t, srv.Client(), srv.URL)
				if d := time.Since(start); d > hangBound {
					t.Errorf("request %d took %v, want < %v", i, d, hangBound)
				}
				if a.status != want {
					t.Fatalf("request %d: status %d, want %d (fail open to the memory store's limit)", i, a.status, want)
				}
				checkLimited(t, a, 2)
			}
			for i, w := range want {
				timed(i+1, w)
			}
			errs := counterValue(f.errors)
			if errs < 1 || errs > float64(len(want)) {
				t.Errorf("store errors = %v, want between 1 and %d", errs, len(want))
			}
			// Past the retry interval one request tries Redis again.
			time.Sleep(150 * time.Millisecond)
			timed(len(want)+1, 429)
			if got := counterValue(f.errors); got <= errs {
				t.Errorf("store errors after a retry = %v, want > %v", got, errs)
			}
			if got := counterValue(f.degraded); got != 1 {
				t.Errorf("degraded = %v, want 1", got)
			}
			if n := logs.count(msgDown); n != 1 {
				t.Errorf("%d outage lines logged, want 1", n)
			}
			if n := logs.count(msgUp); n != 0 {
				t.Errorf("%d recovery lines logged, want 0", n)
			}
		})
	}
}

// startRedisServer runs a redis-server of the test's own on port; the test
// stops it, or it is killed when the test ends.
func startRedisServer(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { stopRedisServer(cmd) })
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(t.Context()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d does not answer PING", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd
}

// stopRedisServer kills a server started by startRedisServer, once.
func stopRedisServer(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// TestRedisOutageAndRecovery stops a real Redis under a running limiter and
// starts it again: requests keep being limited (per instance) throughout,
// and the outage is logged once when it starts and once when it ends.
func TestRedisOutageAndRecovery(t *testing.T) {
	t.Parallel()
	testenv.RedisURL(t) // the same gate as every Redis test
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Missing(t, "redis-server is not installed (scripts/redis.sh start installs it)")
	}
	port, err := strconv.Atoi(closedPort(t)[len("127.0.0.1:"):])
	if err != nil {
		t.Fatal(err)
	}
	redisCmd := startRedisServer(t, port)
	url := "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	prefix := testPrefix(t)

	logs := &logBuffer{}
	l := newTestLimiter(t, Config{
		RPS: lowRate, Burst: 3,
		RedisURL: url, RedisKeyPrefix: prefix,
		// Long enough that a healthy call never times out under -race; a
		// killed server answers with a closed connection at once anyway.
		RedisTimeout:       500 * time.Millisecond,
		RedisRetryInterval: 100 * time.Millisecond,
		Logger:             logs.logger(),
	})
	f := failoverOf(t, l)
	r := chi.NewRouter()
	r.Use(ResolveClientIP(nil), l.IP())
	r.Get("/", okHandler)
	srv := serve(t, r)

	check := func(step string, want int) {
		t.Helper()
		start := time.Now()
		a := get(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > hangBound {
			t.Errorf("%s: request took %v, want < %v", step, d, hangBound)
		}
		if a.status != want {
			t.Fatalf("%s: status %d, want %d", step, a.status, want)
		}
	}
	bucketInRedis := func() bool {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
		defer c.Close()
		n, err := c.Exists(t.Context(), prefix+"ip:127.0.0.1").Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return n == 1
	}

	check("before the outage", 200)
	if !bucketInRedis() {
		t.Fatal("the bucket is not in Redis before the outage")
	}

	stopRedisServer(redisCmd)
	// The memory store has a fresh bucket of 3 for this client.
	for i, want := range []int{200, 200, 200, 429} {
		check("outage request "+strconv.Itoa(i+1), want)
	}
	if got := counterValue(f.errors); got < 1 {
		t.Errorf("store errors = %v, want >= 1", got)
	}
	if got := counterValue(f.degraded); got != 1 {
		t.Errorf("degraded during the outage = %v, want 1", got)
	}

	startRedisServer(t, port)
	// Redis kept nothing, so once the limiter is back on it the client has
	// a fresh shared bucket again.
	deadline := time.Now().Add(5 * time.Second)
	for logs.count(msgUp) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no recovery logged within 5 s of Redis coming back")
		}
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		_ = get(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > hangBound {
			t.Errorf("request while recovering took %v", d)
		}
	}
	check("after recovery", 200)
	if !bucketInRedis() {
		t.Error("the bucket is not in Redis after recovery")
	}
	if got := counterValue(f.degraded); got != 0 {
		t.Errorf("degraded after recovery = %v, want 0", got)
	}
	if n := logs.count(msgDown); n != 1 {
		t.Errorf("%d outage lines logged, want 1", n)
	}
	if n := logs.count(msgUp); n != 1 {
		t.Errorf("%d recovery lines logged, want 1", n)
	}
}

// TestFailoverIgnoresClientCancel: a client hanging up mid-request is not a
// Redis failure.
func TestFailoverIgnoresClientCancel(t *testing.T) {
	t.Parallel()
	l := newTestLimiter(t, withStore(t, "redis", Config{RPS: lowRate, Burst: 5}))
	f := failoverOf(t, l)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, _, ok, err := f.Take(ctx, "k"); err != nil || !ok {
		t.Fatalf("Take with a cancelled context: ok %v err %v", ok, err)
	}
	if got := counterValue(f.errors); got != 0 {
		t.Errorf("store errors = %v, want 0", got)
	}
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"negative RPS", Config{RPS: -1}},
		{"NaN RPS", Config{RPS: math.NaN()}},
		{"negative burst", Config{Burst: -1}},
		{"RPS too low for the burst", Config{RPS: 1e-12}},
		{"negative timeout", Config{RedisTimeout: -time.Second}},
		{"bad Redis URL scheme", Config{RedisURL: "http://127.0.0.1:6379"}},
		{"unparsable Redis URL", Config{RedisURL: "redis://user:secret@host:po rt/0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(tc.cfg)
			if err == nil {
				_ = l.Close(context.Background())
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the Redis password", err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		l := newTestLimiter(t, Config{})
		tokens, _, _, ok, err := l.store.Take(t.Context(), "k")
		if err != nil || !ok || tokens != DefaultBurst {
			t.Errorf("Take: tokens %d ok %v err %v, want %d true nil", tokens, ok, err, DefaultBurst)
		}
	})
}

func TestNewRegistersItsMetricsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	newTestLimiter(t, Config{Registerer: reg})
	if n, err := testutil.GatherAndCount(reg, "rtstream_ratelimit_denied_total"); err != nil || n != 0 {
		// A counter vector shows no series before its first label.
		t.Fatalf("denied_total gathered %d series, %v", n, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second limiter on one registry registered its metrics again")
		}
	}()
	_, _ = New(Config{Registerer: reg})
}
