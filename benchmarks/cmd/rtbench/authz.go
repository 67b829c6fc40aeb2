package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// The authz phase answers issue 12: tenants, scopes and their checks may add
// at most 3% server CPU per single-event POST against the API-key path of a
// single-tenant server. It compares two servers that differ in who the key
// is:
//
//	ON:  API_KEYS_FILE with authzKeys keys in authzKeys/10 tenants; the key
//	     sent is a tenant's key with the four non-admin scopes, so every send
//	     runs the scope check and the tenant check of a multi-tenant server
//	OFF: API_KEYS with one key, an admin of tenant default: the single-tenant
//	     path. With -authz-base-bin, OFF runs that binary instead (a build
//	     from before tenants), to measure against the code as it was.
//
// The verdict is on server CPU per request (ON/OFF - 1), not throughput:
// both sides wait on the same broker, which hides a small CPU cost.
func authzComparison(o options) comparison {
	return comparison{
		phase:  "authz",
		on:     serverVariant{name: "authz-on", auth: true, keysFile: authzKeys, logLevel: "warn"},
		off:    serverVariant{name: "authz-off", auth: true, logLevel: "warn", bin: o.AuthzBaseBin},
		rounds: o.MWRounds,
		target: targetAuthzCPUCost,
		cpu:    true,
		check:  checkAuthzDiffer,
	}
}

// authzKeys is how many keys the ON server's API_KEYS_FILE holds: the
// lookup compares against every one of them.
const authzKeys = 100

// writeKeysFile writes an API_KEYS_FILE of n keys in n/10 tenants into dir;
// key is tenant-0's first, with every scope but admin, other tenant-1's.
func writeKeysFile(dir string, n int) (path, key, other string, err error) {
	type entry struct {
		Name    string   `json:"name"`
		Tenant  string   `json:"tenant"`
		Scopes  []string `json:"scopes"`
		Streams []string `json:"streams"`
		SHA256  string   `json:"sha256"`
	}
	entries := make([]entry, n)
	for i := range entries {
		k := randomHex(16)
		switch i {
		case 0:
			key = k
		case 1:
			other = k
		}
		d := sha256.Sum256([]byte(k))
		entries[i] = entry{Name: fmt.Sprintf("bench-%d", i), Tenant: fmt.Sprintf("tenant-%d", i%max(1, n/10)),
			Scopes: []string{"streams:write", "streams:read", "events:write", "results:read"}, Streams: []string{"*"},
			SHA256: hex.EncodeToString(d[:])}
	}
	data, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		return "", "", "", err
	}
	path = filepath.Join(dir, "keys.json")
	return path, key, other, os.WriteFile(path, data, 0o600)
}

// checkAuthzDiffer proves that ON runs the multi-tenant path: a stream
// ON's key created is 404 to another tenant's key and 200 to its own.
func checkAuthzDiffer(ctx context.Context, on, _ *compareSide) (string, error) {
	url := on.srv.URL + "/v1/streams/" + on.streams[0]
	for _, c := range []struct {
		key  string
		want int
	}{{on.srv.APIKey, http.StatusOK}, {on.srv.OtherKey, http.StatusNotFound}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("X-API-Key", c.key)
		resp, err := on.lt.http.Do(req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			return "", fmt.Errorf("ON server: GET of its stream answered %d, want %d: not the multi-tenant path", resp.StatusCode, c.want)
		}
	}
	return "ON: its stream is 200 to its tenant's key, 404 to another tenant's", nil
}
