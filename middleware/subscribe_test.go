package middleware_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/middleware"
)

func claims(stream string, expires time.Time) middleware.SubscribeClaims {
	return middleware.SubscribeClaims{Stream: stream, Tenant: "acme", Issuer: middleware.KeyID("alice-key"), Name: "alice", Expires: expires.Unix()}
}

func TestSubscribeTokenParse(t *testing.T) {
	now := time.Now()
	tokens, generated := middleware.NewSubscribeTokens(middleware.SubscribeConfig{Secret: []byte("s3cret")})
	other, _ := middleware.NewSubscribeTokens(middleware.SubscribeConfig{Secret: []byte("another")})
	twin, _ := middleware.NewSubscribeTokens(middleware.SubscribeConfig{Secret: []byte("s3cret")})
	if generated {
		t.Fatal("a given secret was reported as generated")
	}
	good := tokens.Mint(claims("st-1", now.Add(time.Minute)))
	flip := []byte(good)
	flip[len(subscribePrefixOf(good))+3] ^= 1
	tests := []struct {
		name  string
		by    *middleware.SubscribeTokens
		token string
		want  error
	}{
		{"minted here", tokens, good, nil},
		{"minted by another instance with the same secret", twin, good, nil},
		{"another secret", other, good, middleware.ErrTokenSignature},
		{"a payload byte changed", tokens, string(flip), middleware.ErrTokenSignature},
		{"signature cut", tokens, good[:len(good)-2], middleware.ErrTokenMalformed},
		{"no signature", tokens, strings.Split(good, ".")[0], middleware.ErrTokenMalformed},
		{"expired", tokens, tokens.Mint(claims("st-1", now.Add(-time.Second))), middleware.ErrTokenExpired},
		{"an API key", tokens, "rts_0123", middleware.ErrTokenMalformed},
		{"too long", tokens, good + strings.Repeat("A", 2000), middleware.ErrTokenMalformed},
		{"no stream", tokens, tokens.Mint(claims("", now.Add(time.Minute))), middleware.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.by.Parse(tt.token, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Parse: %v; want %v", err, tt.want)
			}
			if err == nil && c.Stream != "st-1" {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func subscribePrefixOf(token string) string { return token[:strings.IndexByte(token, '_')+1] }

func TestSubscribeTokenTTL(t *testing.T) {
	tokens, generated := middleware.NewSubscribeTokens(middleware.SubscribeConfig{MaxTTL: 30 * time.Minute})
	if !generated {
		t.Fatal("no secret given, none generated")
	}
	for _, tt := range []struct{ ask, want time.Duration }{
		{0, middleware.DefaultSubscribeTokenTTL},
		{time.Minute, time.Minute},
		{2 * time.Hour, 30 * time.Minute},
	} {
		if got := tokens.TTL(tt.ask); got != tt.want {
			t.Errorf("TTL(%v) = %v; want %v", tt.ask, got, tt.want)
		}
	}
}

// TestSubscribeTokenAuth: a token authenticates as a reader of its stream,
// only in a GET's query or a bearer header, and stops working, closing its
// held connections, when the key that minted it is removed.
func TestSubscribeTokenAuth(t *testing.T) {
	tokens, _ := middleware.NewSubscribeTokens(middleware.SubscribeConfig{})
	alice := middleware.KeyPrincipal{SHA256: sha256.Sum256([]byte("alice-key")), Principal: middleware.Principal{
		Name: "alice", Tenant: "acme", Scopes: []string{middleware.ScopeResultsRead, middleware.ScopeEventsWrite}}}
	a, err := middleware.NewAuth(middleware.AuthConfig{Keys: []string{"admin-key"}, Principals: []middleware.KeyPrincipal{alice}, Subscribe: tokens})
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan context.Context, 1)
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		if strings.HasSuffix(r.URL.Path, "/results") {
			h, release := middleware.Hold(r.Context(), r.Context())
			defer release()
			held <- h
			<-h.Done()
		}
		w.Write([]byte(p.ID + " " + p.Tenant + " " + strings.Join(p.Scopes, ",") + " " + strings.Join(p.Streams, ",")))
	})))
	defer srv.Close()
	token := tokens.Mint(claims("st-1", time.Now().Add(time.Minute)))
	if got, body := do(t, "GET", srv.URL+"/v1/streams/st-1/ws?token="+token, nil); got != 200 || body != middleware.TokenID(token)+" acme results:read st-1" {
		t.Fatalf("?token= answered %d %q", got, body)
	}
	if got, _ := do(t, "GET", srv.URL+"/v1/streams/st-1", map[string]string{"Authorization": "Bearer " + token}); got != 200 {
		t.Fatalf("bearer token answered %d; the handlers decide what it may do", got)
	}
	if got, _ := do(t, "GET", srv.URL+"/v1/streams/st-1?token="+token, nil); got != 401 {
		t.Fatalf("?token= outside the held routes answered %d", got)
	}

	// An open connection of the token ends when alice's key is removed.
	done := make(chan int, 1)
	go func() {
		got, _ := do(t, "GET", srv.URL+"/v1/streams/st-1/results?token="+token, nil)
		done <- got
	}()
	ctx := <-held
	if added, removed := a.SetKeys(nil); added != 0 || removed != 1 {
		t.Fatalf("SetKeys: added %d removed %d", added, removed)
	}
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), middleware.ErrRevoked) {
			t.Fatalf("held context ended by %v", context.Cause(ctx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("removing the key left its token's connection open")
	}
	<-done
	if got, _ := do(t, "GET", srv.URL+"/v1/streams/st-1/ws?token="+token, nil); got != 401 {
		t.Fatalf("a token of a removed key answered %d", got)
	}
	if got, _ := do(t, "GET", srv.URL+"/v1/streams", map[string]string{"X-API-Key": "admin-key"}); got != 200 {
		t.Fatalf("an API_KEYS key after a reload answered %d", got)
	}
}

// FuzzSubscribeTokenParse: no input makes Parse panic or accept a token it
// did not sign, and whatever it accepts mints back to the same claims.
func FuzzSubscribeTokenParse(f *testing.F) {
	tokens, _ := middleware.NewSubscribeTokens(middleware.SubscribeConfig{Secret: []byte("fuzz")})
	now := time.Unix(1_800_000_000, 0)
	good := tokens.Mint(middleware.SubscribeClaims{Stream: "s", Tenant: "t", Issuer: "key-1", Expires: now.Unix() + 60})
	for _, seed := range []string{good, good[:len(good)-1], "rtstok_", "rtstok_.", "rtstok_e30.", "rts_x", "", good + "="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := tokens.Parse(token, now)
		if err != nil {
			if !errors.Is(err, middleware.ErrTokenMalformed) && !errors.Is(err, middleware.ErrTokenSignature) && !errors.Is(err, middleware.ErrTokenExpired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := tokens.Parse(tokens.Mint(c), now)
		if err != nil || again != c {
			t.Fatalf("accepted %q as %+v, which mints back to %+v (%v)", token, c, again, err)
		}
	})
}
