package ratelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rtstream/rtstream/problem"
)

// Header names, IETF draft-ietf-httpapi-ratelimit-headers style: Reset is in
// seconds from now, not a date, so clients need no synchronised clock.
const (
	HeaderLimit     = "RateLimit-Limit"
	HeaderRemaining = "RateLimit-Remaining"
	HeaderReset     = "RateLimit-Reset"
)

// The same names in Go's canonical form, so the hot path can index the
// header map without canonicalising (and allocating) on every request.
const (
	canonLimit     = "Ratelimit-Limit"
	canonRemaining = "Ratelimit-Remaining"
	canonReset     = "Ratelimit-Reset"
)

// KeyFunc names the bucket a request draws on; false means the limit does
// not apply to the request.
type KeyFunc func(*http.Request) (key string, ok bool)

// IP limits each client IP (an IPv6 client by its /64). Mount it before
// authentication, so that unauthenticated floods are limited too, and after
// ResolveClientIP; without it the limit keys on the TCP peer.
func (l *Limiter) IP() func(http.Handler) http.Handler {
	return l.Limit("ip", func(r *http.Request) (string, bool) {
		return ipBucket(requestIP(r)), true
	})
}

// Key limits each API key, whatever IP it comes from. keyID returns the
// authenticated key's id (never the secret: ids are stored in Redis); a
// request without one is not key-limited. Mount it after authentication.
func (l *Limiter) Key(keyID KeyFunc) func(http.Handler) http.Handler {
	return l.Limit("key", keyID)
}

// Limit limits requests by the bucket key returns, in a namespace of its own
// called name (also the limiter label of the denied metric). IP and Key are
// Limit with name "ip" and "key"; Limit with a constant key is a global
// limit.
//
// A request whose bucket is empty gets a 429 problem and does not reach
// next. When the store fails (only after Close: a Redis failure falls back
// to memory) the request goes through unlimited: limits protect the service,
// they must not become the outage.
func (l *Limiter) Limit(name string, key KeyFunc) func(http.Handler) http.Handler {
	denied := l.denied.WithLabelValues(name)
	prefix := name + ":"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k, ok := key(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			limit, remaining, reset, allowed, err := l.store.Take(r.Context(), prefix+k)
			if err != nil {
				next.ServeHTTP(w, r)
				return
			}
			secs := secondsUntil(reset)
			if allowed {
				setHeaders(w.Header(), limit, remaining, secs, false)
				next.ServeHTTP(w, r)
				return
			}
			denied.Inc()
			setHeaders(w.Header(), limit, 0, secs, true)
			problem.Write(w, r, problem.Problem{
				Status:     http.StatusTooManyRequests,
				Detail:     fmt.Sprintf("rate limit exceeded (%s); retry in %d s", name, secs),
				RetryAfter: secs,
			})
		})
	}
}

// setHeaders writes the RateLimit-* headers. When two limits apply (IP and
// key), the client is shown the one with fewer requests left, which is the
// one that will refuse it first; a refusal always shows its own.
func setHeaders(h http.Header, limit, remaining uint64, reset int, force bool) {
	if cur := h[canonRemaining]; !force && len(cur) > 0 {
		if n, err := strconv.ParseUint(cur[0], 10, 64); err == nil && n <= remaining {
			return
		}
	}
	// One backing array for the three values: one allocation, not three.
	v := []string{strconv.FormatUint(limit, 10), strconv.FormatUint(remaining, 10), strconv.Itoa(reset)}
	h[canonLimit], h[canonRemaining], h[canonReset] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// secondsUntil turns a store's reset, in Unix nanoseconds, into whole
// seconds from now, rounded up and at least 1: Retry-After and
// RateLimit-Reset are whole seconds, and "0" would invite an instant retry
// that is refused again.
func secondsUntil(reset uint64) int {
	d := time.Until(time.Unix(0, int64(reset)))
	if d <= time.Second {
		return 1
	}
	return int((d + time.Second - 1) / time.Second)
}
