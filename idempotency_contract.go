package rtstream

import "context"

// IdempotencyState is what Idempotency.Begin found under a key.
type IdempotencyState int

const (
	// IdempotencyClaimed: nobody held the key; the caller holds it now and
	// must Complete or Release the claim.
	IdempotencyClaimed IdempotencyState = iota + 1
	// IdempotencyReplay: a final answer is stored for the same fingerprint.
	IdempotencyReplay
	// IdempotencyInFlight: another request with the same fingerprint holds
	// the key and has not answered yet.
	IdempotencyInFlight
	// IdempotencyMismatch: the key was used (done or in flight) with another
	// fingerprint, that is another request.
	IdempotencyMismatch
)

func (s IdempotencyState) String() string {
	switch s {
	case IdempotencyClaimed:
		return "claimed"
	case IdempotencyReplay:
		return "replay"
	case IdempotencyInFlight:
		return "in_flight"
	case IdempotencyMismatch:
		return "mismatch"
	}
	return "unknown"
}

// IdempotencyAnswer is a send's final answer, stored for its retries.
type IdempotencyAnswer struct {
	Status int
	Body   []byte
}

// IdempotencyOutcome is the result of Idempotency.Begin.
type IdempotencyOutcome struct {
	State IdempotencyState
	// Token identifies the claim when State is IdempotencyClaimed; Complete
	// and Release take it, so that a holder whose claim expired and was
	// taken over cannot overwrite the new holder's state.
	Token string
	// Answer is the stored answer when State is IdempotencyReplay.
	Answer IdempotencyAnswer
}

// Idempotency remembers the answers of sends that carry an Idempotency-Key.
// Keys arrive scoped (principal, stream, client key) and hashed.
type Idempotency interface {
	// Begin claims key for a request whose body has the given fingerprint,
	// or reports what holds it already. An error means the store cannot
	// say: the send must not go ahead.
	Begin(ctx context.Context, key, fingerprint string) (IdempotencyOutcome, error)
	// Complete replaces the claim with the final answer, kept for the TTL.
	Complete(ctx context.Context, key, token string, a IdempotencyAnswer) error
	// Release drops the claim without an answer, so a retry starts afresh.
	Release(ctx context.Context, key, token string) error
}
