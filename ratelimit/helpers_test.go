package ratelimit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rtstream/rtstream/internal/testenv"
)

// testPrefix is a Redis key prefix of the test's own, so tests (and runs)
// sharing one Redis never see each other's buckets.
func testPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "rtstream-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// storeKinds are the two stores every middleware test runs against.
var storeKinds = []string{"memory", "redis"}

// withStore points cfg at the store kind, with a key prefix of the test's own.
func withStore(t testing.TB, kind string, cfg Config) Config {
	t.Helper()
	if kind == "redis" {
		cfg.RedisURL = testenv.RedisURL(t)
		if cfg.RedisKeyPrefix == "" {
			cfg.RedisKeyPrefix = testPrefix(t)
		}
		if cfg.RedisTimeout == 0 {
			// Generous: under -race on two cores a healthy Redis call can
			// exceed 50 ms, and a fallback would make the test flaky.
			cfg.RedisTimeout = time.Second
		}
	}
	return cfg
}

func newTestLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(t.Context()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// serve runs h behind a real HTTP server for the test's lifetime.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "ok")
})

type answer struct {
	status int
	header http.Header
	body   []byte
}

// get sends a GET to url with the given headers (name, value pairs).
func get(t testing.TB, c *http.Client, url string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// intHeader parses a header that must be a non-negative integer.
func intHeader(t testing.TB, h http.Header, name string) int {
	t.Helper()
	v := h.Get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("header %s = %q, want a non-negative integer", name, v)
	}
	return n
}

// checkLimited checks the headers every limited answer carries, and that a
// 429 is a problem with Retry-After, and returns RateLimit-Remaining.
func checkLimited(t testing.TB, a answer, wantLimit int) int {
	t.Helper()
	if got := intHeader(t, a.header, HeaderLimit); got != wantLimit {
		t.Errorf("%s = %d, want %d", HeaderLimit, got, wantLimit)
	}
	remaining := intHeader(t, a.header, HeaderRemaining)
	reset := intHeader(t, a.header, HeaderReset)
	if reset < 1 {
		t.Errorf("%s = %d, want >= 1", HeaderReset, reset)
	}
	if a.status != http.StatusTooManyRequests {
		return remaining
	}
	if remaining != 0 {
		t.Errorf("429 with %s = %d, want 0", HeaderRemaining, remaining)
	}
	if retry := intHeader(t, a.header, "Retry-After"); retry < 1 || retry != reset {
		t.Errorf("Retry-After = %d, want >= 1 and equal to %s (%d)", retry, HeaderReset, reset)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("429 body %q: %v", a.body, err)
	}
	if p.Status != http.StatusTooManyRequests || p.Title == "" || p.Detail == "" {
		t.Errorf("429 body = %+v, want status 429 with title and detail", p)
	}
	return remaining
}

// logBuffer collects JSON log lines from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count is how many lines have msg as their message.
func (b *logBuffer) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			n++
		}
	}
	return n
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, nil))
}

// failoverOf is l's failover store; the test fails when l has no Redis.
func failoverOf(t testing.TB, l *Limiter) *failover {
	t.Helper()
	f, ok := l.store.(*failover)
	if !ok {
		t.Fatalf("store is %T, want *failover", l.store)
	}
	return f
}

func counterValue(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

const (
	msgDown = "rate limit store unavailable; limiting per instance until it is back"
	msgUp   = "rate limit store is back; limits are shared again"
)
