package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// The keys of TestTenantsAndScopes' API_KEYS_FILE.
const (
	aliceKey  = "alice-acme-key-0123456789" // acme, every scope but admin
	bobKey    = "bob-globex-key-0123456789" // globex, the same scopes
	readerKey = "reader-acme-key-012345678" // acme, streams:read and results:read
	rootKey   = "root-ops-key-012345678901" // ops, admin
)

func sha(key string) string { d := sha256.Sum256([]byte(key)); return hex.EncodeToString(d[:]) }

// writeKeysFile writes an API_KEYS_FILE for the four keys; the reader's key
// is in plaintext, the development form.
func writeKeysFile(t *testing.T, extra ...map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	rewriteKeysFile(t, path, extra...)
	return path
}

// rewriteKeysFile writes the four keys and extra to path, in one rename so
// that a reload never reads half a file.
func rewriteKeysFile(t *testing.T, path string, extra ...map[string]any) {
	t.Helper()
	all := []string{"streams:write", "streams:read", "events:write", "results:read"}
	f := map[string]any{"keys": append([]map[string]any{
		{"name": "alice", "tenant": "acme", "scopes": all, "streams": []string{"*"}, "sha256": sha(aliceKey)},
		{"name": "bob", "tenant": "globex", "scopes": all, "sha256": sha(bobKey)},
		{"name": "reader", "tenant": "acme", "scopes": []string{"streams:read", "results:read"}, "key": readerKey},
		{"name": "root", "tenant": "ops", "scopes": []string{"admin"}, "sha256": sha(rootKey)},
	}, extra...)}
	writeAtomically(t, path, mustJSON(t, f))
}

// writeAtomically replaces path with data through a rename.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// as makes one request with key.
func as(t *testing.T, key, method, url, contentType string, body []byte) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := request(ctx, method, url, contentType, body, http.Header{"X-API-Key": {key}})
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return rep
}

// problemOf is a problem body with the stream id it names made "ID".
func problemOf(t *testing.T, rep reply, id string) string {
	t.Helper()
	var p map[string]any
	decodeJSON(t, "problem", rep.Body, &p)
	return strings.ReplaceAll(fmt.Sprint(rep.Status, p), id, "ID")
}

// TestTenantsAndScopes: on real Kafka, with API_KEYS_FILE, every route of a
// stream answers another tenant exactly as for an id that does not exist,
// a key without a scope gets 403 naming it, the list shows a tenant its own
// streams (an admin every tenant's), and no refused request changed
// anything: the stream is still there, and no event was added.
func TestTenantsAndScopes(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "tenants"))
	env["API_KEYS"] = ""
	env["API_KEYS_FILE"] = writeKeysFile(t)
	s := startServer(t, "tenants", env)
	if !strings.Contains(s.lastStartLog(), "plaintext key") {
		t.Errorf("the plaintext key was not warned about:\n%s", s.lastStartLog())
	}
	create := func(key, name string) string {
		rep := as(t, key, http.MethodPost, s.Base+"/v1/streams", "application/json", []byte(`{"name":"`+name+`"}`))
		if rep.Status != http.StatusCreated {
			t.Fatalf("create %s: %s", name, rep)
		}
		var st streamObj
		decodeJSON(t, "stream", rep.Body, &st)
		return st.ID
	}
	acme, globex := create(aliceKey, "acme-stream"), create(bobKey, "globex-stream")
	base := s.Base + "/v1/streams/"
	routes := []struct {
		method, path, ct string
		body             []byte
	}{
		{http.MethodGet, "%s", "", nil},
		{http.MethodDelete, "%s", "", nil},
		{http.MethodPost, "%s/events", "application/json", []byte(`{"x":1}`)},
		{http.MethodGet, "%s/results", "", nil},
		{http.MethodGet, "%s/results?wait=1s", "", nil},
		{http.MethodGet, "%s/dead-letters", "", nil},
	}
	for _, rt := range routes {
		other := as(t, bobKey, rt.method, base+fmt.Sprintf(rt.path, acme), rt.ct, rt.body)
		unknown := as(t, bobKey, rt.method, base+fmt.Sprintf(rt.path, "no-such-stream"), rt.ct, rt.body)
		if other.Status != http.StatusNotFound || problemOf(t, other, acme) != problemOf(t, unknown, "no-such-stream") {
			t.Errorf("%s %s by another tenant: %s; want what an unknown id gets: %s", rt.method, rt.path, other, unknown)
		}
	}
	sse := as(t, bobKey, http.MethodGet, base+acme+"/results", "", nil)
	if sse.Status != http.StatusNotFound {
		t.Errorf("another tenant's results: %s, want 404", sse)
	}
	if rep := as(t, bobKey, http.MethodPut, base+acme, "application/json", []byte(`{"name":"acme-stream"}`)); rep.Status != http.StatusConflict ||
		strings.Contains(string(rep.Body), "acme") {
		t.Errorf("PUT of another tenant's id: %s; want 409 not naming the tenant", rep)
	}
	for _, c := range []struct {
		method, path, ct, scope string
		body                    []byte
	}{
		{http.MethodPost, acme + "/events", "application/json", "events:write", []byte(`{"x":1}`)},
		{http.MethodDelete, acme, "", "streams:write", nil},
		{http.MethodPut, acme, "application/json", "streams:write", []byte(`{"name":"acme-stream"}`)},
	} {
		rep := as(t, readerKey, c.method, base+c.path, c.ct, c.body)
		if rep.Status != http.StatusForbidden || !strings.Contains(string(rep.Body), c.scope) {
			t.Errorf("%s %s without %s: %s; want 403 naming the scope", c.method, c.path, c.scope, rep)
		}
	}
	checkList(t, s.Base, readerKey, []string{acme}, []string{globex})
	checkList(t, s.Base, bobKey, []string{globex}, []string{acme})
	checkList(t, s.Base, rootKey, []string{acme, globex}, nil)
	if rep := as(t, rootKey, http.MethodGet, base+acme, "", nil); rep.Status != http.StatusOK {
		t.Errorf("admin GET of acme's stream: %s", rep)
	}

	// Nothing refused changed anything: the stream is there, with no event.
	if rep := as(t, aliceKey, http.MethodGet, base+acme, "", nil); rep.Status != http.StatusOK {
		t.Fatalf("acme's stream after the refused requests: %s", rep)
	}
	sentinel := as(t, aliceKey, http.MethodPost, base+acme+"/events", "application/json", []byte(`{"sentinel":true}`))
	if sentinel.Status != http.StatusAccepted {
		t.Fatalf("alice's send: %s", sentinel)
	}
	var page struct {
		Results []struct {
			Data json.RawMessage `json:"data"`
		} `json:"results"`
	}
	deadline := time.Now().Add(resultTimeout)
	for len(page.Results) == 0 && time.Now().Before(deadline) {
		decodeJSON(t, "page", as(t, aliceKey, http.MethodGet, base+acme+"/results?wait=5s", "", nil).Body, &page)
	}
	if len(page.Results) != 1 || !jsonEqual(page.Results[0].Data, []byte(`{"sentinel":true}`)) {
		t.Fatalf("acme's results: %+v; want only alice's sentinel (a refused send added events)", page.Results)
	}
	checkAudit(t, s, acme)
}

// checkAudit: stream writes are logged with the principal's name and tenant,
// never a key, and counted by action and outcome, refused ones included.
func checkAudit(t *testing.T, s *server, acme string) {
	t.Helper()
	log := s.lastStartLog()
	for _, want := range []string{
		`msg=audit action=stream.create outcome=ok status=201 principal=alice tenant=acme stream_id=` + acme,
		`msg=audit action=stream.delete outcome=refused status=403 principal=reader tenant=acme stream_id=` + acme,
		`msg=audit action=stream.delete outcome=refused status=404 principal=bob tenant=globex stream_id=` + acme,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no line %q", want)
		}
	}
	for _, key := range []string{aliceKey, bobKey, readerKey, rootKey} {
		if strings.Contains(log, key) {
			t.Errorf("the log holds a key")
		}
	}
	m := scrape(t, s.Base)
	if m[`rtstream_audit_events_total{action="stream.create",outcome="ok"}`] < 2 || m[`rtstream_audit_events_total{action="stream.delete",outcome="refused"}`] < 2 {
		t.Errorf("audit counters: %v created ok, %v deletes refused; want at least 2 each",
			m[`rtstream_audit_events_total{action="stream.create",outcome="ok"}`], m[`rtstream_audit_events_total{action="stream.delete",outcome="refused"}`])
	}
}

// checkList checks that key's list holds want and none of not.
func checkList(t *testing.T, base, key string, want, not []string) {
	t.Helper()
	rep := as(t, key, http.MethodGet, base+"/v1/streams", "", nil)
	var l struct {
		Streams []streamObj `json:"streams"`
	}
	decodeJSON(t, "list", rep.Body, &l)
	ids := map[string]bool{}
	for _, st := range l.Streams {
		ids[st.ID] = true
	}
	for _, id := range want {
		if !ids[id] {
			t.Errorf("list as %s lacks %s: %s", key[:6], id, rep)
		}
	}
	for _, id := range not {
		if ids[id] {
			t.Errorf("list as %s shows another tenant's %s", key[:6], id)
		}
	}
}

// TestMalformedKeysFileStopsTheStart: the server refuses to start, naming
// the entry and the field.
func TestMalformedKeysFileStopsTheStart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	bad := `{"keys":[{"name":"ok","tenant":"acme","scopes":["admin"],"key":"k1"},{"name":"typo","tenant":"acme","scopes":["stream:write"],"key":"k2"}]}`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "badkeys"))
	env["API_KEYS"] = ""
	env["API_KEYS_FILE"] = path
	s := &server{t: t, name: "badkeys", bin: rtstreamBin, dir: t.TempDir(), logPath: filepath.Join(t.TempDir(), "badkeys.log"),
		vars: map[string]string{"LOG_FORMAT": "text", "HTTP_ADDR": freeAddr(t), "DATA_DIR": t.TempDir()}}
	for k, v := range env {
		s.vars[k] = v
	}
	s.Base = "http://" + s.vars["HTTP_ADDR"]
	if err := s.launch(); err == nil {
		_ = s.stop()
		t.Fatal("the server started with a malformed API_KEYS_FILE")
	}
	if log := s.lastStartLog(); !strings.Contains(log, `keys[1] ("typo"): scopes[0]: unknown scope "stream:write"`) {
		t.Fatalf("the refusal does not name the entry and field:\n%s", log)
	}
}
