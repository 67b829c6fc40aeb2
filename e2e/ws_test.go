package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream/internal/testenv"
)

// wsURL is the WebSocket route of stream id on a server at base (http://…).
func wsURL(base, id, query string) string {
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/streams/" + id + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// wsFrame is any frame the server sends; which member is set says its kind.
type wsFrame struct {
	Raw string `json:"-"`
	// A result: the SSE data object and its cursor.
	Cursor string `json:"cursor"`
	result
	// An ack.
	Ack      *int     `json:"ack"`
	EventIDs []string `json:"event_ids"`
	// An error frame.
	Error *struct {
		problemBody
		RetryAfter int `json:"retry_after"`
	} `json:"error"`
	// The end frame.
	End *struct {
		Reason string `json:"reason"`
	} `json:"end"`
}

// wsConn reads a socket in a goroutine: results go to one channel, answers
// (ack and error frames) to another, so a test can wait for either while
// the other keeps coming.
type wsConn struct {
	t       *testing.T
	c       *websocket.Conn
	results chan wsFrame
	answers chan wsFrame
	ends    chan wsFrame
	done    chan struct{} // closed when the socket ended; err says how
	err     error
	cancel  context.CancelFunc
}

// tryWS dials url with hdr (an empty value removes a header; the test key is
// sent unless removed). On a 101 it returns the open socket; otherwise the
// whole answer.
func tryWS(t *testing.T, rawURL string, hdr http.Header) (*wsConn, reply) {
	t.Helper()
	h := http.Header{"X-Api-Key": {apiKey}}
	for k, vs := range hdr {
		h.Del(k)
		for _, v := range vs {
			if v != "" {
				h.Add(k, v)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", redactKey(rawURL), err)
		}
		var body []byte
		if resp.Body != nil {
			body, _ = io.ReadAll(resp.Body)
		}
		return nil, reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	// Results are 1 MiB at most; the default limit is 32 KiB.
	c.SetReadLimit(4 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	w := &wsConn{t: t, c: c, results: make(chan wsFrame, 1<<14), answers: make(chan wsFrame, 1<<10),
		ends: make(chan wsFrame, 1), done: make(chan struct{}), cancel: rcancel}
	go w.read(rctx)
	t.Cleanup(w.close)
	return w, reply{Status: resp.StatusCode, Header: resp.Header}
}

// openWS is tryWS that fails the test on anything but a 101.
func openWS(t *testing.T, rawURL string, hdr http.Header) *wsConn {
	t.Helper()
	w, rep := tryWS(t, rawURL, hdr)
	if w == nil {
		t.Fatalf("dial %s: %s, want 101", redactKey(rawURL), rep)
	}
	return w
}

// redactKey keeps the key out of test output.
func redactKey(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	if q := u.Query(); q.Has("api_key") {
		q.Set("api_key", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (w *wsConn) read(ctx context.Context) {
	defer close(w.done)
	for {
		typ, data, err := w.c.Read(ctx)
		if err != nil {
			w.err = err
			return
		}
		if typ != websocket.MessageText {
			w.t.Errorf("a %v frame from the server, want text: %q", typ, data)
			continue
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			w.t.Errorf("a frame that is not JSON (%v): %s", err, data)
			continue
		}
		f.Raw = string(data)
		switch {
		case f.Cursor != "":
			w.results <- f
		case f.Ack != nil || f.Error != nil:
			w.answers <- f
		case f.End != nil:
			w.ends <- f
		default:
			w.t.Errorf("a frame of no known kind: %s", data)
		}
	}
}

func (w *wsConn) close() {
	_ = w.c.CloseNow()
	w.cancel()
	<-w.done
}

// send writes one frame.
func (w *wsConn) send(typ websocket.MessageType, data []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := w.c.Write(ctx, typ, data); err != nil {
		w.t.Fatalf("writing a frame: %v", err)
	}
}

// answer returns the answer to the next unanswered frame.
func (w *wsConn) answer() wsFrame {
	w.t.Helper()
	select {
	case f := <-w.answers:
		return f
	case <-time.After(requestTimeout):
		w.t.Fatal("no answer to a frame")
	case <-w.done:
		select {
		case f := <-w.answers:
			return f
		default:
		}
		w.t.Fatalf("the socket ended without answering a frame: %v", w.err)
	}
	return wsFrame{}
}

// sendEvents sends one frame and expects its ack for n events.
func (w *wsConn) sendEvents(data []byte, n int) []string {
	w.t.Helper()
	w.send(websocket.MessageText, data)
	f := w.answer()
	if f.Ack == nil || *f.Ack != n || len(f.EventIDs) != n {
		w.t.Fatalf("answer %s, want an ack of %d events", f.Raw, n)
	}
	return f.EventIDs
}

// sendBad sends a frame the server must refuse with status, and checks the
// error frame is a problem.
func (w *wsConn) sendBad(what string, typ websocket.MessageType, data []byte, status int) {
	w.t.Helper()
	w.send(typ, data)
	f := w.answer()
	if f.Error == nil {
		w.t.Fatalf("%s: answer %s, want an error frame", what, f.Raw)
	}
	p := f.Error.problemBody
	if p.Status != status || p.Type == "" || p.Title == "" || p.Detail == "" || !strings.HasSuffix(p.Instance, "/ws") {
		w.t.Errorf("%s: error %s, want status %d with type, title, detail and instance", what, f.Raw, status)
	}
}

// awaitResults reads exactly n results.
func (w *wsConn) awaitResults(n int) []delivery {
	w.t.Helper()
	deadline := time.After(resultTimeout)
	got := make([]delivery, 0, n)
	for len(got) < n {
		select {
		case f := <-w.results:
			got = append(got, delivery{Cursor: f.Cursor, result: f.result})
		case <-deadline:
			w.t.Fatalf("%d of %d results arrived in %s", len(got), n, resultTimeout)
		case <-w.done:
			if len(w.results) == 0 {
				w.t.Fatalf("%d of %d results arrived, then the socket ended: %v", len(got), n, w.err)
			}
		}
	}
	return got
}

// awaitClose waits for the server to close the socket and returns the code.
func (w *wsConn) awaitClose() websocket.StatusCode {
	w.t.Helper()
	select {
	case <-w.done:
		return websocket.CloseStatus(w.err)
	case <-time.After(requestTimeout):
		w.t.Fatal("the server did not close the socket")
		return 0
	}
}

// TestWebSocketRoundTrip sends events over a socket, one and as a batch,
// gets their acks and then their results with cursors, in order, the same as
// an SSE subscriber's; refused frames get error frames and the socket keeps
// working.
func TestWebSocketRoundTrip(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "ws"))
	env["MAX_BODY_BYTES"] = "65536"
	env["MAX_BATCH"] = "10"
	s := startServer(t, "ws", env)
	st := createStream(t, s.Base+"/v1/streams", "websocket")
	sse := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")
	w := openWS(t, wsURL(s.Base, st.ID, ""), nil)

	var ids []string
	var want []json.RawMessage
	ids = append(ids, w.sendEvents([]byte(`{"n":0,"s":"<b>&"}`), 1)...)
	want = append(want, json.RawMessage(`{"n":0,"s":"<b>&"}`))
	ids = append(ids, w.sendEvents([]byte("{\"events\": [{\"n\":1},\n {\"n\":2}, [3]]}"), 3)...)
	want = append(want, json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":2}`), json.RawMessage(`[3]`))

	w.sendBad("invalid JSON", websocket.MessageText, []byte(`{"n":`), http.StatusBadRequest)
	w.sendBad("binary frame", websocket.MessageBinary, []byte(`{"n":9}`), http.StatusUnsupportedMediaType)
	w.sendBad("empty batch", websocket.MessageText, []byte(`{"events":[]}`), http.StatusBadRequest)
	w.sendBad("empty frame", websocket.MessageText, []byte(" "), http.StatusBadRequest)
	w.sendBad("batch over MAX_BATCH", websocket.MessageText, []byte(`{"events":[1,2,3,4,5,6,7,8,9,10,11]}`), http.StatusRequestEntityTooLarge)

	// Still open, and nothing of the refused frames went through.
	ids = append(ids, w.sendEvents([]byte(`"after"`), 1)...)
	want = append(want, json.RawMessage(`"after"`))
	if distinct(ids) != len(ids) {
		t.Errorf("acks repeat event ids: %v", ids)
	}

	got := w.awaitResults(len(ids))
	checkResults(t, st.ID, got, ids, want)
	fromSSE := sse.awaitResults(t, len(ids), resultTimeout)
	for i := range got {
		if got[i].Cursor != fromSSE[i].Cursor {
			t.Errorf("result %d: cursor %q over the socket, %q over SSE", i, got[i].Cursor, fromSSE[i].Cursor)
		}
	}
	// A result sent over HTTP reaches the socket too, and nothing else came.
	expectNoMoreResultsWS(t, s.Base+"/v1/streams/"+st.ID+"/events", w)
	if m := call(t, http.MethodGet, s.Base+"/metrics", "", nil); !bytes.Contains(m.Body, []byte(`rtstream_subscribers{transport="websocket"} 1`+"\n")) {
		t.Errorf("/metrics does not count the open socket in rtstream_subscribers{transport=\"websocket\"}")
	}

	// A frame over MAX_BODY_BYTES: the protocol allows only a close (1009).
	w.send(websocket.MessageText, []byte(`{"pad":"`+strings.Repeat("x", 70000)+`"}`))
	if code := w.awaitClose(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d after an oversized frame, want 1009 (%v)", code, w.err)
	}
	w2 := openWS(t, wsURL(s.Base, st.ID, ""), nil)
	w2.sendEvents([]byte(`1`), 1)
}

// expectNoMoreResultsWS sends a sentinel over HTTP and checks it is the next
// result on the socket.
func expectNoMoreResultsWS(t *testing.T, eventsURL string, w *wsConn) {
	t.Helper()
	sentinel := send(t, eventsURL, "application/json", []byte(`{"sentinel":true}`), 1)[0]
	for {
		d := w.awaitResults(1)[0]
		if d.EventID == sentinel {
			return
		}
		t.Errorf("unexpected extra result before the sentinel: event_id %s data %s", d.EventID, d.Data)
	}
}

// TestWebSocketAuthAndOrigin: no or a wrong key is 401 before the upgrade,
// and so is an admin key in ?api_key=; a subscribe token in ?token= opens
// the socket (browsers cannot set headers on it), and a
// browser Origin must be the server's own or in CORS_ORIGINS (403 otherwise).
func TestWebSocketAuthAndOrigin(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "wsauth"))
	env["CORS_ORIGINS"] = "https://app.example"
	s := startServer(t, "wsauth", env)
	st := createStream(t, s.Base+"/v1/streams", "websocket auth")
	noKey := http.Header{"X-Api-Key": {""}}

	for _, tc := range []struct {
		name  string
		query string
		hdr   http.Header
	}{
		{"no key", "", noKey},
		{"wrong key", "", http.Header{"X-Api-Key": {"wrong-" + randomSuffix()}}},
		{"wrong ?api_key=", "api_key=wrong", noKey},
		{"an admin key in ?api_key=", "api_key=" + url.QueryEscape(apiKey), noKey},
		{"a wrong ?token=", "token=rtstok_e30.AAAA", noKey},
	} {
		w, rep := tryWS(t, wsURL(s.Base, st.ID, tc.query), tc.hdr)
		if w != nil {
			t.Fatalf("%s: the socket opened, want 401", tc.name)
		}
		checkUnauthorized(t, "ws with "+tc.name, rep)
	}

	token := mintTokenWith(t, s.Base, nil, st.ID)
	w := openWS(t, wsURL(s.Base, st.ID, "token="+url.QueryEscape(token)), noKey)
	w.sendBad("a send with a token that only reads", websocket.MessageText, []byte(`{"via":"token"}`), http.StatusForbidden)
	send(t, s.Base+"/v1/streams/"+st.ID+"/events", "application/json", []byte(`{"via":"token"}`), 1)
	if got := w.awaitResults(1); string(got[0].Data) != `{"via":"token"}` {
		t.Errorf("result %s", got[0].Data)
	}
	if strings.Contains(s.logTail(1<<20), apiKey) {
		t.Errorf("the server logged the API key")
	}

	host := strings.TrimPrefix(s.Base, "http://")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"http://" + host, http.StatusSwitchingProtocols},
		{"https://app.example", http.StatusSwitchingProtocols},
	} {
		w, rep := tryWS(t, wsURL(s.Base, st.ID, ""), http.Header{"Origin": {tc.origin}})
		if rep.Status != tc.want {
			t.Errorf("Origin %s: %s, want %d", tc.origin, rep, tc.want)
		}
		if tc.want == http.StatusForbidden {
			checkProblem(t, "Origin "+tc.origin, rep, http.StatusForbidden)
		}
		if w != nil {
			w.close()
		}
	}

	// Not a WebSocket request at all.
	rep := call(t, http.MethodGet, s.Base+"/v1/streams/"+st.ID+"/ws", "", nil)
	checkProblem(t, "GET without Upgrade", rep, http.StatusUpgradeRequired)
	// An unknown stream is refused before the upgrade.
	if w, rep := tryWS(t, wsURL(s.Base, "nope-"+randomSuffix(), ""), nil); w != nil || rep.Status != http.StatusNotFound {
		t.Errorf("unknown stream: %s, want 404", rep)
	}
}

// TestWebSocketStreamDeleted: deleting the stream sends the end frame, then
// a normal close.
func TestWebSocketStreamDeleted(t *testing.T) {
	t.Parallel()
	s := startServer(t, "wsdel", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "wsdel")))
	st := createStream(t, s.Base+"/v1/streams", "websocket delete")
	w := openWS(t, wsURL(s.Base, st.ID, ""), nil)
	w.sendEvents([]byte(`1`), 1)
	w.awaitResults(1)
	if rep := call(t, http.MethodDelete, s.Base+"/v1/streams/"+st.ID, "", nil); rep.Status != http.StatusNoContent {
		t.Fatalf("DELETE: %s, want 204", rep)
	}
	select {
	case f := <-w.ends:
		if f.End.Reason != "stream deleted" {
			t.Errorf("end frame %s", f.Raw)
		}
	case <-time.After(resultTimeout):
		t.Fatalf("no end frame after the delete (socket: %v)", w.err)
	}
	if code := w.awaitClose(); code != websocket.StatusNormalClosure {
		t.Fatalf("close code %d after the end frame, want 1000 (%v)", code, w.err)
	}
	if w, rep := tryWS(t, wsURL(s.Base, st.ID, ""), nil); w != nil || rep.Status != http.StatusNotFound {
		t.Errorf("reopening a deleted stream: %s, want 404", rep)
	}
}

// TestWebSocketResume: a client that reconnects with ?last_event_id= (or
// Last-Event-ID) gets every result after that cursor, then the live ones,
// with no gap and no duplicate, exactly like SSE; ?from=earliest replays all.
func TestWebSocketResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, "wsresume", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "wsresume")))
	st := createStream(t, s.Base+"/v1/streams", "websocket resume")
	eventsURL := s.Base + "/v1/streams/" + st.ID + "/events"

	w := openWS(t, wsURL(s.Base, st.ID, ""), nil)
	var ids []string
	var want []json.RawMessage
	for i := 0; i < 3; i++ {
		data := []byte(fmt.Sprintf(`{"i":%d}`, i))
		ids = append(ids, w.sendEvents(data, 1)...)
		want = append(want, data)
	}
	first := w.awaitResults(3)
	checkResults(t, st.ID, first, ids, want)
	w.close()

	// Sent while the client is away.
	for i := 3; i < 5; i++ {
		data := []byte(fmt.Sprintf(`{"i":%d}`, i))
		ids = append(ids, send(t, eventsURL, "application/json", data, 1)...)
		want = append(want, data)
	}

	resumed := openWS(t, wsURL(s.Base, st.ID, "last_event_id="+url.QueryEscape(first[0].Cursor)), nil)
	got := resumed.awaitResults(4)
	checkResults(t, st.ID, got, ids[1:], want[1:])
	for i := 0; i < 2; i++ {
		if got[i].Cursor != first[i+1].Cursor {
			t.Errorf("replayed result %d: cursor %q, first delivered as %q", i, got[i].Cursor, first[i+1].Cursor)
		}
	}
	expectNoMoreResultsWS(t, eventsURL, resumed)

	byHeader := openWS(t, wsURL(s.Base, st.ID, ""), http.Header{"Last-Event-ID": {got[3].Cursor}})
	live := send(t, eventsURL, "application/json", []byte(`"live"`), 1)
	// After the cursor: the sentinel sent above, then the live event.
	if d := byHeader.awaitResults(2); d[1].EventID != live[0] || !bytes.Contains([]byte(d[0].Data), []byte("sentinel")) {
		t.Errorf("resumed by Last-Event-ID: %+v", d)
	}

	earliest := openWS(t, wsURL(s.Base, st.ID, "from=earliest"), nil)
	all := earliest.awaitResults(7)
	checkResults(t, st.ID, all[:5], ids, want)
	if all[6].EventID != live[0] {
		t.Errorf("from=earliest: last result %s, want the live event %s", all[6].EventID, live[0])
	}
}
