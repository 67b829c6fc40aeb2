package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/idempotency"
)

// newIdempotency builds the store behind Idempotency-Key: in Redis when
// REDIS_URL is set, so every instance sees every key, otherwise in this
// process. Its claims outlast the longest send (the send timeout twice: a
// duplicate's wait, then its own send) with room for the store calls.
func newIdempotency(cfg config, log *slog.Logger) (idempotency.Store, error) {
	base := idempotency.Config{TTL: cfg.IdempotencyTTL, PendingTTL: 2*cfg.SendTimeout + 10*time.Second}
	if cfg.RedisURL == "" {
		return idempotency.NewMemory(base, cfg.IdempotencyMaxKeys), nil
	}
	return idempotency.NewRedis(idempotency.RedisConfig{
		Config: base,
		URL:    cfg.RedisURL,
		// One deployment's keys apart from another's on a shared Redis.
		KeyPrefix: idempotency.DefaultRedisKeyPrefix + cfg.TopicPrefix + ":",
		Logger:    log,
	})
}

// idempotencyAdapter gives the handlers the store through their own small
// interface, whose types they can name without importing the store (and its
// Redis client).
type idempotencyAdapter struct{ s idempotency.Store }

var _ handlers.Idempotency = idempotencyAdapter{}

func (a idempotencyAdapter) Begin(ctx context.Context, key, fingerprint string) (handlers.IdempotencyOutcome, error) {
	o, err := a.s.Begin(ctx, key, fingerprint)
	if err != nil {
		return handlers.IdempotencyOutcome{}, err
	}
	out := handlers.IdempotencyOutcome{Token: o.Token, Status: o.Answer.Status, Body: o.Answer.Body}
	switch o.State {
	case idempotency.Claimed:
		out.State = handlers.IdempotencyClaimed
	case idempotency.Replay:
		out.State = handlers.IdempotencyReplay
	case idempotency.InFlight:
		out.State = handlers.IdempotencyInFlight
	case idempotency.Mismatch:
		out.State = handlers.IdempotencyMismatch
	}
	return out, nil
}

func (a idempotencyAdapter) Complete(ctx context.Context, key, token string, status int, body []byte) error {
	return a.s.Complete(ctx, key, token, idempotency.Answer{Status: status, Body: body})
}

func (a idempotencyAdapter) Release(ctx context.Context, key, token string) error {
	return a.s.Release(ctx, key, token)
}
