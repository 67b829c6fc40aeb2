package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/problem"
)

// Principal is who a request was authenticated as.
type Principal struct {
	// ID names the credential without revealing it: "key-" and the first
	// 12 hex digits of the key's SHA-256, or "jwt:" and the token's subject.
	ID string
	// Name is the key's name in API_KEYS_FILE (ID otherwise), for logs.
	Name string
	// Tenant owns what the principal creates and bounds what it sees.
	Tenant string
	// Scopes are what the principal may do (Scope*); ScopeAdmin is all of
	// them, in every tenant.
	Scopes []string
	// Streams limits the streams the principal may use; nil means all.
	Streams []string
	// Issuer is, for a subscribe token, the ID of the key that minted it:
	// the token works only while that key does.
	Issuer string
}

// The scopes of a principal.
const (
	ScopeStreamsWrite = "streams:write" // create, replace, delete
	ScopeStreamsRead  = "streams:read"  // get, list
	ScopeEventsWrite  = "events:write"  // send, over HTTP or WebSocket
	ScopeResultsRead  = "results:read"  // SSE, WebSocket, poll, dead letters
	ScopeAdmin        = "admin"         // everything, in every tenant
)

// Scopes lists every scope.
var Scopes = []string{ScopeStreamsWrite, ScopeStreamsRead, ScopeEventsWrite, ScopeResultsRead, ScopeAdmin}

// Has reports whether the principal holds scope (admin holds every one).
func (p Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, ScopeAdmin) || slices.Contains(p.Scopes, scope)
}

// Sees reports whether the principal may see a stream of tenant.
func (p Principal) Sees(tenant string) bool {
	return p.Tenant == tenant || slices.Contains(p.Scopes, ScopeAdmin)
}

// readOnly reports whether the principal can change nothing: only such a
// credential may travel in a URL, where histories and proxy logs keep it.
func (p Principal) readOnly() bool {
	for _, sc := range p.Scopes {
		if sc != ScopeStreamsRead && sc != ScopeResultsRead {
			return false
		}
	}
	return true
}

// holder is the key whose removal ends the principal's held connections.
func (p Principal) holder() string {
	if p.Issuer != "" {
		return p.Issuer
	}
	return p.ID
}

// Admin is the principal of API_KEYS keys, JWTs without a scope claim and,
// with auth disabled, every request: full rights, in DefaultTenant.
func Admin(id string) Principal { return admin(id, nil) }

func admin(id string, streams []string) Principal {
	return Principal{ID: id, Name: id, Tenant: rtstream.DefaultTenant, Scopes: []string{ScopeAdmin}, Streams: streams}
}

// MayUse reports whether the principal may send to or read streamID.
func (p Principal) MayUse(streamID string) bool {
	return p.Streams == nil || slices.Contains(p.Streams, streamID)
}

// Anonymous is the principal of every request when auth is disabled.
const Anonymous = "anonymous"

type principalKey struct{}

// PrincipalFrom returns the request's principal, if it was authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// ErrUnauthenticated is returned for a missing, unknown or invalid credential.
// Every such case gets the same answer, so a caller learns nothing about keys.
var ErrUnauthenticated = errors.New("missing or invalid credentials")

// TokenVerifier checks bearer tokens that are not API keys (JWTs).
type TokenVerifier interface {
	// Looks reports whether a bearer credential is meant for this verifier.
	Looks(token string) bool
	Verify(ctx context.Context, token string) (Principal, error)
}

// Auth authenticates API requests with API keys, subscribe tokens and,
// when configured, JWTs.
type Auth struct {
	static    []string
	set       atomic.Pointer[keySet]
	holds     holds
	tokens    TokenVerifier
	subscribe *SubscribeTokens
	disabled  bool
	failures  func(reason string)
}

// AuthConfig configures Auth.
type AuthConfig struct {
	// Keys are the accepted API keys (API_KEYS): admins of DefaultTenant.
	Keys []string
	// Principals are the keys of API_KEYS_FILE, by the SHA-256 of each;
	// SetKeys replaces them.
	Principals []KeyPrincipal
	// Tokens, when set, verifies bearer JWTs beside the keys.
	Tokens TokenVerifier
	// Subscribe, when set, verifies subscribe tokens.
	Subscribe *SubscribeTokens
	// Disabled lets every request through as an anonymous principal; only
	// an explicit AUTH_DISABLED=true sets it.
	Disabled bool
	// Failures, when set, is told the reason of every rejected request
	// (missing, invalid, forbidden) for metrics.
	Failures func(reason string)
}

// NewAuth builds the authenticator. Keys are kept as SHA-256 digests: compared
// in constant time at a fixed length, so neither timing nor length says
// anything about a key.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	a := &Auth{static: cfg.Keys, tokens: cfg.Tokens, subscribe: cfg.Subscribe, disabled: cfg.Disabled, failures: cfg.Failures}
	a.set.Store(newKeySet(cfg.Keys, cfg.Principals))
	if !a.disabled && len(a.set.Load().keys) == 0 && a.tokens == nil {
		return nil, errors.New("auth: no API key and no token verifier; set API_KEYS or AUTH_DISABLED=true")
	}
	if a.failures == nil {
		a.failures = func(string) {}
	}
	return a, nil
}

// KeyPrincipal is a key of API_KEYS_FILE: its digest and whom it names.
type KeyPrincipal struct {
	SHA256    [sha256.Size]byte
	Principal Principal
}

// KeyID is the loggable name of an API key.
func KeyID(key string) string {
	d := sha256.Sum256([]byte(key))
	return "key-" + hex.EncodeToString(d[:6])
}

// GenerateKey makes a random API key for a server started without one.
func GenerateKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "rts_" + hex.EncodeToString(b[:])
}

// heldRoute is where connections are held open, and where a credential may
// come in the query (?token=, or ?api_key= for read-only keys): the results
// routes and the WebSocket route, because browsers' EventSource and
// WebSocket cannot set headers.
var heldRoute = regexp.MustCompile(`^/(?:(?:v1/streams|stream)/[^/]+/results|v1/streams/[^/]+/ws)$`)

// streamRoute finds the stream id a route is about.
var streamRoute = regexp.MustCompile(`^/(?:v1/streams|stream)/([^/]+)(?:/|$)`)

// sendOrRead are the routes a credential limited to some streams may use
// (ADR 0010): send to them and read them. Creating, replacing and deleting a
// stream, even one it names, is not among them.
var sendOrRead = []struct {
	method string
	route  *regexp.Regexp
}{
	{http.MethodPost, regexp.MustCompile(`^/(?:v1/streams/[^/]+/events|stream/[^/]+/send)$`)},
	{http.MethodGet, regexp.MustCompile(`^/(?:v1/streams/[^/]+(?:/results|/ws|/dead-letters)?|stream/[^/]+/results)$`)},
	{http.MethodHead, regexp.MustCompile(`^/v1/streams/[^/]+$`)},
}

// limitedMayDo reports whether a credential limited to some streams may
// make this request: a send or a read of one of its streams.
func limitedMayDo(p Principal, r *http.Request) bool {
	m := streamRoute.FindStringSubmatch(r.URL.Path)
	if m == nil || !p.MayUse(m[1]) {
		return false
	}
	for _, a := range sendOrRead {
		if r.Method == a.method && a.route.MatchString(r.URL.Path) {
			return true
		}
	}
	return false
}

// credential takes the request's credential from X-API-Key, Authorization:
// Bearer, or (GET of the results and WebSocket routes only) the token or
// api_key query parameter; inURL says it came from the query.
func credential(r *http.Request) (cred string, inURL, ok bool) {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k, false, true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token), false, true
		}
		return "", false, false
	}
	if r.Method != http.MethodGet || r.URL.RawQuery == "" || !heldRoute.MatchString(r.URL.Path) {
		return "", false, false
	}
	q := r.URL.Query()
	if k := q.Get("token"); k != "" {
		return k, true, true
	}
	if k := q.Get("api_key"); k != "" {
		return k, true, true
	}
	return "", false, false
}

// ErrKeyInURL refuses a credential that could change something when it
// comes in a URL.
var ErrKeyInURL = errors.New("only read-only credentials may be passed in a URL")

// Authenticate returns the principal of r, or an error that is
// ErrUnauthenticated (and ErrKeyInURL for a powerful key in a URL).
func (a *Auth) Authenticate(r *http.Request) (Principal, error) {
	cred, inURL, ok := credential(r)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	p, err := a.principalOf(r.Context(), cred)
	if err != nil {
		return Principal{}, err
	}
	if inURL && !p.readOnly() {
		return Principal{}, errors.Join(ErrUnauthenticated, ErrKeyInURL)
	}
	return p, nil
}

func (a *Auth) principalOf(ctx context.Context, cred string) (Principal, error) {
	switch {
	case a.subscribe != nil && IsSubscribeToken(cred):
		return a.verifySubscribe(cred)
	case a.tokens != nil && a.tokens.Looks(cred):
		p, err := a.tokens.Verify(ctx, cred)
		if err != nil {
			return Principal{}, errors.Join(ErrUnauthenticated, err)
		}
		if p.Scopes == nil {
			// A token without scopes keeps the rights tokens had before.
			p = admin(p.ID, p.Streams)
		}
		return p, nil
	}
	if p, ok := a.set.Load().lookup(cred); ok {
		return p, nil
	}
	return Principal{}, ErrUnauthenticated
}

// verifySubscribe checks a subscribe token, and that the key that minted
// it still exists and may still read the stream (JWT principals cannot be
// removed: their tokens live out their TTL).
func (a *Auth) verifySubscribe(cred string) (Principal, error) {
	c, err := a.subscribe.Parse(cred, time.Now())
	if err != nil {
		return Principal{}, errors.Join(ErrUnauthenticated, err)
	}
	if strings.HasPrefix(c.Issuer, "key-") {
		issuer, ok := a.set.Load().byID(c.Issuer)
		if !ok || !issuer.Has(ScopeResultsRead) || !issuer.MayUse(c.Stream) || !issuer.Sees(c.Tenant) {
			return Principal{}, errors.Join(ErrUnauthenticated, ErrRevoked)
		}
	}
	return c.principal(TokenID(cred)), nil
}

// Middleware answers 401 to requests without a valid credential and 403 to
// JWT principals that may not use the route's stream; it puts the principal
// in the context for the others. A held connection (SSE, WebSocket, long
// poll) gets a Held context that a reload ends when its key is removed.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.disabled {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, admin(Anonymous, nil))))
			return
		}
		p, err := a.Authenticate(r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		if p.Streams != nil && p.Issuer == "" && !limitedMayDo(p, r) {
			// Subscribe tokens are left to the handlers, which answer 404
			// for another stream, like for an unknown one.
			a.failures("forbidden")
			problem.Write(w, r, problem.New(http.StatusForbidden,
				"this token may only send to and read the streams it names: creating, replacing and deleting streams need a key"))
			return
		}
		if id := keyIDSlot(r.Context()); id != nil {
			*id = p.ID
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		if r.Method == http.MethodGet && heldRoute.MatchString(r.URL.Path) {
			// A key's ID, not the key set of the moment, says the holder is
			// a key: a reload between the authentication and this line
			// must not turn a removed key into one never checked again.
			keyed := strings.HasPrefix(p.holder(), keyIDPrefix)
			ctx = context.WithValue(ctx, holdKey{}, hold{a: a, key: p.holder(), keyed: keyed})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (a *Auth) refuse(w http.ResponseWriter, r *http.Request, err error) {
	reason := "invalid"
	if _, _, ok := credential(r); !ok {
		reason = "missing"
	}
	a.failures(reason)
	w.Header().Set("WWW-Authenticate", `Bearer realm="rtstream"`)
	detail := "a valid credential is required: X-API-Key or Authorization: Bearer (results and WebSocket routes also take ?token= with a subscribe token)"
	if errors.Is(err, ErrKeyInURL) {
		detail = "this key may change things, so it may not travel in a URL (histories and proxy logs keep it): " +
			"mint a subscribe token with POST /v1/streams/{id}/tokens and pass it as ?token=, or use a read-only key"
	}
	problem.Write(w, r, problem.New(http.StatusUnauthorized, detail))
}
