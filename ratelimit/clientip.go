package ratelimit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	chimw "github.com/go-chi/chi/v5/middleware"
)

// peerKey holds the client IP that ResolveClientIP fell back to when chi
// could not name one.
type peerKey struct{}

// ResolveClientIP returns middleware that works out who the client is and
// keeps it in the request context for ClientIP, the IP limit and the access
// log. Mount it outermost: a middleware that runs before it cannot see it.
//
// The raw X-Forwarded-For is never believed, since any client can send one.
// With no trusted proxies the TCP peer is the client. With trusted proxies,
// the header is read only when the peer is itself a trusted proxy, and the
// client is the rightmost entry that is not a trusted proxy (chi's
// ClientIPFromXFF does the walk). When that yields nothing, because the
// proxy sent no header or an entry does not parse, the peer is the client:
// such requests share the proxy's budget instead of getting one each.
//
// It panics if a prefix is invalid (a zero netip.Prefix), as chi does: that
// is a wiring bug, found at start-up.
func ResolveClientIP(trusted []netip.Prefix) func(http.Handler) http.Handler {
	resolve := chimw.ClientIPFromRemoteAddr
	if len(trusted) > 0 {
		cidrs := make([]string, len(trusted))
		for i, p := range trusted {
			if !p.IsValid() {
				panic(fmt.Sprintf("ratelimit.ResolveClientIP: trusted proxy %d is not a valid prefix", i))
			}
			cidrs[i] = p.Masked().String()
		}
		resolve = chimw.ClientIPFromXFF(cidrs...)
	}
	return func(next http.Handler) http.Handler {
		return resolve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !chimw.GetClientIPAddr(r.Context()).IsValid() {
				r = r.WithContext(context.WithValue(r.Context(), peerKey{}, peerIP(r.RemoteAddr)))
			}
			next.ServeHTTP(w, r)
		}))
	}
}

// ClientIP returns the client IP that ResolveClientIP (or one of chi's
// ClientIPFrom* middlewares) found, or "" when none ran.
func ClientIP(ctx context.Context) string {
	if ip := chimw.GetClientIPAddr(ctx); ip.IsValid() {
		return ip.String()
	}
	s, _ := ctx.Value(peerKey{}).(string)
	return s
}

// peerIP is the host part of a RemoteAddr, v4-mapped IPv6 folded to IPv4 so
// one client has one key. A RemoteAddr that is no IP (a Unix socket, a test
// value) is returned as it is: it still names the peer.
func peerIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return remoteAddr
	}
	return ip.Unmap().String()
}

// requestIP is the client IP of r, or its peer when ResolveClientIP did not
// run, so the IP limit never keys on a header the client wrote.
func requestIP(r *http.Request) string {
	if ip := ClientIP(r.Context()); ip != "" {
		return ip
	}
	return peerIP(r.RemoteAddr)
}

// ipBucket is the limiter key for a client IP. An IPv6 client is limited by
// its /64: one subscriber is usually handed a whole /64, so keying on single
// addresses would give it 2^64 budgets.
func ipBucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes or bare
// IPs (a bare IP is its own /32 or /128), the form of a TRUSTED_PROXIES
// variable. Blank entries are ignored; an empty list trusts no proxy.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
