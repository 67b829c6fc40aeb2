package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstream/rtstream/internal/testenv"
)

const (
	jwtAudience = "rtstream-e2e"
	jwtIssuer   = "https://issuer.e2e.invalid"
)

// TestJWTBearer runs bearer tokens through the built server, both ways it
// learns the signing keys: an ES256 key from JWT_PUBLIC_KEY (PEM) and an
// RS256 key from a JWKS served at JWT_JWKS_URL. A valid token sends to and
// reads the streams its claim names; an expired token, one for another
// audience or issuer, one signed by another key, and one without a
// streams claim for the stream are refused; the API key still works
// beside tokens.
func TestJWTBearer(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "e2e-rsa", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rsaKey.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwks.Close)

	tests := []struct {
		name   string
		env    map[string]string
		method jwt.SigningMethod
		key    crypto.Signer
		kid    string
	}{
		{"ES256 from JWT_PUBLIC_KEY", map[string]string{"JWT_PUBLIC_KEY": publicPEM(t, &ecKey.PublicKey)}, jwt.SigningMethodES256, ecKey, ""},
		{"RS256 from JWT_JWKS_URL", map[string]string{"JWT_JWKS_URL": jwks.URL}, jwt.SigningMethodRS256, rsaKey, "e2e-rsa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := newPrefix(t, "jwt")
			env := kafkaEnv(brokers, prefix)
			env["JWT_AUDIENCE"], env["JWT_ISSUER"] = jwtAudience, jwtIssuer
			for k, v := range tt.env {
				env[k] = v
			}
			s := startServer(t, "jwt", env)
			allowed, other := "jwt-a-"+randomSuffix(), "jwt-b-"+randomSuffix()
			for _, id := range []string{allowed, other} {
				if rep := call(t, http.MethodPut, s.Base+"/v1/streams/"+id, "application/json", []byte(`{}`)); rep.Status != http.StatusCreated {
					t.Fatalf("PUT %s with the API key: %s", id, rep)
				}
			}
			sign := func(method jwt.SigningMethod, key crypto.Signer, kid string, mutate func(jwt.MapClaims)) string {
				t.Helper()
				now := time.Now()
				c := jwt.MapClaims{
					"sub": "e2e", "aud": jwtAudience, "iss": jwtIssuer,
					"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
					"streams": []string{allowed},
				}
				if mutate != nil {
					mutate(c)
				}
				tok := jwt.NewWithClaims(method, c)
				if kid != "" {
					tok.Header["kid"] = kid
				}
				signed, err := tok.SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return signed
			}
			valid := sign(tt.method, tt.key, tt.kid, nil)
			event := []byte(`{"via":"jwt"}`)

			feed := openSSEWith(t, s.Base+"/v1/streams/"+allowed+"/results", withBearer(valid))
			rep := do(t, http.MethodPost, s.Base+"/v1/streams/"+allowed+"/events", "application/json", event, withBearer(valid))
			if rep.Status != http.StatusAccepted {
				t.Fatalf("send with a valid token: %s, want 202", rep)
			}
			feed.awaitResults(t, 1, resultTimeout)

			for _, path := range []string{"/v1/streams/" + other + "/events", "/v1/streams/" + other + "/results"} {
				method, body, ct := http.MethodPost, event, "application/json"
				if strings.HasSuffix(path, "/results") {
					method, body, ct = http.MethodGet, nil, ""
				}
				rep := do(t, method, s.Base+path, ct, body, withBearer(valid))
				checkProblem(t, method+" "+path+" outside the token's streams", rep, http.StatusForbidden)
			}

			// Its own streams it may send to and read, never create,
			// replace or delete (issue 19): nothing changes.
			for _, c := range []struct{ method, path string }{
				{http.MethodPut, "/v1/streams/" + allowed}, {http.MethodDelete, "/v1/streams/" + allowed},
				{http.MethodPost, "/v1/streams"},
			} {
				rep := do(t, c.method, s.Base+c.path, "application/json", []byte(`{"name":"taken over"}`), withBearer(valid))
				checkProblem(t, c.method+" "+c.path+" with a stream-limited token", rep, http.StatusForbidden)
			}
			if rep := do(t, http.MethodGet, s.Base+"/v1/streams/"+allowed, "", nil, withBearer(valid)); rep.Status != http.StatusOK || strings.Contains(string(rep.Body), "taken over") {
				t.Errorf("the token's stream after the refused writes: %s", rep)
			}

			otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			refused := []struct {
				name  string
				token string
			}{
				{"expired", sign(tt.method, tt.key, tt.kid, func(c jwt.MapClaims) {
					c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-10*time.Minute).Unix()
				})},
				{"not yet valid", sign(tt.method, tt.key, tt.kid, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() })},
				{"wrong audience", sign(tt.method, tt.key, tt.kid, func(c jwt.MapClaims) { c["aud"] = "someone-else" })},
				{"wrong issuer", sign(tt.method, tt.key, tt.kid, func(c jwt.MapClaims) { c["iss"] = "https://evil.invalid" })},
				{"no exp", sign(tt.method, tt.key, tt.kid, func(c jwt.MapClaims) { delete(c, "exp") })},
				{"signed by another key", sign(jwt.SigningMethodES256, otherEC, tt.kid, nil)},
				{"tampered signature", valid[:len(valid)-4] + "AAAA"},
			}
			for _, r := range refused {
				rep := do(t, http.MethodPost, s.Base+"/v1/streams/"+allowed+"/events", "application/json", event, withBearer(r.token))
				checkUnauthorized(t, "send with a token "+r.name, rep)
			}
			// The API key still works beside tokens, and nothing refused
			// reached the stream.
			expectNoMoreResults(t, s.Base+"/v1/streams/"+allowed+"/events", feed)
		})
	}
}

// publicPEM is the PKIX PEM form of a public key, as JWT_PUBLIC_KEY takes it.
func publicPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
