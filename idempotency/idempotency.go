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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/rtstream/rtstream"
)

// The model of an idempotent send is the API's contract, in the root
// package; these names are the store's own for it.
type (
	State   = rtstream.IdempotencyState
	Answer  = rtstream.IdempotencyAnswer
	Outcome = rtstream.IdempotencyOutcome
)

// States of Outcome.
const (
	Claimed  = rtstream.IdempotencyClaimed
	Replay   = rtstream.IdempotencyReplay
	InFlight = rtstream.IdempotencyInFlight
	Mismatch = rtstream.IdempotencyMismatch
)

// Store keeps claims and answers by key. Keys are opaque to the store; the
// caller scopes them (principal, stream, client key) and keeps them short.
type Store interface {
	// Complete returns ErrClaimLost when the claim is no longer held;
	// releasing a claim that is no longer held does nothing.
	rtstream.Idempotency
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
