package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// keyIDOf is how the access log names an API key: "key-" and the first 12
// hex digits of the key's SHA-256.
func keyIDOf(key string) string {
	d := sha256.Sum256([]byte(key))
	return "key-" + hex.EncodeToString(d[:6])
}

// TestLogsHideKeys runs a whole flow with a distinctive key passed in every
// accepted way, plus wrong keys and a key in the query of a route that does
// not take it, then stops the server and reads everything it wrote: neither
// key may appear anywhere, the key's id must, and every access-log line has
// the request's id, route, status and client IP. It also checks the
// X-Request-ID answers.
func TestLogsHideKeys(t *testing.T) {
	t.Parallel()
	secret := randomSuffix() + randomSuffix()
	key := "sekret-" + secret
	wrongSecret := randomSuffix() + randomSuffix()
	wrongKey := "sekret-wrong-" + wrongSecret
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "logs"))
	env["LOG_FORMAT"] = "json"
	env["LOG_LEVEL"] = "debug"
	env["API_KEYS"] = key
	s := startServer(t, "logs", env)
	q := url.QueryEscape

	st := createStreamWith(t, s.Base, withKey(key))
	v1 := s.Base + "/v1/streams/" + st.ID
	token := mintTokenWith(t, s.Base, withKey(key), st.ID)
	byQuery := openSSEWith(t, v1+"/results?token="+q(token), noKey)
	byBearer := openSSEWith(t, s.Base+"/stream/"+st.ID+"/results", withBearer(key))
	byHeader := openSSEWith(t, v1+"/results", withKey(key))

	var ids []string
	for _, hdr := range []http.Header{withKey(key), withBearer(key)} {
		rep := do(t, "POST", v1+"/events", "application/json", []byte(`[{"a":1},{"a":2}]`), hdr)
		if rep.Status != http.StatusAccepted {
			t.Fatalf("send: %s, want 202", rep)
		}
		var a accepted
		decodeJSON(t, "send answer", rep.Body, &a)
		ids = append(ids, a.EventIDs...)
	}
	if rep := do(t, "GET", v1, "", nil, withBearer(key)); rep.Status != http.StatusOK {
		t.Errorf("GET the stream: %s, want 200", rep)
	}

	// Refused: wrong keys everywhere, the right key where the query is not
	// accepted; and a 404 whose query holds the key.
	refused := []struct {
		method, url string
		header      http.Header
	}{
		{"GET", v1, withKey(wrongKey)},
		{"GET", v1, withBearer(wrongKey)},
		{"GET", v1 + "/results?api_key=" + q(wrongKey), http.Header{"X-Api-Key": {""}, "Accept": {"text/event-stream"}}},
		{"GET", v1 + "/results?api_key=" + q(key), http.Header{"X-Api-Key": {""}, "Accept": {"text/event-stream"}}},
		{"POST", v1 + "/events?api_key=" + q(key), noKey},
		{"GET", s.Base + "/v1/streams?api_key=" + q(key), noKey},
		{"GET", v1 + "?api_key=" + q(key), noKey},
	}
	for _, r := range refused {
		var body []byte
		ct := ""
		if r.method == "POST" {
			body, ct = []byte(`{"refused":true}`), "application/json"
		}
		checkUnauthorized(t, r.method+" "+r.url, do(t, r.method, r.url, ct, body, r.header))
	}
	if rep := do(t, "GET", s.Base+"/v1/nothing?api_key="+q(key)+"&k="+q(wrongKey), "", nil, noKey); rep.Status != http.StatusNotFound {
		t.Errorf("GET an unknown route: %s, want 404", rep)
	}

	for _, c := range []*sseConn{byQuery, byBearer, byHeader} {
		checkResults(t, st.ID, c.awaitResults(t, len(ids), resultTimeout), ids, nil)
	}

	// X-Request-ID: made up when absent or insane, echoed when sane.
	sane := "e2e-req-" + randomSuffix() + "_.:/~"
	insane := map[string]string{
		"spaces":    "has spaces " + randomSuffix(),
		"200 chars": strings.Repeat("r", 190) + randomSuffix()[:8] + "zz",
		"non-ASCII": "ünïcode-" + randomSuffix(),
		"a tab":     "tab\there-" + randomSuffix(),
	}
	seen := map[string]bool{}
	for _, hdr := range []http.Header{withKey(key), noKey} {
		rep := do(t, "GET", v1, "", nil, hdr)
		id := rep.Header.Get("X-Request-ID")
		if id == "" || strings.ContainsAny(id, " \t") {
			t.Errorf("GET (%d) without X-Request-ID: answered X-Request-ID %q", rep.Status, id)
		}
		if seen[id] {
			t.Errorf("two requests got the same X-Request-ID %q", id)
		}
		seen[id] = true
	}
	hdr := withKey(key)
	hdr.Set("X-Request-ID", sane)
	if got := do(t, "GET", v1, "", nil, hdr).Header.Get("X-Request-ID"); got != sane {
		t.Errorf("a sane X-Request-ID %q came back as %q", sane, got)
	}
	for name, id := range insane {
		hdr := withKey(key)
		hdr.Set("X-Request-ID", id)
		got := do(t, "GET", v1, "", nil, hdr).Header.Get("X-Request-ID")
		if got == "" || got == id || strings.ContainsAny(got, " \t") || len(got) > 128 {
			t.Errorf("an X-Request-ID with %s (%q) came back as %q, want a new id", name, id, got)
		}
	}

	if rep := do(t, "DELETE", v1, "", nil, withKey(key)); rep.Status != http.StatusNoContent {
		t.Errorf("DELETE: %s, want 204", rep)
	}
	for _, c := range []*sseConn{byQuery, byBearer, byHeader} {
		c.awaitEnd(t, 30*time.Second)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	out, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, needle := range map[string]string{
		"the key":                 key,
		"the key's random part":   secret,
		"the wrong key":           wrongKey,
		"the wrong key's random":  wrongSecret,
		"the URL-escaped key":     q(key),
		"the subscribe token":     token,
		"the token's signature":   token[strings.LastIndexByte(token, '.')+1:],
		"an insane request id":    insane["spaces"],
		"the 200-char request id": insane["200 chars"],
	} {
		if i := bytes.Index(out, []byte(needle)); i >= 0 {
			t.Errorf("%s (%q) is in the server's output: ...%s...", what, needle, out[max(0, i-200):min(len(out), i+len(needle)+50)])
		}
	}

	wantID := keyIDOf(key)
	var access, withKeyID, saneSeen, unauthorized, opened, closed int
	for n, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 || bytes.HasPrefix(line, []byte("==== start #")) {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Errorf("log line %d is not JSON with LOG_FORMAT=json: %s", n+1, line)
			continue
		}
		switch rec["msg"] {
		case "results stream open":
			opened++
			continue
		case "results stream closed":
			closed++
			_, hasDuration := rec["duration"]
			if d, _ := rec["delivered"].(float64); int(d) != len(ids) || !hasDuration || rec["stream_id"] != st.ID {
				t.Errorf("close line %d: want stream_id %s, a duration and %d delivered: %s", n+1, st.ID, len(ids), line)
			}
			continue
		case "request":
		default:
			continue
		}
		access++
		status, ok := rec["status"].(float64)
		if !ok || status < 100 || status > 599 {
			t.Errorf("access-log line %d lacks a status: %s", n+1, line)
		}
		for _, f := range []string{"request_id", "route", "client_ip", "method"} {
			v, ok := rec[f].(string)
			// An unknown route has no pattern to name.
			if !ok || (v == "" && !(f == "route" && (status == 404 || status == 405))) {
				t.Errorf("access-log line %d lacks %s: %s", n+1, f, line)
			}
		}
		if ip, _ := rec["client_ip"].(string); net.ParseIP(ip) == nil {
			// RemoteAddr's host:port is tolerated; the host must be an IP.
			if host, _, err := net.SplitHostPort(ip); err != nil || net.ParseIP(host) == nil {
				t.Errorf("access-log line %d: client_ip %q is not an IP: %s", n+1, ip, line)
			}
		}
		if _, ok := rec["key_id"]; !ok {
			t.Errorf("access-log line %d lacks key_id: %s", n+1, line)
		}
		if rec["key_id"] == wantID {
			withKeyID++
		}
		if status == 401 {
			unauthorized++
			if rec["key_id"] != "" && rec["key_id"] != nil {
				t.Errorf("a refused request is logged with key_id %v: %s", rec["key_id"], line)
			}
		}
		if rec["request_id"] == sane {
			saneSeen++
		}
	}
	// Each result stream is logged when it opens and when it closes.
	if opened != 3 || closed != 3 {
		t.Errorf("result streams logged %d times open and %d closed, want 3 and 3", opened, closed)
	}
	// Authenticated: create, 3 streams, 2 sends, 3 GETs, sane id, 4 insane, delete.
	if withKeyID < 14 {
		t.Errorf("%d access-log lines carry key_id %s, want at least 14", withKeyID, wantID)
	}
	if unauthorized < len(refused)+1 {
		t.Errorf("%d access-log lines with status 401, want at least %d", unauthorized, len(refused)+1)
	}
	if saneSeen != 1 {
		t.Errorf("the caller's request id %q is on %d access-log lines, want 1", sane, saneSeen)
	}
	t.Logf("%d access-log lines, %d with key_id %s, %d refused", access, withKeyID, wantID, unauthorized)
}
