package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstream/rtstream/internal/testenv"
)

// lowRate keeps buckets from refilling during a test: one token per 20 s.
const lowRate = 0.05

func TestLimitAnswers429AfterBurst(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const burst = 3
			reg := prometheus.NewRegistry()
			l := newTestLimiter(t, withStore(t, kind, Config{RPS: lowRate, Burst: burst, Registerer: reg}))
			r := chi.NewRouter()
			r.Use(ResolveClientIP(nil), l.IP())
			r.Get("/", okHandler)
			srv := serve(t, r)

			for i := range burst {
				a := get(t, srv.Client(), srv.URL)
				if a.status != http.StatusOK {
					t.Fatalf("request %d: status %d, want 200", i+1, a.status)
				}
				if got := checkLimited(t, a, burst); got != burst-1-i {
					t.Errorf("request %d: %s = %d, want %d", i+1, HeaderRemaining, got, burst-1-i)
				}
			}
			a := get(t, srv.Client(), srv.URL)
			if a.status != http.StatusTooManyRequests {
				t.Fatalf("request %d: status %d, want 429", burst+1, a.status)
			}
			checkLimited(t, a, burst)
			// The wait can be no longer than an empty bucket takes to fill.
			if retry := intHeader(t, a.header, "Retry-After"); retry > int(burst/lowRate) {
				t.Errorf("Retry-After = %d, want <= %d", retry, int(burst/lowRate))
			}
			if got := counterValue(l.denied.WithLabelValues("ip")); got != 1 {
				t.Errorf("denied{limiter=ip} = %v, want 1", got)
			}
			if got := counterValue(l.denied.WithLabelValues("key")); got != 0 {
				t.Errorf("denied{limiter=key} = %v, want 0", got)
			}
		})
	}
}

func TestSpoofedForwardedFor(t *testing.T) {
	// The test client connects from loopback: "proxy" trusts loopback, so it
	// plays a reverse proxy; "direct" trusts only a range the client is not in.
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	type req struct {
		xff  string // X-Forwarded-For sent, "" for none
		want int
	}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		reqs    []req
	}{
		{"no trusted proxies: header ignored", nil, []req{
			{"198.51.100.1", 200}, {"198.51.100.2", 200}, {"198.51.100.3", 429}, {"", 429},
		}},
		{"untrusted peer: header ignored", elsewhere, []req{
			{"198.51.100.1", 200}, {"198.51.100.2", 200}, {"198.51.100.3", 429},
		}},
		{"trusted proxy: one budget per client behind it", loopback, []req{
			{"203.0.113.1", 200}, {"203.0.113.1", 200}, {"203.0.113.1", 429},
			// A second client behind the same proxy has its own budget.
			{"203.0.113.2", 200},
			// A client cannot escape by writing its own entry left of the
			// one the proxy appended.
			{"198.51.100.9, 203.0.113.1", 429},
			// A v4-mapped spelling of a trusted address is still trusted.
			{"203.0.113.1, ::ffff:127.0.0.1", 429},
			// Nothing usable in the header: the proxy's own budget.
			{"", 200}, {"not-an-ip", 200}, {"", 429},
		}},
	}
	for _, kind := range storeKinds {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				l := newTestLimiter(t, withStore(t, kind, Config{RPS: lowRate, Burst: 2}))
				var lastIP atomic.Value
				lastIP.Store("")
				r := chi.NewRouter()
				r.Use(ResolveClientIP(tc.trusted), l.IP())
				r.Get("/", func(w http.ResponseWriter, r *http.Request) {
					lastIP.Store(ClientIP(r.Context()))
					okHandler(w, r)
				})
				srv := serve(t, r)
				for i, rq := range tc.reqs {
					var hdr []string
					if rq.xff != "" {
						hdr = []string{"X-Forwarded-For", rq.xff}
					}
					a := get(t, srv.Client(), srv.URL, hdr...)
					if a.status != rq.want {
						t.Fatalf("request %d (X-Forwarded-For %q): status %d, want %d (last client IP %q)", i+1, rq.xff, a.status, rq.want, lastIP.Load())
					}
					checkLimited(t, a, 2)
				}
			})
		}
	}
}

func TestKeyLimitIndependentOfIP(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	// keyID stands in for auth's accessor: the key id is in X-Test-Key.
	keyID := func(r *http.Request) (string, bool) {
		k := r.Header.Get("X-Test-Key")
		return k, k != ""
	}
	steps := []struct {
		ip, key       string
		want          int
		wantRemaining int    // RateLimit-Remaining shown: the lower of the two
		deniedBy      string // limiter named in the 429 detail
	}{
		{"203.0.113.1", "k1", 200, 1, ""},
		{"203.0.113.2", "k1", 200, 0, ""}, // the key is spent; IP .2 is not
		{"203.0.113.3", "k1", 429, 0, "key"},
		{"203.0.113.3", "k2", 200, 0, ""}, // another key, same IP: own budget (IP .3 now spent)
		{"203.0.113.4", "", 200, 1, ""},   // no key: only the IP limit applies
		{"203.0.113.4", "", 200, 0, ""},
		{"203.0.113.4", "", 429, 0, "ip"},
		{"203.0.113.5", "k2", 200, 0, ""}, // k2's second and last token
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			l := newTestLimiter(t, withStore(t, kind, Config{RPS: lowRate, Burst: 2}))
			r := chi.NewRouter()
			r.Use(ResolveClientIP(loopback), l.IP(), l.Key(keyID))
			r.Get("/", okHandler)
			srv := serve(t, r)
			for i, s := range steps {
				hdr := []string{"X-Forwarded-For", s.ip}
				if s.key != "" {
					hdr = append(hdr, "X-Test-Key", s.key)
				}
				a := get(t, srv.Client(), srv.URL, hdr...)
				if a.status != s.want {
					t.Fatalf("step %d (%s, key %q): status %d, want %d; body %s", i+1, s.ip, s.key, a.status, s.want, a.body)
				}
				if got := checkLimited(t, a, 2); got != s.wantRemaining {
					t.Errorf("step %d: %s = %d, want %d", i+1, HeaderRemaining, got, s.wantRemaining)
				}
				if s.deniedBy != "" && !strings.Contains(string(a.body), "("+s.deniedBy+")") {
					t.Errorf("step %d: 429 body %s does not name limiter %q", i+1, a.body, s.deniedBy)
				}
			}
			if got := counterValue(l.denied.WithLabelValues("key")); got != 1 {
				t.Errorf("denied{limiter=key} = %v, want 1", got)
			}
			if got := counterValue(l.denied.WithLabelValues("ip")); got != 1 {
				t.Errorf("denied{limiter=ip} = %v, want 1", got)
			}
		})
	}
}

func TestSharedBudgetAcrossInstances(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	prefix := testPrefix(t)
	const burst = 4
	var srvs []*httptest.Server
	for range 2 {
		l := newTestLimiter(t, Config{RPS: lowRate, Burst: burst, RedisURL: url, RedisKeyPrefix: prefix, RedisTimeout: time.Second})
		r := chi.NewRouter()
		r.Use(ResolveClientIP(nil), l.IP())
		r.Get("/", okHandler)
		srvs = append(srvs, serve(t, r))
	}
	for i := range burst {
		srv := srvs[i%2]
		a := get(t, srv.Client(), srv.URL)
		if a.status != http.StatusOK {
			t.Fatalf("request %d (instance %d): status %d, want 200", i+1, i%2, a.status)
		}
		if got := checkLimited(t, a, burst); got != burst-1-i {
			t.Errorf("request %d: %s = %d, want %d (one budget over both instances)", i+1, HeaderRemaining, got, burst-1-i)
		}
	}
	for i, srv := range srvs {
		if a := get(t, srv.Client(), srv.URL); a.status != http.StatusTooManyRequests {
			t.Errorf("instance %d after the shared burst: status %d, want 429", i, a.status)
		}
	}
}

func TestLimitSkipsAndFailsOpen(t *testing.T) {
	t.Parallel()
	l, err := New(Config{RPS: lowRate, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	none := func(*http.Request) (string, bool) { return "", false }
	h := l.Limit("global", func(*http.Request) (string, bool) { return "all", true })(okHandler)
	skip := l.Limit("none", none)(okHandler)

	rec := httptest.NewRecorder()
	skip.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || rec.Header().Get(HeaderLimit) != "" {
		t.Errorf("skipped request: status %d, %s %q; want 200 and no headers", rec.Code, HeaderLimit, rec.Header().Get(HeaderLimit))
	}
	for i, want := range []int{200, 429} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != want {
			t.Fatalf("global request %d: status %d, want %d", i+1, rec.Code, want)
		}
	}
	// After Close the store refuses; the request must still be served.
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("after Close: status %d, want 200", rec.Code)
	}
}

func TestSetHeadersKeepsTheTighterLimit(t *testing.T) {
	cases := []struct {
		name          string
		first, second uint64 // remaining from the outer, then the inner limit
		force         bool
		want          string
	}{
		{"inner tighter", 5, 2, false, "2"},
		{"outer tighter", 2, 5, false, "2"},
		{"equal keeps outer", 3, 3, false, "3"},
		{"refusal always shows its own", 0, 0, true, "0"},
		{"refusal overrides", 4, 0, true, "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			setHeaders(h, 10, tc.first, 1, false)
			setHeaders(h, 20, tc.second, 7, tc.force)
			if got := h.Get(HeaderRemaining); got != tc.want {
				t.Errorf("%s = %s, want %s", HeaderRemaining, got, tc.want)
			}
		})
	}
}

func TestSecondsUntil(t *testing.T) {
	now := time.Now()
	cases := []struct {
		reset time.Time
		want  int
	}{
		{now.Add(-time.Hour), 1},
		{now, 1},
		{now.Add(300 * time.Millisecond), 1},
		{now.Add(1500 * time.Millisecond), 2},
		{now.Add(20*time.Second + 100*time.Millisecond), 21},
	}
	for _, tc := range cases {
		if got := secondsUntil(uint64(tc.reset.UnixNano())); got != tc.want {
			t.Errorf("secondsUntil(now%+v) = %d, want %d", tc.reset.Sub(now), got, tc.want)
		}
	}
}

func TestCanonicalHeaderNames(t *testing.T) {
	for name, canon := range map[string]string{HeaderLimit: canonLimit, HeaderRemaining: canonRemaining, HeaderReset: canonReset} {
		if got := http.CanonicalHeaderKey(name); got != canon {
			t.Errorf("CanonicalHeaderKey(%q) = %q, want %q", name, got, canon)
		}
	}
}
