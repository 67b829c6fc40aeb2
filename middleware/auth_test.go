package middleware_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstream/rtstream/middleware"
)

// protected serves the auth middleware in front of a handler that echoes the
// principal, the way the API mounts it.
func protected(t *testing.T, a *middleware.Auth) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		w.Write([]byte(p.ID))
	})))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("401 with Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, b.String()
}

func TestAPIKeys(t *testing.T) {
	reader := middleware.KeyPrincipal{SHA256: sha256.Sum256([]byte("r1-secret")), Principal: middleware.Principal{
		Name: "reader", Tenant: "acme", Scopes: []string{middleware.ScopeStreamsRead, middleware.ScopeResultsRead}}}
	a, err := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"k1-secret", "k2-secret"}, Principals: []middleware.KeyPrincipal{reader}})
	if err != nil {
		t.Fatal(err)
	}
	srv := protected(t, a)
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"no key", "POST", "/v1/streams", nil, 401},
		{"X-API-Key", "POST", "/v1/streams", map[string]string{"X-API-Key": "k1-secret"}, 200},
		{"second key", "GET", "/v1/streams/a", map[string]string{"X-API-Key": "k2-secret"}, 200},
		{"bearer", "GET", "/v1/streams", map[string]string{"Authorization": "Bearer k2-secret"}, 200},
		{"bearer lowercase scheme", "GET", "/v1/streams", map[string]string{"Authorization": "bearer k1-secret"}, 200},
		{"wrong key", "GET", "/v1/streams", map[string]string{"X-API-Key": "k1-secreT"}, 401},
		{"prefix of a key", "GET", "/v1/streams", map[string]string{"X-API-Key": "k1"}, 401},
		{"basic auth", "GET", "/v1/streams", map[string]string{"Authorization": "Basic azE6eA=="}, 401},
		{"admin key in the query of results", "GET", "/v1/streams/a/results?api_key=k1-secret", nil, 401},
		{"admin key in the query of websocket", "GET", "/v1/streams/a/ws?api_key=k1-secret", nil, 401},
		{"admin key as ?token=", "GET", "/v1/streams/a/results?token=k1-secret", nil, 401},
		{"read-only key in the query of results", "GET", "/v1/streams/a/results?api_key=r1-secret", nil, 200},
		{"read-only key in the query of seed results", "GET", "/stream/a/results?api_key=r1-secret", nil, 200},
		{"read-only key in the query of websocket", "GET", "/v1/streams/a/ws?api_key=r1-secret", nil, 200},
		{"read-only key in the query of seed websocket", "GET", "/stream/a/ws?api_key=r1-secret", nil, 401},
		{"read-only key in the query of websocket, POST", "POST", "/v1/streams/a/ws?api_key=r1-secret", nil, 401},
		{"read-only key in the query elsewhere", "GET", "/v1/streams/a?api_key=r1-secret", nil, 401},
		{"read-only key in the query of send", "POST", "/v1/streams/a/events?api_key=r1-secret", nil, 401},
		{"read-only key in the query of results, POST", "POST", "/v1/streams/a/results?api_key=r1-secret", nil, 401},
		{"wrong query key", "GET", "/v1/streams/a/results?api_key=nope", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body := do(t, tt.method, srv.URL+tt.path, tt.hdr)
			if got != tt.want {
				t.Fatalf("status %d; want %d (%s)", got, tt.want, body)
			}
			if strings.Contains(body, "secret") {
				t.Fatalf("answer reveals a key: %s", body)
			}
			if got == 200 && !strings.HasPrefix(body, "key-") {
				t.Fatalf("principal %q", body)
			}
		})
	}
}

func TestKeyIDRevealsNothing(t *testing.T) {
	id := middleware.KeyID("my-secret-key")
	if strings.Contains(id, "secret") || id == middleware.KeyID("my-secret-kez") || len(id) != len("key-")+12 {
		t.Fatalf("KeyID = %q", id)
	}
}

func TestNoKeyNeedsExplicitDisable(t *testing.T) {
	if _, err := middleware.NewAuth(middleware.AuthConfig{}); err == nil {
		t.Fatal("no keys and not disabled was accepted")
	}
	a, err := middleware.NewAuth(middleware.AuthConfig{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := do(t, "GET", protected(t, a).URL+"/v1/streams", nil); got != 200 {
		t.Fatalf("disabled auth answered %d", got)
	}
	if k1, k2 := middleware.GenerateKey(), middleware.GenerateKey(); k1 == k2 || len(k1) < 40 {
		t.Fatalf("GenerateKey: %q %q", k1, k2)
	}
}

// jwks serves the public keys as a JWKS.
func jwks(t *testing.T, rsaKey *rsa.PublicKey, ecKey *ecdsa.PublicKey) *httptest.Server {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32)))},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key crypto.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := jwks(t, &rsaKey.PublicKey, &ecKey.PublicKey)

	v, err := middleware.NewJWT(t.Context(), middleware.JWTConfig{JWKSURL: keys.URL, Audience: "rtstream", Issuer: "https://issuer.test"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"plain-key"}, Tokens: v})
	if err != nil {
		t.Fatal(err)
	}
	srv := protected(t, a)
	now := time.Now()
	base := func(streams any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "aud": "rtstream", "iss": "https://issuer.test", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
		if streams != nil {
			c["streams"] = streams
		}
		return c
	}
	with := func(c jwt.MapClaims, k string, v any) jwt.MapClaims { c[k] = v; return c }
	tests := []struct {
		name  string
		token string
		path  string
		want  int
	}{
		{"RS256 all streams", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, base("*")), "/v1/streams/s1/events", 200},
		{"ES256 listed stream", sign(t, jwt.SigningMethodES256, "e1", ecKey, base([]string{"s1", "s2"})), "/v1/streams/s2/results", 200},
		{"stream not in claim", sign(t, jwt.SigningMethodES256, "e1", ecKey, base([]string{"s1"})), "/v1/streams/s3/events", 403},
		{"restricted token creating", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, base([]string{"s1"})), "/v1/streams", 403},
		{"no streams claim", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, base(nil)), "/v1/streams/s1", 403},
		{"expired", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, with(base("*"), "exp", now.Add(-time.Hour).Unix())), "/v1/streams/s1", 401},
		{"no exp", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, func() jwt.MapClaims { c := base("*"); delete(c, "exp"); return c }()), "/v1/streams/s1", 401},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, with(base("*"), "nbf", now.Add(time.Hour).Unix())), "/v1/streams/s1", 401},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, with(base("*"), "aud", "other")), "/v1/streams/s1", 401},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, with(base("*"), "iss", "https://evil.test")), "/v1/streams/s1", 401},
		{"wrong signature", sign(t, jwt.SigningMethodRS256, "r1", otherRSA, base("*")), "/v1/streams/s1", 401},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, "zz", rsaKey, base("*")), "/v1/streams/s1", 401},
		{"HS256 with the RSA modulus", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base("*"))
			tok.Header["kid"] = "r1"
			s, _ := tok.SignedString(rsaKey.N.Bytes())
			return s
		}(), "/v1/streams/s1", 401},
		{"alg none", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, base("*")).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(), "/v1/streams/s1", 401},
		{"garbage with dots", "a.b.c", "/v1/streams/s1", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body := do(t, "GET", srv.URL+tt.path, map[string]string{"Authorization": "Bearer " + tt.token})
			if got != tt.want {
				t.Fatalf("status %d; want %d (%s)", got, tt.want, body)
			}
			if got == 200 && body != "jwt:alice" {
				t.Fatalf("principal %q", body)
			}
		})
	}
	// A token limited to streams may send to and read them, and do
	// nothing else with them: not create, replace or delete (ADR 0010).
	limited := map[string]string{"Authorization": "Bearer " + sign(t, jwt.SigningMethodRS256, "r1", rsaKey, base([]string{"x", "start"}))}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/v1/streams/x/events", 200}, {"POST", "/stream/x/send", 200},
		{"GET", "/v1/streams/x/results", 200}, {"GET", "/stream/x/results", 200},
		{"GET", "/v1/streams/x/ws", 200}, {"GET", "/v1/streams/x/dead-letters", 200}, {"GET", "/v1/streams/x", 200},
		{"PUT", "/v1/streams/x", 403}, {"DELETE", "/v1/streams/x", 403}, {"POST", "/v1/streams", 403},
		{"POST", "/stream/start", 403}, {"GET", "/v1/streams", 403}, {"POST", "/v1/streams/x/tokens", 403},
		{"POST", "/v1/streams/y/events", 403},
	} {
		if got, body := do(t, c.method, srv.URL+c.path, limited); got != c.want {
			t.Errorf("limited token %s %s: %d %s; want %d", c.method, c.path, got, body, c.want)
		}
	}
	// API keys still work beside tokens.
	if got, _ := do(t, "GET", srv.URL+"/v1/streams", map[string]string{"X-API-Key": "plain-key"}); got != 200 {
		t.Fatalf("API key beside JWT: %d", got)
	}
}

func FuzzAuthenticate(f *testing.F) {
	a, err := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"k"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("X-API-Key", "k", "/v1/streams")
	f.Add("Authorization", "Bearer a.b.c", "/v1/streams/x/results?api_key=k")
	f.Add("Authorization", "Bearer", "/stream/x/results")
	f.Fuzz(func(t *testing.T, header, value, target string) {
		req := httptest.NewRequest("GET", "/", nil)
		if u, err := req.URL.Parse(target); err == nil {
			req.URL = u
		}
		if http.CanonicalHeaderKey(header) != "" && !strings.ContainsAny(header+value, "\r\n\x00") {
			req.Header.Set(header, value)
		}
		rec := httptest.NewRecorder()
		a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 401 && rec.Code != 403 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

func FuzzJWTVerify(f *testing.F) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	v, err := middleware.NewJWT(f.Context(), middleware.JWTConfig{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}, Audience: "a"})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "s", "aud": "a", "exp": time.Now().Add(time.Hour).Unix(), "streams": []string{"x"}}).SignedString(rsaKey)
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, token string) {
		// Base64 lets a few different strings decode to the signed bytes;
		// whatever is accepted must carry exactly the signed claims.
		p, err := v.Verify(t.Context(), token)
		if err == nil && (p.ID != "jwt:s" || len(p.Streams) != 1 || p.Streams[0] != "x") {
			t.Fatalf("accepted %q as %+v", token, p)
		}
	})
}

// TestJWTScopesAndTenant: a token's scope or scopes claim gives it those of
// rtstream's scopes (others ignored) in the tenant of its tenant claim
// (default without one); a token without one keeps its old rights, admin of
// the default tenant.
func TestJWTScopesAndTenant(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := jwks(t, &rsaKey.PublicKey, &key.PublicKey)
	v, err := middleware.NewJWT(t.Context(), middleware.JWTConfig{JWKSURL: keys.URL, TenantClaim: "org"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := middleware.NewAuth(middleware.AuthConfig{Tokens: v})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		name       string
		claims     jwt.MapClaims
		wantScopes []string
		wantTenant string
	}{
		{"scope string", jwt.MapClaims{"sub": "a", "exp": exp, "streams": "*", "scope": "openid results:read events:write", "org": "acme"},
			[]string{"results:read", "events:write"}, "acme"},
		{"scopes list", jwt.MapClaims{"sub": "b", "exp": exp, "streams": "*", "scopes": []string{"streams:read", "other:thing"}, "org": "globex"},
			[]string{"streams:read"}, "globex"},
		{"scopes without tenant", jwt.MapClaims{"sub": "c", "exp": exp, "streams": "*", "scope": "results:read"},
			[]string{"results:read"}, "default"},
		{"no scope claim", jwt.MapClaims{"sub": "d", "exp": exp, "streams": "*", "org": "acme"},
			[]string{"admin"}, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/streams/s1/results", nil)
			r.Header.Set("Authorization", "Bearer "+sign(t, jwt.SigningMethodES256, "e1", key, tc.claims))
			p, err := a.Authenticate(r)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Scopes, tc.wantScopes) || p.Tenant != tc.wantTenant {
				t.Fatalf("principal %+v; want scopes %v in tenant %s", p, tc.wantScopes, tc.wantTenant)
			}
		})
	}
}
