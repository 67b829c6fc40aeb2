package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/quota"
)

// keysFile is API_KEYS_FILE: the keys of a multi-tenant setup, stored as
// SHA-256 digests (a plaintext "key" is for development, and logged).
type keysFile struct {
	Keys []keyEntry `json:"keys"`
	// Tenants override the QUOTA_* defaults per tenant; a field left out
	// keeps the default.
	Tenants map[string]quota.Limits `json:"tenants"`
}

// parseTenantQuotas reads the quota overrides of a keys file that
// parseKeysFile accepted.
func parseTenantQuotas(path string, data []byte) (map[string]quota.Limits, error) {
	var f keysFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("API_KEYS_FILE %s: %w", path, err)
	}
	for name, l := range f.Tenants {
		switch {
		case !tenantPattern.MatchString(name):
			return nil, fmt.Errorf("API_KEYS_FILE %s: tenants[%q]: the name must match %s", path, name, tenantPattern)
		case l.Streams < 0 || l.HeldConnections < 0 || l.IngestBytesPerSecond < 0:
			return nil, fmt.Errorf("API_KEYS_FILE %s: tenants[%q]: a quota is negative", path, name)
		}
	}
	return f.Tenants, nil
}

type keyEntry struct {
	Name    string   `json:"name"`
	Tenant  string   `json:"tenant"`
	Scopes  []string `json:"scopes"`
	Streams []string `json:"streams"`
	SHA256  string   `json:"sha256"`
	Key     string   `json:"key"`
}

// tenantPattern is what a tenant's name may be: it appears in logs and
// metrics labels.
var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// parseKeysFile checks the content of path. An error names the entry and
// the field.
func parseKeysFile(path string, data []byte, log *slog.Logger) ([]middleware.KeyPrincipal, error) {
	var f keysFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("API_KEYS_FILE %s: %w", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("API_KEYS_FILE %s: no keys", path)
	}
	out := make([]middleware.KeyPrincipal, 0, len(f.Keys))
	seen := map[[sha256.Size]byte]bool{}
	for i, e := range f.Keys {
		kp, err := e.principal()
		if err != nil {
			return nil, fmt.Errorf("API_KEYS_FILE %s: keys[%d] (%q): %w", path, i, e.Name, err)
		}
		if seen[kp.SHA256] {
			return nil, fmt.Errorf("API_KEYS_FILE %s: keys[%d] (%q): the same key as an earlier entry", path, i, e.Name)
		}
		seen[kp.SHA256] = true
		if e.Key != "" {
			log.Warn("API_KEYS_FILE holds a plaintext key; store its sha256 instead outside development", "name", e.Name)
		}
		out = append(out, kp)
	}
	return out, nil
}

// principal checks the entry and makes its principal.
func (e keyEntry) principal() (middleware.KeyPrincipal, error) {
	var kp middleware.KeyPrincipal
	switch {
	case e.Name == "":
		return kp, fmt.Errorf("name: missing")
	case !tenantPattern.MatchString(e.Tenant):
		return kp, fmt.Errorf("tenant: %q must match %s", e.Tenant, tenantPattern)
	case len(e.Scopes) == 0:
		return kp, fmt.Errorf("scopes: missing (some of %v)", middleware.Scopes)
	case (e.SHA256 == "") == (e.Key == ""):
		return kp, fmt.Errorf("sha256: give exactly one of sha256 (hex SHA-256 of the key) and key")
	}
	for j, sc := range e.Scopes {
		if !slices.Contains(middleware.Scopes, sc) {
			return kp, fmt.Errorf("scopes[%d]: unknown scope %q (want some of %v)", j, sc, middleware.Scopes)
		}
	}
	if e.Key != "" {
		kp.SHA256 = sha256.Sum256([]byte(e.Key))
	} else if d, err := hex.DecodeString(e.SHA256); err != nil || len(d) != sha256.Size {
		return kp, fmt.Errorf("sha256: want 64 hex digits")
	} else {
		copy(kp.SHA256[:], d)
	}
	var streams []string
	if len(e.Streams) > 0 && !slices.Contains(e.Streams, "*") {
		streams = e.Streams
	}
	kp.Principal = middleware.Principal{Name: e.Name, Tenant: e.Tenant, Scopes: e.Scopes, Streams: streams}
	return kp, nil
}

// keysReloader reloads API_KEYS_FILE without a restart: on SIGHUP, and when
// its content changes (polled, which also sees a Kubernetes Secret's
// symlink swap, where file events would not). A file that does not parse
// leaves the previous keys in force.
type keysReloader struct {
	path    string
	auth    *middleware.Auth
	log     *slog.Logger
	audited func(action, outcome string)
	// quotas, when set, takes the file's per-tenant quotas at each load.
	quotas func(map[string]quota.Limits)
	last   [sha256.Size]byte // of the content in force
}

// load reads and checks the file as it is at the start, and remembers its
// content for the reloads.
func (k *keysReloader) load() ([]middleware.KeyPrincipal, error) {
	data, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
	}
	k.last = sha256.Sum256(data)
	kps, err := parseKeysFile(k.path, data, k.log)
	if err == nil {
		err = k.takeQuotas(data)
	}
	return kps, err
}

// takeQuotas hands the file's per-tenant quotas over.
func (k *keysReloader) takeQuotas(data []byte) error {
	t, err := parseTenantQuotas(k.path, data)
	if err == nil && k.quotas != nil {
		k.quotas(t)
	}
	return err
}

// run reloads until ctx is done.
func (k *keysReloader) run(ctx context.Context, poll time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			k.reload(ctx, "SIGHUP", true)
		case <-tick.C:
			k.reload(ctx, "file changed", false)
		}
	}
}

// reload reads the file and, when it changed or always is set, swaps the
// keys in. Each attempt is audited: logged and counted.
func (k *keysReloader) reload(ctx context.Context, trigger string, always bool) {
	data, err := os.ReadFile(k.path)
	sum := sha256.Sum256(data)
	if err == nil && !always && sum == k.last {
		return
	}
	var kps []middleware.KeyPrincipal
	if err == nil {
		kps, err = parseKeysFile(k.path, data, k.log)
	}
	if err == nil {
		err = k.takeQuotas(data)
	}
	if err != nil {
		if !always && sum == k.last {
			return
		}
		k.last = sum // logged once per broken content, not once a second
		k.log.ErrorContext(ctx, "audit", "action", "keys.reload", "outcome", "failed", "trigger", trigger,
			"err", err, "detail", "the previous keys stay in force")
		k.audited("keys.reload", "failed")
		return
	}
	k.last = sum
	added, removed := k.auth.SetKeys(kps)
	k.log.InfoContext(ctx, "audit", "action", "keys.reload", "outcome", "ok", "trigger", trigger,
		"keys", len(kps), "added", added, "removed", removed)
	k.audited("keys.reload", "ok")
}
