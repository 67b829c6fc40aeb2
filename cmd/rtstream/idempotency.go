package main

import (
	"log/slog"
	"time"

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
