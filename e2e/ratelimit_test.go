package e2e

// Rate limits, from the outside: real servers on a real Kafka (and, where
// the limits are shared, a real Redis), configured through RATE_LIMIT_RPS,
// RATE_LIMIT_BURST, TRUSTED_PROXIES, API_KEYS and REDIS_URL.
//
// Which limit refused a request is read from the documented metric
// rtstream_ratelimit_denied_total{limiter="ip"|"key"}, not from the wording
// of the problem's detail. The IP limit runs before authentication and the
// key limit after it, and both take their size from the same variables, so
// each test arranges that only the limit under test can run dry.
//
// The server has no variable for its Redis key prefix, so the tests that use
// the shared Redis make every client IP and API key random: leftover buckets
// of earlier runs (they expire by themselves) are never drawn on.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

const (
	// rlSlowRPS refills a bucket so slowly (a token every 100 s) that no
	// token comes back while a test runs: the counts do not depend on how
	// fast the machine is.
	rlSlowRPS = 0.01
	// rlHangBound is how long a request may take while Redis is down. It
	// catches a hang, not a slow answer: the server bounds each Redis call
	// to 50 ms and then answers from memory.
	rlHangBound = 5 * time.Second
	// rlOutageMsg and rlRecoveryMsg are the lines the server logs when the
	// rate-limit store fails and when it is back.
	rlOutageMsg   = "rate limit store unavailable"
	rlRecoveryMsg = "rate limit store is back"
)

// rlRandomHex is n random bytes in hex.
func rlRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rlNewKey is an API key no other test or run uses.
func rlNewKey() string { return "rl-" + rlRandomHex(12) }

// rlNewClientIP is a client IP no other test or run uses: an address in its
// own random /64 of the documentation prefix 2001:db8::/32 (the server keys
// an IPv6 client by its /64).
func rlNewClientIP() string {
	h := rlRandomHex(4)
	return "2001:db8:" + h[:4] + ":" + h[4:] + "::7"
}

// rlEnv is the environment of a rate-limited server on the real Kafka:
// kafkaEnv plus the given variables.
func rlEnv(brokers, prefix string, vars map[string]string) map[string]string {
	env := kafkaEnv(brokers, prefix)
	for k, v := range vars {
		env[k] = v
	}
	return env
}

// rlGet sends GET /v1/streams, a guarded route, with the API key and, when
// xff is not empty, X-Forwarded-For. It fails the test when no answer comes
// within timeout.
func rlGet(t *testing.T, base, key, xff string, timeout time.Duration) reply {
	t.Helper()
	hdr := http.Header{}
	hdr.Set("X-API-Key", key)
	if xff != "" {
		hdr.Set("X-Forwarded-For", xff)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	rep, err := request(ctx, http.MethodGet, base+"/v1/streams", "", nil, hdr)
	if err != nil {
		t.Fatalf("GET %s/v1/streams (X-Forwarded-For %q): no answer after %v: %v", base, xff, time.Since(start).Round(time.Millisecond), err)
	}
	return rep
}

// rlHeaderInt is a header that must be a whole number.
func rlHeaderInt(t *testing.T, what string, rep reply, name string) int {
	t.Helper()
	v := rep.Header.Get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Errorf("%s: %s %q, want a whole number of ≥ 0 (answer %s)", what, name, v, rep)
		return -1
	}
	return n
}

// rlCheckAllowed checks a 200 answer and its RateLimit headers: the bucket
// holds burst tokens, remaining are left, and it is full again within
// maxReset seconds.
func rlCheckAllowed(t *testing.T, what string, rep reply, burst, remaining, maxReset int) {
	t.Helper()
	if rep.Status != http.StatusOK {
		t.Fatalf("%s: %s, want 200", what, rep)
	}
	if got := rlHeaderInt(t, what, rep, "RateLimit-Limit"); got != burst && got >= 0 {
		t.Errorf("%s: RateLimit-Limit %d, want %d", what, got, burst)
	}
	if got := rlHeaderInt(t, what, rep, "RateLimit-Remaining"); got != remaining && got >= 0 {
		t.Errorf("%s: RateLimit-Remaining %d, want %d", what, got, remaining)
	}
	if got := rlHeaderInt(t, what, rep, "RateLimit-Reset"); got >= 0 && (got < 1 || got > maxReset) {
		t.Errorf("%s: RateLimit-Reset %d, want 1 to %d s", what, got, maxReset)
	}
}

// rlCheckRefused checks a 429 problem with Retry-After and the RateLimit
// headers of the bucket that ran dry: burst tokens, none left, and a retry
// possible within 1 to maxWait seconds.
func rlCheckRefused(t *testing.T, what string, rep reply, burst, maxWait int) {
	t.Helper()
	if rep.Status != http.StatusTooManyRequests {
		t.Fatalf("%s: %s, want 429", what, rep)
	}
	checkProblem(t, what, rep, http.StatusTooManyRequests)
	retry := rlHeaderInt(t, what, rep, "Retry-After")
	if retry >= 0 && (retry < 1 || retry > maxWait) {
		t.Errorf("%s: Retry-After %d, want 1 to %d s", what, retry, maxWait)
	}
	if got := rlHeaderInt(t, what, rep, "RateLimit-Limit"); got != burst && got >= 0 {
		t.Errorf("%s: RateLimit-Limit %d, want %d", what, got, burst)
	}
	if got := rlHeaderInt(t, what, rep, "RateLimit-Remaining"); got != 0 && got >= 0 {
		t.Errorf("%s: RateLimit-Remaining %d, want 0", what, got)
	}
	if reset := rlHeaderInt(t, what, rep, "RateLimit-Reset"); reset >= 0 && retry >= 0 && reset != retry {
		t.Errorf("%s: RateLimit-Reset %d differs from Retry-After %d", what, reset, retry)
	}
}

// rlMetrics reads GET /metrics (open by default) into sample name (with its
// labels, as exposed) → value.
func rlMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	rep := call(t, http.MethodGet, base+"/metrics", "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s, want 200", base, rep)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(rep.Body)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// rlDenied is how many requests the server refused with its IP limit and
// with its key limit.
func rlDenied(t *testing.T, base string) (ip, key float64) {
	t.Helper()
	m := rlMetrics(t, base)
	return m[`rtstream_ratelimit_denied_total{limiter="ip"}`], m[`rtstream_ratelimit_denied_total{limiter="key"}`]
}

// rlCheckDenied checks the denied counters of a server.
func rlCheckDenied(t *testing.T, s *server, wantIP, wantKey float64) {
	t.Helper()
	ip, key := rlDenied(t, s.Base)
	if ip != wantIP || key != wantKey {
		t.Errorf("server %s: %v refusals by the IP limit and %v by the key limit, want %v and %v",
			s.name, ip, key, wantIP, wantKey)
	}
}

// rlStoreState is what a server's metrics say about its Redis store, for
// messages: a call that timed out was answered from the instance's memory,
// which would explain a count that is off.
func rlStoreState(t *testing.T, s *server) string {
	t.Helper()
	m := rlMetrics(t, s.Base)
	return fmt.Sprintf("server %s: rtstream_ratelimit_store_errors_total %v, rtstream_ratelimit_store_degraded %v",
		s.name, m["rtstream_ratelimit_store_errors_total"], m["rtstream_ratelimit_store_degraded"])
}

// rlLogCount counts the lines of a server's log that contain substr.
func rlLogCount(t *testing.T, s *server, substr string) int {
	t.Helper()
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatalf("server %s: reading its log: %v", s.name, err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// rlStartRedis runs a redis-server of the test's own on a free loopback
// port, keeping nothing on disk, and waits until it answers PING. It returns
// the server's URL and a function that kills it (and waits for it), which
// also runs when the test ends.
func rlStartRedis(t *testing.T) (url string, kill func()) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Missing(t, "redis-server is not installed (scripts/redis.sh start installs it)")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	logf, err := os.Create(t.TempDir() + "/redis.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd) // dies with the test process
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	kill = func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(kill)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := rlPing(addr)
		if err == nil {
			break
		}
		select {
		case <-exited:
			data, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server on %s exited before it answered PING (%v); its output:\n%s", addr, err, data)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s does not answer PING: %v", addr, err)
		}
	}
	return "redis://" + addr + "/0", kill
}

// rlPing sends PING to the Redis at addr and expects +PONG.
func rlPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// TestRateLimitPerIP: with no trusted proxy the TCP peer is the client. It
// gets RATE_LIMIT_BURST requests, each with RateLimit headers, then a 429
// problem with Retry-After; an X-Forwarded-For header it writes itself does
// not buy it a fresh budget.
func TestRateLimitPerIP(t *testing.T) {
	t.Parallel()
	const burst = 5
	k1, k2 := rlNewKey(), rlNewKey()
	s := startServer(t, "ratelimit-ip", rlEnv(testenv.KafkaBrokers(t), newPrefix(t, "rl-ip"), map[string]string{
		"RATE_LIMIT_RPS":   strconv.FormatFloat(rlSlowRPS, 'f', -1, 64),
		"RATE_LIMIT_BURST": strconv.Itoa(burst),
		"API_KEYS":         k1 + "," + k2,
	}))
	// Without Redis the server's buckets are in memory, refilled whole
	// BURST/RPS after a bucket's first request: far beyond the test.
	window := int(math.Ceil(burst / rlSlowRPS))

	for i := 1; i <= burst; i++ {
		rlCheckAllowed(t, fmt.Sprintf("request %d of the burst", i), rlGet(t, s.Base, k1, "", requestTimeout), burst, burst-i, window)
	}
	rep := rlGet(t, s.Base, k1, "", requestTimeout)
	if rep.Status != http.StatusTooManyRequests {
		t.Fatalf("request %d: %s, want 429", burst+1, rep)
	}
	rlCheckRefused(t, fmt.Sprintf("request %d", burst+1), rep, burst, window)

	// The second key has its whole budget, so only the IP limit can refuse
	// this one; a believed header would have given it a fresh IP bucket.
	rep = rlGet(t, s.Base, k2, "198.51.100.23", requestTimeout)
	if rep.Status != http.StatusTooManyRequests {
		t.Fatalf("request with a spoofed X-Forwarded-For from an untrusted peer: %s, want 429", rep)
	}
	rlCheckRefused(t, "request with a spoofed X-Forwarded-For", rep, burst, window)
	rlCheckDenied(t, s, 2, 0)
}

// TestRateLimitTrustedProxy: with TRUSTED_PROXIES naming the peer,
// X-Forwarded-For names the client, and clients behind the one proxy have
// budgets of their own.
func TestRateLimitTrustedProxy(t *testing.T) {
	t.Parallel()
	const burst = 5
	k1, k2 := rlNewKey(), rlNewKey()
	s := startServer(t, "ratelimit-proxy", rlEnv(testenv.KafkaBrokers(t), newPrefix(t, "rl-proxy"), map[string]string{
		"RATE_LIMIT_RPS":   strconv.FormatFloat(rlSlowRPS, 'f', -1, 64),
		"RATE_LIMIT_BURST": strconv.Itoa(burst),
		"TRUSTED_PROXIES":  "127.0.0.1/32",
		"API_KEYS":         k1 + "," + k2,
	}))
	maxReset := int(math.Ceil(burst / rlSlowRPS))
	const seven, eight = "203.0.113.7", "203.0.113.8"

	for i := 1; i <= burst; i++ {
		rlCheckAllowed(t, fmt.Sprintf("client %s, request %d", seven, i), rlGet(t, s.Base, k1, seven, requestTimeout), burst, burst-i, maxReset)
	}
	// With k2, whose budget is whole, only the IP limit can refuse.
	rlCheckRefused(t, "client "+seven+", request "+strconv.Itoa(burst+1), rlGet(t, s.Base, k2, seven, requestTimeout), burst, maxReset)
	rlCheckAllowed(t, "client "+eight+" behind the same proxy", rlGet(t, s.Base, k2, eight, requestTimeout), burst, burst-1, maxReset)
	// The client is the rightmost entry that is not a trusted proxy: an
	// entry the client put in front of its own does not change who it is.
	rlCheckRefused(t, "client "+seven+" that prepends "+eight, rlGet(t, s.Base, k2, eight+", "+seven, requestTimeout), burst, maxReset)
	rlCheckDenied(t, s, 2, 0)
}

// TestRateLimitPerKey: each API key has a budget of its own, whatever IP it
// comes from. Every request comes from another client IP (behind a trusted
// proxy), so the IP limit, which has the same size, never runs dry.
func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	const burst = 5
	k1, k2 := rlNewKey(), rlNewKey()
	s := startServer(t, "ratelimit-key", rlEnv(testenv.KafkaBrokers(t), newPrefix(t, "rl-key"), map[string]string{
		"RATE_LIMIT_RPS":   strconv.FormatFloat(rlSlowRPS, 'f', -1, 64),
		"RATE_LIMIT_BURST": strconv.Itoa(burst),
		"TRUSTED_PROXIES":  "127.0.0.1/32",
		"API_KEYS":         k1 + "," + k2,
	}))
	maxReset := int(math.Ceil(burst / rlSlowRPS))
	n := 0
	nextIP := func() string { n++; return "203.0.113." + strconv.Itoa(10+n) }

	for i := 1; i <= burst; i++ {
		// The headers show the limit with fewer requests left: the key's.
		rlCheckAllowed(t, fmt.Sprintf("key 1, request %d", i), rlGet(t, s.Base, k1, nextIP(), requestTimeout), burst, burst-i, maxReset)
	}
	rlCheckRefused(t, "key 1 from a new IP, request "+strconv.Itoa(burst+1), rlGet(t, s.Base, k1, nextIP(), requestTimeout), burst, maxReset)
	rlCheckAllowed(t, "key 2", rlGet(t, s.Base, k2, nextIP(), requestTimeout), burst, burst-1, maxReset)
	// An IP that key 1 used still has budget: the refusal was the key's.
	rlCheckAllowed(t, "key 2 from an IP key 1 used", rlGet(t, s.Base, k2, "203.0.113.11", requestTimeout), burst, burst-2, maxReset)
	rlCheckDenied(t, s, 0, 1)
}

// TestRateLimitSharedAcrossInstances: two servers on one Redis draw on one
// budget per client IP and one per API key.
func TestRateLimitSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	redisURL := testenv.RedisURL(t)
	const burst = 6
	kIP, kKey := rlNewKey(), rlNewKey()
	env := rlEnv(testenv.KafkaBrokers(t), newPrefix(t, "rl-shared"), map[string]string{
		"RATE_LIMIT_RPS":   strconv.FormatFloat(rlSlowRPS, 'f', -1, 64),
		"RATE_LIMIT_BURST": strconv.Itoa(burst),
		"TRUSTED_PROXIES":  "127.0.0.1/32",
		"API_KEYS":         kIP + "," + kKey,
		"REDIS_URL":        redisURL,
		// What is tested is the sharing: a loaded CI machine must not
		// push a call past the production timeout and into fallback.
		"REDIS_TIMEOUT": "2s",
	})
	a := startServer(t, "ratelimit-shared-A", env)
	b := startServer(t, "ratelimit-shared-B", env)
	servers := []*server{a, b}
	maxReset := int(math.Ceil(burst / rlSlowRPS))
	maxWait := int(math.Ceil(1 / rlSlowRPS)) // Redis gives a token back every 1/RPS
	state := func() string { return rlStoreState(t, a) + "; " + rlStoreState(t, b) }

	// One client IP, alternating between the servers. kIP is used by these
	// requests only, so its bucket runs dry together with the IP's; the IP
	// limit runs first and is the one that refuses.
	ip := rlNewClientIP()
	for i := 1; i <= burst; i++ {
		s := servers[(i-1)%2]
		rep := rlGet(t, s.Base, kIP, ip, requestTimeout)
		if rep.Status != http.StatusOK {
			t.Fatalf("client %s, request %d (to %s): %s, want 200; %s", ip, i, s.name, rep, state())
		}
		rlCheckAllowed(t, fmt.Sprintf("client %s, request %d (to %s)", ip, i, s.name), rep, burst, burst-i, maxReset)
	}
	for _, s := range servers {
		rep := rlGet(t, s.Base, kIP, ip, requestTimeout)
		if rep.Status != http.StatusTooManyRequests {
			t.Fatalf("client %s past the shared burst (to %s): %s, want 429; %s", ip, s.name, rep, state())
		}
		rlCheckRefused(t, fmt.Sprintf("client %s past the shared burst (to %s)", ip, s.name), rep, burst, maxWait)
	}

	// One key, every request from another client IP.
	for i := 1; i <= burst; i++ {
		s := servers[i%2] // B first this time
		rep := rlGet(t, s.Base, kKey, rlNewClientIP(), requestTimeout)
		if rep.Status != http.StatusOK {
			t.Fatalf("key, request %d (to %s): %s, want 200; %s", i, s.name, rep, state())
		}
		rlCheckAllowed(t, fmt.Sprintf("key, request %d (to %s)", i, s.name), rep, burst, burst-i, maxReset)
	}
	for _, s := range servers {
		rep := rlGet(t, s.Base, kKey, rlNewClientIP(), requestTimeout)
		if rep.Status != http.StatusTooManyRequests {
			t.Fatalf("key past the shared burst (to %s): %s, want 429; %s", s.name, rep, state())
		}
		rlCheckRefused(t, fmt.Sprintf("key past the shared burst (to %s)", s.name), rep, burst, maxWait)
	}
	for _, s := range servers {
		rlCheckDenied(t, s, 1, 1)
	}
	t.Log(state())
}

// TestRateLimitRedisOutage stops the Redis under two running servers: they
// keep answering, promptly and never with a 5xx, and each limits on its own
// from memory (docs/decisions/0009-rate-limit-redis-failure.md). Each logs
// the outage once and counts the failed Redis calls.
func TestRateLimitRedisOutage(t *testing.T) {
	t.Parallel()
	testenv.RedisURL(t) // the same gate as every Redis test
	redisURL, killRedis := rlStartRedis(t)
	const burst = 3
	k1, k2 := rlNewKey(), rlNewKey()
	env := rlEnv(testenv.KafkaBrokers(t), newPrefix(t, "rl-outage"), map[string]string{
		"RATE_LIMIT_RPS":   strconv.FormatFloat(rlSlowRPS, 'f', -1, 64),
		"RATE_LIMIT_BURST": strconv.Itoa(burst),
		"TRUSTED_PROXIES":  "127.0.0.1/32",
		"API_KEYS":         k1 + "," + k2,
		"REDIS_URL":        redisURL,
		"REDIS_TIMEOUT":    "2s", // the outage is a killed Redis, not a slow one
	})
	a := startServer(t, "ratelimit-outage-A", env)
	b := startServer(t, "ratelimit-outage-B", env)
	servers := []*server{a, b}
	maxReset := int(math.Ceil(burst / rlSlowRPS))
	client := rlNewClientIP()

	// While Redis is up the budget is shared: B sees what A took.
	rlCheckAllowed(t, "before the outage, to A", rlGet(t, a.Base, k1, client, requestTimeout), burst, burst-1, maxReset)
	rlCheckAllowed(t, "before the outage, to B", rlGet(t, b.Base, k1, client, requestTimeout), burst, burst-2, maxReset)
	for _, s := range servers {
		if n := rlLogCount(t, s, rlOutageMsg); n != 0 {
			// The server bounds each Redis call to 50 ms; a call that
			// took longer on a loaded machine counts as an outage.
			t.Fatalf("server %s logged %d Redis outages while Redis was up; %s", s.name, n, rlStoreState(t, s))
		}
	}

	killRedis()

	// Each instance now has a memory bucket of its own for the client (and
	// for k1), full: burst answers, then 429.
	for _, s := range servers {
		for i := 1; i <= burst; i++ {
			rep := rlGet(t, s.Base, k1, client, rlHangBound)
			if rep.Status >= 500 {
				t.Fatalf("during the outage, request %d to %s: %s (fail open, never a 5xx)", i, s.name, rep)
			}
			rlCheckAllowed(t, fmt.Sprintf("during the outage, request %d to %s", i, s.name), rep, burst, burst-i, maxReset)
		}
		rlCheckRefused(t, fmt.Sprintf("during the outage, request %d to %s", burst+1, s.name), rlGet(t, s.Base, k1, client, rlHangBound), burst, maxReset)
		// Fail open, not closed: another client is served.
		rlCheckAllowed(t, "during the outage, another client to "+s.name, rlGet(t, s.Base, k2, rlNewClientIP(), rlHangBound), burst, burst-1, maxReset)
	}

	// Past the retry interval (1 s) one request tries Redis again, fails
	// and is answered from memory like the others.
	time.Sleep(1500 * time.Millisecond)
	for _, s := range servers {
		rlCheckRefused(t, "during the outage, after a retry interval, to "+s.name, rlGet(t, s.Base, k1, client, rlHangBound), burst, maxReset)
	}

	for _, s := range servers {
		if n := rlLogCount(t, s, rlOutageMsg); n != 1 {
			t.Errorf("server %s logged the outage %d times, want once", s.name, n)
		} else if rlLogCount(t, s, "level=WARN msg=\""+rlOutageMsg) != 1 {
			t.Errorf("server %s: the outage line is not a warning", s.name)
		}
		if n := rlLogCount(t, s, rlRecoveryMsg); n != 0 {
			t.Errorf("server %s logged %d recoveries while Redis was down", s.name, n)
		}
		m := rlMetrics(t, s.Base)
		// At least the first failed call and the retry.
		if got := m["rtstream_ratelimit_store_errors_total"]; got < 2 {
			t.Errorf("server %s: rtstream_ratelimit_store_errors_total %v, want ≥ 2", s.name, got)
		}
		if got := m["rtstream_ratelimit_store_degraded"]; got != 1 {
			t.Errorf("server %s: rtstream_ratelimit_store_degraded %v, want 1", s.name, got)
		}
		t.Log(rlStoreState(t, s))
	}
}
