package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/problem"
	"github.com/rtstream/rtstream/schema"
)

// IdempotencyHeader names the client's key for a send. A retry with the same
// key and body within the window gets the first answer back and adds no
// events (docs/decisions/0016-idempotency.md).
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader is set to "true" on an answer served from the stored answer
// of an earlier request, so a client can tell a replay from a fresh send.
const ReplayedHeader = "Idempotent-Replayed"

// maxIdempotencyKey is the longest key accepted, in bytes.
const maxIdempotencyKey = 255

// sendEvents accepts one request's events and answers 202 only after Kafka
// acknowledged all of them.
func (s *server) sendEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	// The key is checked first: a client with a malformed key must learn it
	// before anything is sent, or its retries would not be deduplicated.
	idemKey, ok := idempotencyKey(w, r)
	if !ok {
		return
	}
	kind, ok := contentKind(r.Header.Get("Content-Type"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType,
			"send application/json (one event or an array of events) or application/x-ndjson (one event per line)"))
		return
	}
	// One deadline bounds the whole send, the stream lookup included: the
	// lookup is a Kafka round trip too, and a client must have its answer
	// (202 or 503) within SEND_TIMEOUT however the network to Kafka fails.
	deadline := time.Now().Add(s.cfg.SendTimeout)
	lookupCtx, cancelLookup := context.WithDeadline(r.Context(), deadline)
	st, err := s.visible(lookupCtx, principal(r), id)
	cancelLookup()
	if err == nil {
		err = takesSends(st)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, events, ok := s.readEvents(w, r, kind)
	// The stream's schema, as defined when the request arrived: all or
	// nothing, before anything is written or counted.
	if !ok || !s.eventsMatch(w, r, st, events, deadline) {
		return
	}
	// The byte-rate quota, charged for the whole request before anything
	// is written: a batch over it is refused whole.
	size := eventBytes(events)
	if !s.takeIngest(w, r, size) {
		return
	}
	// Answers up to here depend on the request alone (and the stream's
	// existence and schema), so they are not stored: a retry recomputes
	// the same one.
	if idemKey != "" && s.Idempotency != nil {
		s.sendIdempotent(w, r, id, idemKey, kind, body, events, deadline)
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	ids, err := s.Events.Send(ctx, id, events)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Metrics.EventsAccepted(len(ids))
	s.sent(r, size)
	writeBody(w, http.StatusAccepted, acceptedBody(ids))
}

// eventBytes is the size of a request's events, what the byte-rate quota
// counts.
func eventBytes(events []json.RawMessage) int64 {
	var n int64
	for _, e := range events {
		n += int64(len(e))
	}
	return n
}

// readEvents reads and splits the body into events, or answers why not
// (400, 413) and ok is false.
func (s *server) readEvents(w http.ResponseWriter, r *http.Request, kind bodyKind) (body []byte, events []json.RawMessage, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)))
			return nil, nil, false
		}
		badRequest(w, r, "reading body: "+err.Error())
		return nil, nil, false
	}
	events, err = decodeEvents(kind, body)
	if err != nil {
		var de *decodeError
		if errors.As(err, &de) {
			badRequest(w, r, de.detail, de.fields...)
		} else {
			badRequest(w, r, err.Error())
		}
		return nil, nil, false
	}
	if len(events) > s.cfg.MaxBatch {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%d events in one request, over the limit of %d", len(events), s.cfg.MaxBatch)))
		return nil, nil, false
	}
	return body, events, true
}

// eventsMatch answers the problem of events that fail st's schema (see
// schemaProblem) and reports whether they may be sent.
func (s *server) eventsMatch(w http.ResponseWriter, r *http.Request, st rtstream.Stream, events []json.RawMessage, deadline time.Time) bool {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	pr, err := s.schemaProblem(ctx, st, events)
	switch {
	case err != nil:
		s.fail(w, r, err)
		return false
	case pr != nil:
		problem.Write(w, r, *pr)
		return false
	}
	return true
}

// schemaProblem checks events against st's schema, if it has one, and
// returns the problem to answer (422) when any fails, or when this server
// refuses the stored schema (created under other limits); err is the
// context's.
func (s *server) schemaProblem(ctx context.Context, st rtstream.Stream, events []json.RawMessage) (*problem.Problem, error) {
	if len(st.Schema) == 0 {
		return nil, nil
	}
	v, err := s.schemas().Get(st.ID, st.Schema)
	if err != nil {
		pr := problem.New(http.StatusUnprocessableEntity, fmt.Sprintf("this server refuses the stream's schema (%v); delete the stream and create it again", err))
		return &pr, nil
	}
	err = v.Validate(ctx, events)
	var inv *schema.InvalidError
	if !errors.As(err, &inv) {
		return nil, err
	}
	pr := problem.New(http.StatusUnprocessableEntity, invalidDetail(inv))
	pr.Errors = make([]problem.FieldError, len(inv.Violations))
	for i, vi := range inv.Violations {
		// The pointer into the request's events: the event's index, then
		// the pointer into the event.
		pr.Errors[i] = problem.FieldError{Pointer: fmt.Sprintf("/%d%s", vi.Index, vi.Pointer), Detail: vi.Message}
	}
	return &pr, nil
}

// invalidDetail says how many events failed, and whether the list is whole.
func invalidDetail(inv *schema.InvalidError) string {
	d := fmt.Sprintf("%d of %d events do not match the stream's schema; nothing was accepted", inv.Failed, inv.Events)
	if inv.Unchecked > 0 {
		d += fmt.Sprintf(" (the last %d were not checked: the request's validation budget ran out)", inv.Unchecked)
	}
	if inv.Truncated {
		d += fmt.Sprintf("; the first %d errors are listed", len(inv.Violations))
	}
	return d
}

// sendIdempotent sends a request that carries an Idempotency-Key: at most
// once per key, scope and window.
func (s *server) sendIdempotent(w http.ResponseWriter, r *http.Request, streamID, clientKey string, kind bodyKind, body []byte, events []json.RawMessage, deadline time.Time) {
	principal, _ := middleware.PrincipalFrom(r.Context())
	key := idempotencyScope(principal.ID, streamID, clientKey)
	log := observability.Logger(r.Context(), s.log)
	token, ok := s.claim(w, r, key, fingerprint(kind, body), deadline)
	if !ok {
		return
	}
	// The claim must end whatever happens, a panic included, or the key
	// stays blocked until its pending record expires.
	held := true
	release := func() {
		held = false
		if err := s.Idempotency.Release(context.WithoutCancel(r.Context()), key, token); err != nil {
			s.Metrics.IdempotencyStoreError()
			log.Warn("idempotency store: release failed; retries of this request get 409 until the claim expires", "err", err)
		}
	}
	defer func() {
		if held {
			release()
		}
	}()
	// The send does not follow the client's cancellation: once claimed, the
	// answer is worth finishing and storing, since the client's retry will
	// ask for it. The request's deadline still bounds it.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), deadline)
	defer cancel()
	ids, err := s.Events.Send(ctx, streamID, events)
	if errors.Is(err, rtstream.ErrUnconfirmed) {
		// Kafka may still store the events: keep the claim until it
		// expires, so that a retry meanwhile waits and gets 409 rather
		// than sending them a second time.
		held = false
		log.Warn("idempotency: send unconfirmed; the claim stays until it expires", "err", err)
		s.fail(w, r, err)
		return
	}
	if err != nil {
		// Nothing was stored (Kafka refused, stream deleted meanwhile):
		// forget the claim before answering, so the retry really retries.
		release()
		s.fail(w, r, err)
		return
	}
	s.Metrics.EventsAccepted(len(ids))
	s.sent(r, eventBytes(events))
	answer := rtstream.IdempotencyAnswer{Status: http.StatusAccepted, Body: acceptedBody(ids)}
	held = false
	if err := s.Idempotency.Complete(context.WithoutCancel(r.Context()), key, token, answer); err != nil {
		// The events are in Kafka: the client must hear so. Only a retry
		// after the claim expires could add them again.
		s.Metrics.IdempotencyStoreError()
		log.Warn("idempotency store: the answer of an accepted send was not stored", "err", err)
	}
	writeBody(w, answer.Status, answer.Body)
}

// claim takes key for this request, or answers in its place: the stored
// answer of the same request, 422 for another request, 503 when the store
// cannot say. A duplicate that arrives while the first is in flight waits
// for its answer, up to the deadline, then gets 409.
func (s *server) claim(w http.ResponseWriter, r *http.Request, key, fp string, deadline time.Time) (token string, ok bool) {
	log := observability.Logger(r.Context(), s.log)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		o, err := s.Idempotency.Begin(r.Context(), key, fp)
		if err != nil {
			// Fail closed: without the store nobody can tell whether this is
			// a retry of a request that was accepted, and the client asked
			// for at most once. The store logs the outage once.
			s.Metrics.IdempotencyStoreError()
			log.Debug("idempotency store: begin failed", "err", err)
			problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable, RetryAfter: 1,
				Detail: "the Idempotency-Key store is unavailable; nothing was accepted, retry later"})
			return "", false
		}
		switch o.State {
		case rtstream.IdempotencyClaimed:
			return o.Token, true
		case rtstream.IdempotencyReplay:
			s.Metrics.IdempotentReplay()
			w.Header().Set(ReplayedHeader, "true")
			writeBody(w, o.Answer.Status, o.Answer.Body)
			return "", false
		case rtstream.IdempotencyMismatch:
			problem.Write(w, r, problem.New(http.StatusUnprocessableEntity,
				"this Idempotency-Key was already used with a different request (body or content type) on this stream; use a new key for a new request"))
			return "", false
		case rtstream.IdempotencyInFlight:
			if time.Now().Add(pause).After(deadline) {
				w.Header().Set("Retry-After", "1")
				problem.Write(w, r, problem.New(http.StatusConflict,
					"a request with this Idempotency-Key is still in progress; retry later to get its answer"))
				return "", false
			}
			select {
			case <-r.Context().Done():
				return "", false // the client left; the first request's answer stays stored
			case <-time.After(pause):
			}
		default:
			log.Error("idempotency store: unknown state", "state", int(o.State))
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal error"))
			return "", false
		}
	}
}

// idempotencyKey returns the request's Idempotency-Key ("" without one). A
// malformed key is answered 400 and ok is false.
func idempotencyKey(w http.ResponseWriter, r *http.Request) (key string, ok bool) {
	values := r.Header.Values(IdempotencyHeader)
	if len(values) == 0 {
		return "", true
	}
	if len(values) > 1 {
		badRequest(w, r, "send one Idempotency-Key header, not several")
		return "", false
	}
	key = values[0]
	if key == "" || len(key) > maxIdempotencyKey {
		badRequest(w, r, fmt.Sprintf("Idempotency-Key must be 1 to %d characters long", maxIdempotencyKey))
		return "", false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			detail := "Idempotency-Key must be printable ASCII"
			if !utf8.ValidString(key) {
				detail = "Idempotency-Key is not valid UTF-8; it must be printable ASCII"
			}
			badRequest(w, r, detail)
			return "", false
		}
	}
	return key, true
}

// idempotencyScope is the store key of a client key: per principal and
// stream, so two tenants (or two streams) never share one. It is hashed to
// keep store keys short and the principal's name out of the store. Neither
// a stream id nor a client key can hold a NUL byte, so the joined string
// splits back one way only.
func idempotencyScope(principal, streamID, clientKey string) string {
	d := sha256.Sum256([]byte(principal + "\x00" + streamID + "\x00" + clientKey))
	return hex.EncodeToString(d[:])
}

// fingerprint identifies a request's content: the body kind (from the
// content type, so "application/json; charset=utf-8" is application/json)
// and the body bytes.
func fingerprint(kind bodyKind, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", kind)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// acceptedBody is the 202 answer to a send. It is encoded once so that a
// replay is byte for byte the first answer.
func acceptedBody(ids []string) []byte {
	b, _ := json.Marshal(map[string]any{"accepted": len(ids), "event_ids": ids})
	return append(b, '\n')
}

// writeBody answers with an encoded JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
