package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rtstream/rtstream/middleware"
)

// newAuth builds the authenticator and the subscribe tokens from the
// configuration, and starts reloading API_KEYS_FILE. With no key, no token
// verifier and no explicit AUTH_DISABLED, it generates a key and prints it
// once, to stdout, outside the structured log.
func (a *app) newAuth(ctx context.Context, stdout io.Writer) (*middleware.Auth, *middleware.SubscribeTokens, error) {
	cfg, log := a.cfg, a.log
	failures := promauto.With(a.reg).NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_auth_failures_total",
		Help: "Requests refused by authentication, by reason (missing, invalid, forbidden).",
	}, []string{"reason"})
	for _, reason := range []string{"missing", "invalid", "forbidden"} {
		failures.WithLabelValues(reason) // export zeros, so rates work from the start
	}
	tokens, generated := middleware.NewSubscribeTokens(middleware.SubscribeConfig{Secret: []byte(cfg.TokenSecret), MaxTTL: cfg.TokenMaxTTL})
	if generated && !cfg.AuthDisabled {
		log.Warn("TOKEN_SECRET is not set: subscribe tokens are signed with a secret made for this run; they do not survive a restart, and other instances do not accept them (give every instance the same TOKEN_SECRET)")
	}
	ac := middleware.AuthConfig{
		Keys:      cfg.APIKeys,
		Disabled:  cfg.AuthDisabled,
		Subscribe: tokens,
		Failures:  func(reason string) { failures.WithLabelValues(reason).Inc() },
	}
	if cfg.JWKSURL != "" || cfg.JWTPublicKey != "" {
		v, err := newJWT(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		ac.Tokens = v
	}
	var reloader *keysReloader
	if cfg.APIKeysFile != "" {
		reloader = &keysReloader{path: cfg.APIKeysFile, log: log, audited: a.metrics.Audited, quotas: a.quotas.SetTenants}
		var err error
		if ac.Principals, err = reloader.load(); err != nil {
			return nil, nil, err
		}
	}
	if !ac.Disabled && len(ac.Keys) == 0 && len(ac.Principals) == 0 && ac.Tokens == nil {
		key := middleware.GenerateKey()
		ac.Keys = []string{key}
		fmt.Fprintf(stdout, "\nrtstream: no API_KEYS configured; generated this key for this run (shown once):\n\n    %s\n\n", key)
	}
	auth, err := middleware.NewAuth(ac)
	if err != nil {
		return nil, nil, err
	}
	if reloader != nil {
		reloader.auth = auth
		a.goBackground(ctx, func(ctx context.Context) { reloader.run(ctx, cfg.KeysFilePoll) })
	}
	return auth, tokens, nil
}

// newJWT builds the JWT verifier.
func newJWT(ctx context.Context, cfg config) (*middleware.JWT, error) {
	jc := middleware.JWTConfig{JWKSURL: cfg.JWKSURL, Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, TenantClaim: cfg.JWTTenant}
	if cfg.JWTPublicKey != "" {
		keys, err := parsePublicKeys(cfg.JWTPublicKey)
		if err != nil {
			return nil, fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
		}
		jc.PublicKeys = keys
	}
	return middleware.NewJWT(ctx, jc)
}

// parsePublicKeys reads PEM public keys, inline or from a file path.
func parsePublicKeys(v string) ([]crypto.PublicKey, error) {
	data := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, err
		}
		data = b
	}
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}
