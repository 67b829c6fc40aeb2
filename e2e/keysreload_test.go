package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream/internal/testenv"
)

const carolKey = "carol-acme-key-012345678" // added and removed by the reload test

// awaitStatus repeats a GET as key until it answers want, for at most 5 s:
// the time a reload has to take effect.
func awaitStatus(t *testing.T, key, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep := as(t, key, http.MethodGet, url, "", nil)
		if rep.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %s 5 s after the reload; want %d", url, rep, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKeysFileReload: API_KEYS_FILE changes take effect without a restart.
// An added key works; a removed key's open SSE and WebSocket connections,
// and those of the tokens it minted, close within 5 s, while the other
// keys' stay open; a broken file leaves the keys in force, and is logged
// and counted; SIGHUP reloads too.
func TestKeysFileReload(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "reload"))
	env["API_KEYS"] = ""
	path := writeKeysFile(t)
	env["API_KEYS_FILE"] = path
	env["API_KEYS_FILE_POLL"] = "200ms"
	s := startServer(t, "reload", env)
	id := createAs(t, s.Base, aliceKey, "reloaded")
	stream := s.Base + "/v1/streams/" + id

	carol := keyEntry("carol", "acme", carolKey, "streams:read", "results:read", "events:write")
	rewriteKeysFile(t, path, carol)
	awaitStatus(t, carolKey, stream, http.StatusOK)

	token := mintToken(t, s.Base, carolKey, id, "")
	results := stream + "/results"
	carolSSE := openSSEWith(t, results, withKey(carolKey))
	tokenSSE := openSSEWith(t, results+"?token="+url.QueryEscape(token), withKey(""))
	carolWS := openWS(t, wsURL(s.Base, id, ""), withKey(carolKey))
	aliceSSE := openSSEWith(t, results, withKey(aliceKey))

	removed := time.Now()
	rewriteKeysFile(t, path)
	for name, c := range map[string]*sseConn{"carol's SSE": carolSSE, "carol's token's SSE": tokenSSE} {
		select {
		case <-c.done:
		case <-time.After(5*time.Second - time.Since(removed)):
			t.Errorf("%s is still open 5 s after carol's key was removed", name)
		}
	}
	if code := carolWS.awaitClose(); code != websocket.StatusPolicyViolation {
		t.Errorf("carol's WebSocket closed with %d; want 1008 (policy violation)", code)
	}
	awaitStatus(t, carolKey, stream, http.StatusUnauthorized)
	if c, rep := trySSE(t, results+"?token="+url.QueryEscape(token), withKey("")); c != nil || rep.Status != http.StatusUnauthorized {
		t.Errorf("the token of a removed key: %s; want 401", rep)
	}
	ids := sendAs(t, aliceKey, stream+"/events", `{"still":"open"}`)
	if got := aliceSSE.awaitResults(t, 1, resultTimeout); got[0].EventID != ids[0] {
		t.Errorf("alice's SSE, open across the reload, got %+v", got)
	}

	writeAtomically(t, path, []byte(`{"keys":[{"name":"broken"`))
	time.Sleep(time.Second) // five polls
	awaitStatus(t, aliceKey, stream, http.StatusOK)
	if m := scrape(t, s.Base); m[`rtstream_audit_events_total{action="keys.reload",outcome="failed"}`] < 1 {
		t.Errorf("the broken file was not counted: %v", m[`rtstream_audit_events_total{action="keys.reload",outcome="failed"}`])
	}
	rewriteKeysFile(t, path, carol)
	time.Sleep(300 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	awaitStatus(t, carolKey, stream, http.StatusOK)
	checkReloadLog(t, s)
}

// checkReloadLog: each reload is audited, the broken one with its error,
// and so is the token carol minted.
func checkReloadLog(t *testing.T, s *server) {
	t.Helper()
	log := s.lastStartLog()
	for _, want := range []string{
		"msg=audit action=keys.reload outcome=ok trigger=\"file changed\" keys=5 added=1 removed=0",
		"msg=audit action=keys.reload outcome=ok trigger=\"file changed\" keys=4 added=0 removed=1",
		"msg=audit action=keys.reload outcome=failed trigger=\"file changed\"",
		"msg=audit action=keys.reload outcome=ok trigger=SIGHUP",
		"msg=audit action=token.issue outcome=ok status=201 principal=carol tenant=acme",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no line with %q", want)
		}
	}
	if strings.Contains(log, carolKey) {
		t.Error("the log holds a key")
	}
}

// TestTokensAcrossInstances: two instances sharing TOKEN_SECRET each accept
// the subscribe tokens the other minted, and deliver through them what was
// sent to the other.
func TestTokensAcrossInstances(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "tokens2"))
	env["API_KEYS"] = ""
	env["API_KEYS_FILE"] = writeKeysFile(t)
	env["TOKEN_SECRET"] = strings.Repeat("shared-secret-", 3)
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)
	id := createAs(t, a.Base, aliceKey, "across")
	for _, c := range []struct{ mint, use, send *server }{{a, b, a}, {b, a, b}} {
		token := mintToken(t, c.mint.Base, aliceKey, id, "5m")
		sse := openSSEWith(t, c.use.Base+"/v1/streams/"+id+"/results?token="+url.QueryEscape(token), withKey(""))
		ids := sendAs(t, aliceKey, c.send.Base+"/v1/streams/"+id+"/events", `{"across":true}`)
		if got := sse.awaitResults(t, 1, resultTimeout); got[0].EventID != ids[0] {
			t.Errorf("minted on %s, used on %s: got %+v", c.mint.name, c.use.name, got)
		}
		sse.close()
	}
}

// sendAs sends one JSON event with key and returns its id.
func sendAs(t *testing.T, key, url, event string) []string {
	t.Helper()
	rep := as(t, key, http.MethodPost, url, "application/json", []byte(event))
	var a accepted
	if rep.Status != http.StatusAccepted {
		t.Fatalf("POST %s: %s, want 202", url, rep)
	}
	decodeJSON(t, "send answer", rep.Body, &a)
	return a.EventIDs
}

// TestTokensHaveTheirOwnCaps: each subscribe token has its own cap of held
// connections, apart from its siblings minted by the same key, so that a
// backend minting one token per browser user does not share one cap among
// all of them.
func TestTokensHaveTheirOwnCaps(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "tokencaps"))
	env["MAX_SSE_PER_KEY"] = "1"
	s := startServer(t, "tokencaps", env)
	st := createStream(t, s.Base+"/v1/streams", "token caps")
	results := s.Base + "/v1/streams/" + st.ID + "/results?token="
	first, second := mintTokenWith(t, s.Base, nil, st.ID), mintTokenWith(t, s.Base, nil, st.ID)
	openSSEWith(t, results+url.QueryEscape(first), withKey(""))
	if c, rep := trySSE(t, results+url.QueryEscape(first), withKey("")); c != nil || rep.Status != http.StatusForbidden {
		t.Errorf("a second connection of the same token: %s; want 403 quota-exceeded (its quota is 1)", rep)
	}
	if c, rep := trySSE(t, results+url.QueryEscape(second), withKey("")); c == nil {
		t.Errorf("another token of the same key: %s; want its own connection", rep)
	}
}
