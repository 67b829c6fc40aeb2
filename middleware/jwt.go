package middleware

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstream/rtstream"
)

// DefaultTenantClaim is JWTConfig.TenantClaim's default.
const DefaultTenantClaim = "tenant"

// JWTConfig configures bearer-token verification. Either JWKSURL or
// PublicKeys must be set.
type JWTConfig struct {
	// JWKSURL is fetched for the signing keys; unknown key ids trigger a
	// refetch, at most once per MinRefresh (default 30 s).
	JWKSURL    string
	MinRefresh time.Duration
	// PublicKeys verify tokens without a JWKS (JWT_PUBLIC_KEY, PEM).
	PublicKeys []crypto.PublicKey
	// Audience and Issuer, when set, must match the token's aud and iss.
	Audience string
	Issuer   string
	// Client fetches the JWKS. Default: a client with a 5 s timeout.
	Client *http.Client
	// TenantClaim names the claim that holds the token's tenant
	// (JWT_TENANT_CLAIM). Default "tenant".
	TenantClaim string
}

// JWT verifies RS256 and ES256 tokens: signature, exp (required), nbf, aud,
// iss; its "streams" claim (a list of ids, or "*") limits the streams the
// token may use.
type JWT struct {
	cfg    JWTConfig
	parser *jwt.Parser

	mu        sync.Mutex
	keys      map[string]crypto.PublicKey // by kid, from the JWKS
	fetchedAt time.Time
}

// NewJWT builds the verifier; with a JWKS URL it fetches the keys once now.
func NewJWT(ctx context.Context, cfg JWTConfig) (*JWT, error) {
	if cfg.JWKSURL == "" && len(cfg.PublicKeys) == 0 {
		return nil, errors.New("jwt: need a JWKS URL or a public key")
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30 * time.Second),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v := &JWT{cfg: cfg, parser: jwt.NewParser(opts...)}
	if cfg.JWKSURL != "" {
		if err := v.refresh(ctx); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Looks reports whether token has a JWT's shape (three dot-separated parts),
// which an API key never has.
func (v *JWT) Looks(token string) bool { return strings.Count(token, ".") == 2 }

type claims struct {
	jwt.RegisteredClaims
	Streams json.RawMessage `json:"streams,omitempty"`
	// Scope is OAuth's space-separated scope claim; Scopes a list.
	Scope  string   `json:"scope,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// Verify checks token and returns its principal.
func (v *JWT) Verify(ctx context.Context, token string) (Principal, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.key(ctx, t) }); err != nil {
		return Principal{}, fmt.Errorf("jwt: %w", err)
	}
	p := Principal{ID: "jwt:" + c.Subject, Name: "jwt:" + c.Subject}
	if c.Scope != "" || c.Scopes != nil {
		// Scopes of other services may ride along: only rtstream's count.
		p.Scopes = []string{}
		for _, sc := range append(strings.Fields(c.Scope), c.Scopes...) {
			if slices.Contains(Scopes, sc) && !slices.Contains(p.Scopes, sc) {
				p.Scopes = append(p.Scopes, sc)
			}
		}
		p.Tenant = tenantClaim(token, v.cfg.TenantClaim)
	}
	switch s := strings.TrimSpace(string(c.Streams)); {
	case s == "" || s == "null":
		p.Streams = []string{} // no claim: no stream
	case s == `"*"`:
		p.Streams = nil
	default:
		var ids []string
		if err := json.Unmarshal(c.Streams, &ids); err != nil {
			var one string
			if json.Unmarshal(c.Streams, &one) != nil {
				return Principal{}, errors.New("jwt: streams claim is neither a list nor a string")
			}
			ids = []string{one}
		}
		if ids == nil {
			ids = []string{}
		}
		p.Streams = ids
	}
	return p, nil
}

// tenantClaim reads the named claim of a token already verified: its
// tenant, rtstream.DefaultTenant when it has none.
func tenantClaim(token, name string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return rtstream.DefaultTenant
	}
	var all map[string]json.RawMessage
	var tenant string
	if json.Unmarshal(payload, &all) != nil || json.Unmarshal(all[name], &tenant) != nil || tenant == "" {
		return rtstream.DefaultTenant
	}
	return tenant
}

// key finds the verification key of t.
func (v *JWT) key(ctx context.Context, t *jwt.Token) (any, error) {
	if v.cfg.JWKSURL == "" {
		return jwt.VerificationKeySet{Keys: toVerificationKeys(v.cfg.PublicKeys)}, nil
	}
	kid, _ := t.Header["kid"].(string)
	v.mu.Lock()
	k, ok := v.keys[kid]
	stale := time.Since(v.fetchedAt) > v.cfg.MinRefresh
	v.mu.Unlock()
	if ok {
		return k, nil
	}
	if !stale {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	// The fetch serves every request after this one (a failed fetch holds
	// off the next for MinRefresh), so a client that hangs up must not
	// cancel it; the JWKS client's timeout bounds it.
	if err := v.refresh(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func toVerificationKeys(keys []crypto.PublicKey) []jwt.VerificationKey {
	out := make([]jwt.VerificationKey, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}

// jwk is the part of RFC 7517's JSON Web Key that RS256 and ES256 need.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (v *JWT) refresh(ctx context.Context) error {
	v.mu.Lock()
	v.fetchedAt = time.Now() // also on failure: no refetch storm
	v.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: %s answered %s", v.cfg.JWKSURL, resp.Status)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			continue // a key we cannot use is not an error for the others
		}
		keys[k.Kid] = pub
	}
	v.mu.Lock()
	v.keys = keys
	v.mu.Unlock()
	return nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}

func (k jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64int(k.N)
		e, err2 := b64int(k.E)
		if err1 != nil || err2 != nil || !e.IsInt64() {
			return nil, errors.New("bad RSA key")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, errors.New("only P-256")
		}
		x, err1 := b64int(k.X)
		y, err2 := b64int(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC key")
		}
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		if !pub.Curve.IsOnCurve(x, y) { //nolint:staticcheck // validating untrusted input
			return nil, errors.New("EC point not on curve")
		}
		return pub, nil
	}
	return nil, fmt.Errorf("key type %q", k.Kty)
}
