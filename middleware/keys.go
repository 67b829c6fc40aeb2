package middleware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sync"
)

// ErrRevoked ends the connections of a key that a reload removed, and
// refuses the subscribe tokens it minted.
var ErrRevoked = errors.New("credential revoked")

// keyIDPrefix starts the ID of every key's principal, and of no other
// (JWT principals are "jwt:…").
const keyIDPrefix = "key-"

// keySet is one generation of accepted keys. It is never changed once
// built: a reload swaps in a new one, so requests read it without locks.
type keySet struct {
	digests [][sha256.Size]byte
	keys    []Principal
	ids     map[string]int
}

func newKeySet(static []string, kps []KeyPrincipal) *keySet {
	s := &keySet{ids: make(map[string]int, len(static)+len(kps))}
	add := func(d [sha256.Size]byte, p Principal) {
		p.ID = keyIDPrefix + hex.EncodeToString(d[:6])
		if p.Name == "" {
			p.Name = p.ID
		}
		s.ids[p.ID] = len(s.keys)
		s.digests = append(s.digests, d)
		s.keys = append(s.keys, p)
	}
	for _, k := range static {
		if k != "" {
			add(sha256.Sum256([]byte(k)), admin("", nil))
		}
	}
	for _, k := range kps {
		add(k.SHA256, k.Principal)
	}
	return s
}

// lookup returns the principal of a configured key. It compares against
// every key, so its time does not depend on which matched.
func (s *keySet) lookup(key string) (Principal, bool) {
	d := sha256.Sum256([]byte(key))
	found := -1
	for i := range s.digests {
		if subtle.ConstantTimeCompare(d[:], s.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return s.keys[found], true
}

// byID returns the principal of the key with this ID.
func (s *keySet) byID(id string) (Principal, bool) {
	i, ok := s.ids[id]
	if !ok {
		return Principal{}, false
	}
	return s.keys[i], true
}

// SetKeys replaces the keys of API_KEYS_FILE (a reload); the API_KEYS keys
// stay. The held connections of every key that is gone, and of the tokens
// it minted, end with ErrRevoked. It returns how many keys came and went.
func (a *Auth) SetKeys(kps []KeyPrincipal) (added, removed int) {
	next := newKeySet(a.static, kps)
	prev := a.set.Swap(next)
	var gone []string
	for id := range prev.ids {
		if _, ok := next.ids[id]; !ok {
			gone = append(gone, id)
		}
	}
	for id := range next.ids {
		if _, ok := prev.ids[id]; !ok {
			added++
		}
	}
	a.holds.revoke(gone)
	return added, len(gone)
}

// holds tracks the connections held open (SSE, WebSocket, long polls) by
// the key they ride on, so that removing a key can end them.
type holds struct {
	mu   sync.Mutex
	next uint64
	by   map[string]map[uint64]context.CancelCauseFunc
}

// add registers a connection of key; release forgets it.
func (h *holds) add(key string, cancel context.CancelCauseFunc) (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = map[string]map[uint64]context.CancelCauseFunc{}
	}
	h.next++
	n := h.next
	if h.by[key] == nil {
		h.by[key] = map[uint64]context.CancelCauseFunc{}
	}
	h.by[key][n] = cancel
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.by[key], n)
		if len(h.by[key]) == 0 {
			delete(h.by, key)
		}
	}
}

func (h *holds) revoke(keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		for _, cancel := range h.by[k] {
			cancel(ErrRevoked)
		}
	}
}

type holdKey struct{}

// hold is where a held route's request registers the connection it holds:
// the key whose removal ends it.
type hold struct {
	a   *Auth
	key string
	// keyed: the holder is a key (of API_KEYS or API_KEYS_FILE), not a
	// JWT principal, which no reload can remove.
	keyed bool
}

// Hold is the context of a connection held open on the request's credential
// (SSE, WebSocket, long poll): derived from parent, it is done when parent
// is, or when a reload removes the credential's key (cause ErrRevoked).
// parent is the request's context for a connection served on the request's
// goroutine, and the server's own for one it takes over (SSE). release must
// be called once the connection ends. Outside the held routes nothing can
// revoke the context.
func Hold(ctx, parent context.Context) (held context.Context, release func()) {
	held, cancel := context.WithCancelCause(parent)
	h, ok := ctx.Value(holdKey{}).(hold)
	if !ok {
		return held, func() { cancel(nil) }
	}
	forget := h.a.holds.add(h.key, cancel)
	// A reload between the request's authentication and this hold ended
	// nothing of it: look again. SetKeys swaps the set before it ends
	// holds, so one of the two sees the other.
	if _, ok := h.a.set.Load().ids[h.key]; h.keyed && !ok {
		cancel(ErrRevoked)
	}
	return held, func() { forget(); cancel(nil) }
}
