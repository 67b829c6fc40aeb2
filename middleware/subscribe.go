package middleware

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults of SubscribeConfig.
const (
	DefaultSubscribeTokenMaxTTL = time.Hour
	DefaultSubscribeTokenTTL    = 15 * time.Minute
)

// subscribePrefix starts every subscribe token, so that Authenticate tells
// one from an API key or a JWT without trying each.
const subscribePrefix = "rtstok_"

// maxSubscribeToken bounds what Parse reads: a real token is ~200 bytes.
const maxSubscribeToken = 1024

// Token errors. Each is also ErrUnauthenticated to the caller, with the same
// answer: a 401 says nothing about why a token failed.
var (
	ErrTokenMalformed = errors.New("subscribe token: malformed")
	ErrTokenSignature = errors.New("subscribe token: bad signature")
	ErrTokenExpired   = errors.New("subscribe token: expired")
)

// SubscribeConfig configures SubscribeTokens.
type SubscribeConfig struct {
	// Secret signs and verifies tokens (TOKEN_SECRET). Every instance that
	// must accept another's tokens needs the same one. Empty: a random one,
	// so tokens do not outlive the process.
	Secret []byte
	// MaxTTL caps a token's life (SUBSCRIBE_TOKEN_MAX_TTL). Default 1 h.
	MaxTTL time.Duration
}

// SubscribeTokens mints and verifies subscribe tokens: the credential a
// browser puts in a URL. A token grants results:read on one stream until it
// expires, and only while the key that minted it exists (Auth checks that).
// It is an HMAC-SHA256-signed claim set, so any instance with the secret
// verifies it without a shared store.
type SubscribeTokens struct {
	secret []byte
	maxTTL time.Duration
}

// SubscribeClaims is what a token says.
type SubscribeClaims struct {
	Stream  string `json:"s"`
	Tenant  string `json:"t"`
	Issuer  string `json:"k"` // the minting principal's ID
	Name    string `json:"n"` // the minting principal's name, for logs
	Expires int64  `json:"e"` // Unix seconds
	// Nonce makes every token unique (Mint fills it), so that two minted
	// in the same second for the same stream are two credentials, with
	// their own caps.
	Nonce string `json:"j,omitempty"`
}

// NewSubscribeTokens builds the signer; generated tells whether the secret
// was made up (and tokens will not survive a restart).
func NewSubscribeTokens(cfg SubscribeConfig) (t *SubscribeTokens, generated bool) {
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultSubscribeTokenMaxTTL
	}
	secret := cfg.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		generated = true
	}
	return &SubscribeTokens{secret: secret, maxTTL: cfg.MaxTTL}, generated
}

// MaxTTL is the longest life a token can be given.
func (t *SubscribeTokens) MaxTTL() time.Duration { return t.maxTTL }

// TTL is the life a token asked for with ttl gets: the default when zero,
// capped by MaxTTL.
func (t *SubscribeTokens) TTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = DefaultSubscribeTokenTTL
	}
	return min(ttl, t.maxTTL)
}

// Mint signs c, with a fresh nonce when it has none.
func (t *SubscribeTokens) Mint(c SubscribeClaims) string {
	if c.Nonce == "" {
		var n [9]byte
		_, _ = rand.Read(n[:])
		c.Nonce = base64.RawURLEncoding.EncodeToString(n[:])
	}
	payload, _ := json.Marshal(c) // strings and an int: cannot fail
	var b strings.Builder
	enc := base64.RawURLEncoding
	b.Grow(len(subscribePrefix) + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(sha256.Size))
	b.WriteString(subscribePrefix)
	b.WriteString(enc.EncodeToString(payload))
	mac := t.sign(b.String()[len(subscribePrefix):])
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(mac))
	return b.String()
}

func (t *SubscribeTokens) sign(payload string) []byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// TokenID is the loggable name of a subscribe token: "token-" and the
// first 12 hex digits of its SHA-256.
func TokenID(token string) string {
	d := sha256.Sum256([]byte(token))
	return "token-" + hex.EncodeToString(d[:6])
}

// IsSubscribeToken reports whether cred has a subscribe token's shape.
func IsSubscribeToken(cred string) bool { return strings.HasPrefix(cred, subscribePrefix) }

// Parse verifies token and returns its claims. The signature is checked
// before the payload is decoded, so nothing unsigned is ever parsed.
func (t *SubscribeTokens) Parse(token string, now time.Time) (SubscribeClaims, error) {
	var c SubscribeClaims
	rest, ok := strings.CutPrefix(token, subscribePrefix)
	if !ok || len(token) > maxSubscribeToken {
		return c, ErrTokenMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, ErrTokenMalformed
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return c, ErrTokenMalformed
	}
	if !hmac.Equal(mac, t.sign(payload)) {
		return c, ErrTokenSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return c, ErrTokenMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || c.Stream == "" || c.Issuer == "" {
		return SubscribeClaims{}, fmt.Errorf("%w: claims", ErrTokenMalformed)
	}
	if now.Unix() >= c.Expires {
		return SubscribeClaims{}, ErrTokenExpired
	}
	return c, nil
}

// principal is whom a token's claims name: a reader of one stream, in the
// stream's tenant, riding on the key that minted it. id names this token:
// its own rate limit and connection cap, apart from its key's and its
// sibling tokens' (a backend that mints a token per browser user must not
// have them all share one cap).
func (c SubscribeClaims) principal(id string) Principal {
	return Principal{
		ID:      id,
		Name:    c.Name + " (subscribe token)",
		Tenant:  c.Tenant,
		Scopes:  []string{ScopeResultsRead},
		Streams: []string{c.Stream},
		Issuer:  c.Issuer,
	}
}
