package middleware_test

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rtstream/rtstream/middleware"
)

// BenchmarkAuthenticate is the middleware's cost per request: one API_KEYS
// admin key (the single-tenant path) against a tenant key among 100 keys of
// API_KEYS_FILE, and a subscribe token.
func BenchmarkAuthenticate(b *testing.B) {
	kps := make([]middleware.KeyPrincipal, 100)
	for i := range kps {
		kps[i] = middleware.KeyPrincipal{SHA256: sha256.Sum256(fmt.Appendf(nil, "key-%d", i)), Principal: middleware.Principal{
			Name: fmt.Sprint("k", i), Tenant: fmt.Sprint("t", i%10), Scopes: []string{middleware.ScopeEventsWrite, middleware.ScopeResultsRead}}}
	}
	tokens, _ := middleware.NewSubscribeTokens(middleware.SubscribeConfig{})
	single, _ := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"admin"}, Subscribe: tokens})
	multi, _ := middleware.NewAuth(middleware.AuthConfig{Principals: kps, Subscribe: tokens})
	token := tokens.Mint(middleware.SubscribeClaims{Stream: "s", Tenant: "t0", Issuer: middleware.KeyID("key-0"), Name: "k0", Expires: 1 << 40})
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		name, method, path, header, value string
		auth                              *middleware.Auth
	}{
		{"API_KEYS admin", http.MethodPost, "/v1/streams/s/events", "X-API-Key", "admin", single},
		{"API_KEYS_FILE tenant key of 100", http.MethodPost, "/v1/streams/s/events", "X-API-Key", "key-57", multi},
		{"subscribe token", http.MethodGet, "/v1/streams/s/results", "Authorization", "Bearer " + token, multi},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.auth.Middleware(next)
			req := httptest.NewRequest(c.method, c.path, nil)
			req.Header.Set(c.header, c.value)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
