package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/quota"
)

// quotaMetricsEvery is how often the per-tenant quota gauges are computed.
const quotaMetricsEvery = 15 * time.Second

// startQuotas makes the quotas, shared through Redis when REDIS_URL is set,
// renews this instance's connection leases and keeps the gauges current.
func (a *app) startQuotas(ctx context.Context) error {
	cfg := quota.Config{Defaults: a.cfg.Quotas, Timeout: a.cfg.RedisTimeout,
		OnStoreError: func(err error) { a.log.Warn("quota store failed; the request went through", "err", err) }}
	if a.cfg.RedisURL != "" {
		opts, err := redis.ParseURL(a.cfg.RedisURL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) { // its text quotes the URL, password included
				err = &url.Error{Op: ue.Op, URL: "(redacted)", Err: ue.Err}
			}
			return fmt.Errorf("quotas: REDIS_URL: %w", err)
		}
		opts.ContextTimeoutEnabled = true
		opts.MaxRetries = -1
		opts.DisableIdentity = true
		client := redis.NewClient(opts)
		a.onClose(func() { client.Close() })
		cfg.Redis = client
	}
	a.quotas = quota.New(cfg)
	a.goBackground(ctx, a.quotas.Run)
	if a.metrics != nil {
		a.goBackground(ctx, a.quotaGauges)
	}
	return nil
}

// quotaGauges exports every tenant's use of its count quotas until ctx is
// done: the streams it owns, from the registry, and its held connections.
func (a *app) quotaGauges(ctx context.Context) {
	t := time.NewTicker(quotaMetricsEvery)
	defer t.Stop()
	for {
		var uses []observability.TenantUse
		for tenant, owned := range a.registry.OwnedAll() {
			l := a.quotas.Limits(tenant)
			uses = append(uses, observability.TenantUse{Tenant: tenant, Quota: quota.Streams, Use: float64(owned), Limit: float64(l.Streams)})
			if held, err := a.quotas.Held(ctx, tenant); err == nil {
				uses = append(uses, observability.TenantUse{Tenant: tenant, Quota: quota.HeldConnections, Use: float64(held), Limit: float64(l.HeldConnections)})
			}
		}
		a.metrics.QuotaUse(uses)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
