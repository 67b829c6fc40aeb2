package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// nopWriter is a ResponseWriter that costs nothing, so the benchmark
// measures the middleware and not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkLimitMiddleware is the cost per request of ResolveClientIP plus
// the IP limit on the memory store, with buckets large enough that every
// request is allowed: "one client" is every goroutine on one bucket (lock
// contention), "many clients" spreads them over 4096 IPs.
func BenchmarkLimitMiddleware(b *testing.B) {
	benchLimit(b, Config{RPS: 1e9, Burst: 1 << 30})
}

// BenchmarkLimitMiddlewareRedis is the same through the Redis store: one
// script round trip per request.
func BenchmarkLimitMiddlewareRedis(b *testing.B) {
	benchLimit(b, Config{RPS: 1e9, Burst: 1 << 30, RedisURL: testenv.RedisURL(b), RedisKeyPrefix: testPrefix(b), RedisTimeout: time.Second})
}

func benchLimit(b *testing.B, cfg Config) {
	cases := []struct {
		name  string
		peers int
	}{
		{"one client", 1},
		{"many clients", 4096},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			l, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close(b.Context()) })
			h := ResolveClientIP(nil)(l.IP()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			reqs := make([]*http.Request, tc.peers)
			for i := range reqs {
				reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
				reqs[i].RemoteAddr = "198.51." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ":1234"
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &nopWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					h.ServeHTTP(w, reqs[next.Add(1)%uint64(len(reqs))])
				}
			})
		})
	}
}
