// Package idempotency remembers the answers of requests made with an
// Idempotency-Key, so that a client's retry gets the first answer back instead
// of doing the work twice. It offers one Store with two implementations: an
// in-process one (bounded LRU with a TTL) for a single instance, and a Redis
// one shared by every instance of a deployment.
//
// A request goes through a store in two steps. Begin claims the key with a
// short-lived pending marker, atomically, so that of two concurrent requests
// with one key exactly one does the work. The winner then either Completes
// the claim with its final answer, which is kept for the TTL, or Releases it
// (the answer was not final, such as Kafka being unavailable), after which a
// retry claims the key afresh. See docs/decisions/0016-idempotency.md.
package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// State is what Begin found under a key.
type State int

const (
	// Claimed: nobody held the key; the caller holds it now and must
	// Complete or Release the claim.
	Claimed State = iota + 1
	// Replay: a final answer is stored for the same fingerprint.
	Replay
	// InFlight: another request with the same fingerprint holds the key and
	// has not answered yet.
	InFlight
	// Mismatch: the key was used (done or in flight) with another
	// fingerprint, that is another request.
	Mismatch
)

func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Replay:
		return "replay"
	case InFlight:
		return "in_flight"
	case Mismatch:
		return "mismatch"
	}
	return "unknown"
}

// Answer is a stored final answer.
type Answer struct {
	Status int
	Body   []byte
}

// Outcome is the result of Begin.
type Outcome struct {
	State State
	// Token identifies the claim when State is Claimed; Complete and
	// Release take it, so that a holder whose claim expired and was taken
	// over cannot overwrite the new holder's state.
	Token string
	// Answer is the stored answer when State is Replay.
	Answer Answer
}

// Store keeps claims and answers by key. Keys are opaque to the store; the
// caller scopes them (principal, stream, client key) and keeps them short.
type Store interface {
	// Begin claims key for a request whose body has the given fingerprint,
	// or reports what holds it already.
	Begin(ctx context.Context, key, fingerprint string) (Outcome, error)
	// Complete replaces the claim with the final answer, kept for the TTL.
	// It returns ErrClaimLost when the claim is no longer held.
	Complete(ctx context.Context, key, token string, a Answer) error
	// Release drops the claim without an answer, so a retry starts afresh.
	// Releasing a claim that is no longer held does nothing.
	Release(ctx context.Context, key, token string) error
	// Close releases the store's resources.
	Close() error
}

// ErrClaimLost is returned by Complete when the claim expired (its holder
// took longer than the pending TTL) or was released: the answer is not
// stored, since the key may belong to another request by now.
var ErrClaimLost = errors.New("idempotency: the claim on the key is no longer held")

// Defaults for the zero fields of Config.
const (
	DefaultTTL        = 24 * time.Hour
	DefaultPendingTTL = 30 * time.Second
	DefaultMaxKeys    = 10000
)

// Config holds what both stores share. Zero fields take the defaults.
type Config struct {
	// TTL is how long a final answer is kept: the dedupe window. Default
	// 24 h (IDEMPOTENCY_TTL).
	TTL time.Duration
	// PendingTTL is how long a claim holds a key without an answer. It must
	// outlast the longest request (the send timeout and the store calls),
	// or a slow first request loses its claim and a retry does the work
	// again; it is also how long a key stays blocked when its holder
	// crashed. Default 30 s.
	PendingTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.PendingTTL <= 0 {
		c.PendingTTL = DefaultPendingTTL
	}
}

// newToken is a random claim token: unguessable and unique across
// instances, so no two claims on one key can be confused.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
