package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/problem"
)

// TokenIssuer mints subscribe tokens (middleware.SubscribeTokens).
type TokenIssuer interface {
	// TTL is the life a token asked for with ttl gets (0: the default).
	TTL(ttl time.Duration) time.Duration
	MaxTTL() time.Duration
	Mint(c middleware.SubscribeClaims) string
}

// tokenBody is the optional body of a token request.
type tokenBody struct {
	TTL string `json:"ttl"`
}

// createToken mints a subscribe token: results:read on this one stream, for
// a browser to put in a URL instead of a key. A token cannot mint tokens,
// or it could outlive its own expiry.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	p := principal(r)
	if p.Issuer != "" {
		problem.Write(w, r, problem.New(http.StatusForbidden, "a subscribe token cannot mint tokens: use the key that minted it"))
		return
	}
	if s.Tokens == nil {
		problem.Write(w, r, problem.New(http.StatusNotImplemented, "this server mints no subscribe tokens"))
		return
	}
	ttl, ok := s.decodeTokenBody(w, r)
	if !ok {
		return
	}
	st, err := s.lookupStream(r, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ttl = s.Tokens.TTL(ttl)
	expires := time.Now().Add(ttl).Truncate(time.Second)
	token := s.Tokens.Mint(middleware.SubscribeClaims{
		Stream: st.ID, Tenant: st.Owner(), Issuer: p.ID, Name: p.Name, Expires: expires.Unix(),
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}{token, expires.UTC()})
}

// decodeTokenBody reads {"ttl": "15m"}; an empty body asks for the default.
func (s *server) decodeTokenBody(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	data, ok := readObject(w, r, 4<<10, "a token request", `{"ttl": "15m"}`)
	if !ok || data == nil {
		return 0, ok
	}
	var body tokenBody
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		badRequest(w, r, `a token request is {"ttl": "15m"} or empty`)
		return 0, false
	}
	if body.TTL == "" {
		return 0, true
	}
	ttl, err := time.ParseDuration(body.TTL)
	if err != nil || ttl < time.Second {
		badRequest(w, r, fmt.Sprintf("ttl %q: want a duration of at least 1s, such as \"15m\" (at most %s)", body.TTL, s.Tokens.MaxTTL()),
			problem.FieldError{Pointer: "/ttl", Detail: "not a duration of at least 1s"})
		return 0, false
	}
	return ttl, true
}
