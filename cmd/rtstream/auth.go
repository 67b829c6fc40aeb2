package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rtstream/rtstream/middleware"
)

// newAuth builds the authenticator from the configuration. With no key, no
// token verifier and no explicit AUTH_DISABLED, it generates a key and prints
// it once, to stdout, outside the structured log.
func newAuth(ctx context.Context, cfg config, stdout io.Writer, reg prometheus.Registerer, log *slog.Logger) (*middleware.Auth, error) {
	failures := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "rtstream_auth_failures_total",
		Help: "Requests refused by authentication, by reason (missing, invalid, forbidden).",
	}, []string{"reason"})
	for _, reason := range []string{"missing", "invalid", "forbidden"} {
		failures.WithLabelValues(reason) // export zeros, so rates work from the start
	}
	ac := middleware.AuthConfig{
		Keys:     cfg.APIKeys,
		Disabled: cfg.AuthDisabled,
		Failures: func(reason string) { failures.WithLabelValues(reason).Inc() },
	}
	if cfg.JWKSURL != "" || cfg.JWTPublicKey != "" {
		jc := middleware.JWTConfig{JWKSURL: cfg.JWKSURL, Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, TenantClaim: cfg.JWTTenant}
		if cfg.JWTPublicKey != "" {
			keys, err := parsePublicKeys(cfg.JWTPublicKey)
			if err != nil {
				return nil, fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
			}
			jc.PublicKeys = keys
		}
		v, err := middleware.NewJWT(ctx, jc)
		if err != nil {
			return nil, err
		}
		ac.Tokens = v
	}
	if cfg.APIKeysFile != "" {
		kps, err := loadKeysFile(cfg.APIKeysFile, log)
		if err != nil {
			return nil, err
		}
		ac.Principals = kps
	}
	if !ac.Disabled && len(ac.Keys) == 0 && len(ac.Principals) == 0 && ac.Tokens == nil {
		key := middleware.GenerateKey()
		ac.Keys = []string{key}
		fmt.Fprintf(stdout, "\nrtstream: no API_KEYS configured; generated this key for this run (shown once):\n\n    %s\n\n", key)
	}
	return middleware.NewAuth(ac)
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
