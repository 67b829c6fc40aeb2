package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
)

// tenantStreams knows every stream, as tenant's.
type tenantStreams struct {
	fakeStreams
	tenant string
}

func (f tenantStreams) Get(_ context.Context, id string) (rtstream.Stream, error) {
	return rtstream.Stream{ID: id, Tenant: f.tenant}, nil
}

// BenchmarkSendAuthorization is the HTTP side of a single-event POST (every
// middleware, decoding, the checks; Kafka faked) by who sends it: nobody
// (auth disabled), an API_KEYS admin (the single-tenant path), and a tenant
// key among 100 of API_KEYS_FILE (scope and tenant checks). The difference
// is what tenants and scopes cost a send.
func BenchmarkSendAuthorization(b *testing.B) {
	kps := make([]middleware.KeyPrincipal, 100)
	for i := range kps {
		kps[i] = middleware.KeyPrincipal{SHA256: sha256.Sum256(fmt.Appendf(nil, "key-%d", i)), Principal: middleware.Principal{
			Name: fmt.Sprint("k", i), Tenant: fmt.Sprint("t", i%10), Scopes: []string{middleware.ScopeEventsWrite, middleware.ScopeResultsRead}}}
	}
	single, _ := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"admin"}})
	multi, _ := middleware.NewAuth(middleware.AuthConfig{Principals: kps})
	for _, c := range []struct {
		name, key, tenant string
		auth              *middleware.Auth
	}{
		{"auth disabled", "", "", nil},
		{"API_KEYS admin", "admin", "", single},
		{"API_KEYS_FILE tenant key of 100", "key-57", "t7", multi},
	} {
		b.Run(c.name, func(b *testing.B) {
			deps := Deps{Streams: tenantStreams{tenant: c.tenant}, Events: &fakeEvents{}}
			if c.auth != nil {
				deps.Authenticate = c.auth.Middleware
			}
			h := NewServer(deps)
			body := []byte(`{"temp":21.5,"sensor":"a"}`)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/streams/s1/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", c.key)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusAccepted {
					b.Fatalf("answered %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
