package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// trickle connects to addr, writes head at once and then drip one byte per
// second, and reads whatever the server answers until it closes the
// connection. It returns how long after the first byte the connection was
// closed and what was read; a connection still open after limit fails the
// test.
func trickle(t *testing.T, addr string, head, drip []byte, limit time.Duration) (time.Duration, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write(head); err != nil {
		t.Fatalf("writing the start of the request: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := range drip {
			if _, err := conn.Write(drip[i : i+1]); err != nil {
				return // the server closed the connection
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	_ = conn.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (read so far: %q)", limit, got)
	}
	// EOF or a reset: the server closed the connection.
	return time.Since(start), got
}

// TestSlowClientsCutOff checks that a client trickling its request headers
// (READ_HEADER_TIMEOUT) or the body of a send (READ_TIMEOUT) one byte per
// second is cut off, not served and not kept.
func TestSlowClientsCutOff(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "slow"))
	env["READ_HEADER_TIMEOUT"] = "2s"
	env["READ_TIMEOUT"] = "2s"
	s := startServer(t, "slow", env)
	addr := strings.TrimPrefix(s.Base, "http://")
	st := createStream(t, s.Base+"/v1/streams", "slow")
	const limit = 10 * time.Second

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		req := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("s", 40) + "\r\n\r\n"
		took, got := trickle(t, addr, nil, []byte(req), limit)
		if bytes.Contains(got, []byte(" 200 ")) {
			t.Errorf("the trickled request was served: %q", got)
		}
		t.Logf("closed %s after the first byte (READ_HEADER_TIMEOUT=2s); answer %q", took.Round(time.Millisecond), got)
	})

	t.Run("body of a send", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"pad":"` + strings.Repeat("p", 80) + `"}`)
		head := "POST " + st.Links.Events + " HTTP/1.1\r\nHost: " + addr + "\r\nX-API-Key: " + apiKey +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		took, got := trickle(t, addr, []byte(head), body, limit)
		if len(got) > 0 {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
			if err != nil {
				t.Fatalf("the server answered something that is not HTTP: %q", got)
			}
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("the trickled send got %s, want a 4xx", resp.Status)
			}
		}
		t.Logf("closed %s after the headers (READ_TIMEOUT=2s); answer %q", took.Round(time.Millisecond), firstLine(got))
	})
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// TestStalledSubscriber opens two subscribers of one stream: A reads, B sent
// its request over a socket with a tiny receive buffer and then never reads.
// Big batches fill B's socket buffers, then many small records overflow its
// buffer in the server. A must get every result in order; B must be
// disconnected, having got a gapless prefix of the results (from which it
// could resume).
func TestStalledSubscriber(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "stall"))
	env["MAX_BODY_BYTES"] = "2000000"
	env["MAX_BATCH"] = "1000"
	s := startServer(t, "stall", env)
	st := createStream(t, s.Base+"/v1/streams", "stalled")
	eventsURL := s.Base + st.Links.Events

	a := openSSE(t, s.Base+st.Links.Results)
	b := openStalled(t, strings.TrimPrefix(s.Base, "http://"), st.Links.Results)

	// ~30 × 1000 × 450 bytes: far more than B's socket buffers hold.
	const batches, perBatch, smallSends = 30, 1000, 300
	var ids []string
	var want []json.RawMessage
	pad := strings.Repeat("x", 420)
	for i := range batches {
		var body bytes.Buffer
		body.WriteByte('[')
		for j := range perBatch {
			ev := fmt.Sprintf(`{"b":%d,"n":%d,"pad":"%s"}`, i, j, pad)
			want = append(want, json.RawMessage(ev))
			if j > 0 {
				body.WriteByte(',')
			}
			body.WriteString(ev)
		}
		body.WriteByte(']')
		ids = append(ids, send(t, eventsURL, "application/json", body.Bytes(), perBatch)...)
	}
	got := a.awaitResults(t, len(ids), resultTimeout)
	checkResults(t, st.ID, got, ids, nil)
	checkData(t, got, want)

	// B's server-side buffer holds a bounded number of records: many small
	// ones overflow it while B still does not read.
	for i := range smallSends {
		ev := fmt.Sprintf(`{"small":%d}`, i)
		want = append(want, json.RawMessage(ev))
		ids = append(ids, send(t, eventsURL, "application/json", []byte(ev), 1)...)
	}
	small := a.awaitResults(t, smallSends, resultTimeout)
	checkResults(t, st.ID, small, ids[len(got):], want[len(got):])

	// Now B reads: it must find its stream ended by the server.
	b.drainUntilClosed(t, 60*time.Second)
	n := b.checkPrefix(t, ids)
	if n >= len(ids) {
		t.Errorf("the stalled subscriber got all %d results: it was never disconnected", n)
	}
	t.Logf("the stalled subscriber got %d of %d results (%d bytes) before the server closed it", n, len(ids), len(b.data))

	// A is still live.
	expectNoMoreResults(t, eventsURL, a)

	// And the cut is counted where operators look.
	if got := scrape(t, s.Base)["rtstream_slow_client_disconnects_total"]; got < 1 {
		t.Errorf("rtstream_slow_client_disconnects_total = %v after a stalled subscriber was cut", got)
	}
}

// checkData checks the results' data: the same bytes as sent (the events
// are compact JSON), or else the same JSON value.
func checkData(t *testing.T, got []delivery, want []json.RawMessage) {
	t.Helper()
	bad := 0
	for i, d := range got {
		if !bytes.Equal(d.Data, want[i]) && !jsonEqual(d.Data, want[i]) {
			t.Errorf("result %d: data %.100s, want %.100s", i, d.Data, want[i])
			if bad++; bad > 10 {
				t.Fatalf("... more mismatches not shown")
			}
		}
	}
}

// stalledSub is a subscriber on a raw connection that reads nothing until
// drainUntilClosed.
type stalledSub struct {
	conn *net.TCPConn
	body io.Reader
	data []byte
}

// openStalled sends GET path with Accept: text/event-stream over a socket
// with a tiny receive buffer, reads the answer's head and the ": connected"
// comment, and then stops reading.
func openStalled(t *testing.T, addr, path string) *stalledSub {
	t.Helper()
	conn, err := dialSmallReadBuffer(addr, 1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nX-API-Key: %s\r\n\r\n", path, addr, apiKey)
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s on a raw connection: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on a raw connection: %s", path, resp.Status)
	}
	var first []byte
	for !bytes.HasSuffix(first, []byte("\n\n")) {
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
			t.Fatalf("GET %s on a raw connection: reading the first frame: %v (got %q)", path, err, first)
		}
		first = append(first, one[0])
	}
	if string(first) != ": connected\n\n" {
		t.Fatalf("GET %s on a raw connection: first frame %q, want \": connected\"", path, first)
	}
	_ = conn.SetDeadline(time.Time{})
	return &stalledSub{conn: conn, body: resp.Body}
}

// drainUntilClosed reads everything until the server ends the stream; it
// fails the test if that takes longer than limit.
func (b *stalledSub) drainUntilClosed(t *testing.T, limit time.Duration) {
	t.Helper()
	start := time.Now()
	_ = b.conn.SetReadDeadline(start.Add(limit))
	data, err := io.ReadAll(b.body)
	b.data = data
	t.Logf("the stalled subscriber read %d bytes in %s, then: %v", len(data), time.Since(start).Round(time.Millisecond), err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stalled subscriber's stream was still open %s after it began to read (%d bytes read)", limit, len(data))
	}
	// io.EOF (nil here), an unexpected EOF or a reset: closed by the server.
}

// checkPrefix checks that the complete result frames B received are the
// first results of ids, in order, and returns how many there were.
func (b *stalledSub) checkPrefix(t *testing.T, ids []string) int {
	t.Helper()
	text := string(b.data)
	if i := strings.LastIndex(text, "\n\n"); i >= 0 {
		text = text[:i] // a frame cut short by the close is not a frame
	} else {
		text = ""
	}
	n := 0
	for _, f := range strings.Split(text, "\n\n") {
		if f == "" || strings.HasPrefix(f, ":") {
			continue
		}
		var data string
		for _, line := range strings.Split(f, "\n") {
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
		}
		var r result
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatalf("the stalled subscriber's frame %d is not a result: %q", n, f)
		}
		if n >= len(ids) || r.EventID != ids[n] {
			t.Fatalf("the stalled subscriber's result %d is event %s, want %s: not a gapless prefix", n, r.EventID, ids[min(n, len(ids)-1)])
		}
		n++
	}
	return n
}

// TestSSECaps checks the held-connections quota (QUOTA_HELD_CONNECTIONS, here
// by its old name MAX_SSE_PER_KEY: per key without tenants; 403
// quota-exceeded) and MAX_SSE_CONNECTIONS (503 with Retry-After), across the
// v1 and seed results routes, and that a closed stream frees its slot.
func TestSSECaps(t *testing.T) {
	t.Parallel()
	otherKey := "caps-other-" + randomSuffix()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "caps"))
	env["API_KEYS"] = apiKey + "," + otherKey
	env["MAX_SSE_PER_KEY"] = "2"
	env["MAX_SSE_CONNECTIONS"] = "3"
	s := startServer(t, "caps", env)
	st := createStream(t, s.Base+"/v1/streams", "caps")
	v1 := s.Base + st.Links.Results
	seed := s.Base + "/stream/" + st.ID + "/results"
	other := withKey(otherKey)

	refused := func(what, url string, hdr http.Header, want int) {
		t.Helper()
		c, rep := trySSE(t, url, hdr)
		if c != nil {
			t.Fatalf("%s: opened a result stream, want %d", what, want)
		}
		p := checkProblem(t, what, rep, want)
		if want == http.StatusForbidden {
			if !strings.HasSuffix(p.Type, "/quota-exceeded") {
				t.Errorf("%s: type %q, want …/quota-exceeded", what, p.Type)
			}
			return
		}
		if ra, err := strconv.Atoi(rep.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", what, rep.Header.Get("Retry-After"))
		}
	}
	// awaitSlot polls until a stream opens at url; refusals on the way
	// must be the cap's.
	awaitSlot := func(what, url string, hdr http.Header) *sseConn {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, rep := trySSE(t, url, hdr)
			if c != nil {
				return c
			}
			if rep.Status != http.StatusServiceUnavailable && rep.Status != http.StatusForbidden {
				t.Fatalf("%s: %s, want 200 (or 503/403 until the slot is free)", what, rep)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %s 15s after a stream was closed", what, rep)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	a1 := openSSE(t, v1)
	a2 := openSSE(t, seed)
	refused("a third stream of one key", v1, nil, http.StatusForbidden)
	refused("a third stream of one key on the seed route", seed, nil, http.StatusForbidden)
	b1 := openSSEWith(t, v1, other) // another key still gets its stream
	refused("a fourth stream on the instance", seed, other, http.StatusServiceUnavailable)

	a1.close()
	b2 := awaitSlot("the other key's second stream after one was closed", seed, other)
	refused("a fourth stream again, from the key with one", v1, nil, http.StatusServiceUnavailable)
	b1.close()
	a3 := awaitSlot("the first key's second stream after one was closed", v1, nil)
	refused("the other key at the instance cap", v1, other, http.StatusServiceUnavailable)

	// The streams that got a slot work.
	expectNoMoreResults(t, s.Base+st.Links.Events, a2, b2, a3)
}

// TestSecurityHeadersAndCORS checks the security headers on answers of every
// kind and the CORS allowlist.
func TestSecurityHeadersAndCORS(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "sechdr"))
	env["CORS_ORIGINS"] = "https://app.test"
	s := startServer(t, "sechdr", env)
	st := createStream(t, s.Base+"/v1/streams", "headers")

	answers := []struct {
		what   string
		method string
		path   string
		hdr    http.Header
		status int
	}{
		{"200 health", "GET", "/healthz", noKey, 200},
		{"200 stream", "GET", "/v1/streams/" + st.ID, nil, 200},
		{"401", "GET", "/v1/streams", noKey, 401},
		{"404 route", "GET", "/v1/nothing", nil, 404},
		{"404 stream", "GET", "/v1/streams/nope-" + randomSuffix(), nil, 404},
		{"405", "PATCH", "/v1/streams/" + st.ID, nil, 405},
		{"200 results as a JSON page", "GET", st.Links.Results, nil, 200},
		{"400 results after a bad cursor", "GET", st.Links.Results + "?after=x", nil, 400},
	}
	for _, a := range answers {
		rep := do(t, a.method, s.Base+a.path, "", nil, a.hdr)
		if rep.Status != a.status {
			t.Errorf("%s: %s %s answered %s, want %d", a.what, a.method, a.path, rep, a.status)
		}
		checkSecurityHeaders(t, a.what, rep.Header)
	}
	c, rep := trySSE(t, s.Base+st.Links.Results, nil)
	if c == nil {
		t.Fatalf("results: %s", rep)
	}
	checkSecurityHeaders(t, "200 event stream", rep.Header)
	c.close()

	preflight := func(origin string) reply {
		return do(t, "OPTIONS", s.Base+st.Links.Events, "", nil, http.Header{
			"X-Api-Key":                      {""}, // a preflight carries no credentials
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"x-api-key, content-type"},
		})
	}
	rep = preflight("https://app.test")
	if rep.Status != http.StatusNoContent {
		t.Errorf("preflight from the allowed origin: %s, want 204", rep)
	}
	if got := rep.Header.Get("Access-Control-Allow-Origin"); got != "https://app.test" {
		t.Errorf("preflight from the allowed origin: Access-Control-Allow-Origin %q, want https://app.test", got)
	}
	if m := rep.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
		t.Errorf("preflight: Access-Control-Allow-Methods %q lacks POST", m)
	}
	if h := strings.ToLower(rep.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(h, "x-api-key") || !strings.Contains(h, "content-type") {
		t.Errorf("preflight: Access-Control-Allow-Headers %q lacks X-API-Key or Content-Type", h)
	}
	if rep.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight: Access-Control-Allow-Credentials is set")
	}
	checkSecurityHeaders(t, "preflight", rep.Header)

	for _, origin := range []string{"https://evil.test", "https://app.test.evil.test", "http://app.test", "null"} {
		rep := preflight(origin)
		if got := rep.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want none (answer %d)", origin, got, rep.Status)
		}
		if rep.Status >= 200 && rep.Status < 300 && rep.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight from %s: allowed: %d with Access-Control-Allow-Methods %q", origin, rep.Status, rep.Header.Get("Access-Control-Allow-Methods"))
		}
	}

	// The actual cross-origin request.
	rep = do(t, "GET", s.Base+"/v1/streams/"+st.ID, "", nil, http.Header{"Origin": {"https://app.test"}})
	if rep.Status != 200 || rep.Header.Get("Access-Control-Allow-Origin") != "https://app.test" {
		t.Errorf("GET from the allowed origin: %d with Access-Control-Allow-Origin %q", rep.Status, rep.Header.Get("Access-Control-Allow-Origin"))
	}
	if e := strings.ToLower(rep.Header.Get("Access-Control-Expose-Headers")); !strings.Contains(e, "x-request-id") {
		t.Errorf("GET from the allowed origin: Access-Control-Expose-Headers %q lacks X-Request-ID", e)
	}
	rep = do(t, "GET", s.Base+"/v1/streams/"+st.ID, "", nil, http.Header{"Origin": {"https://evil.test"}})
	if got := rep.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("GET from https://evil.test: Access-Control-Allow-Origin %q, want none", got)
	}
}

// checkSecurityHeaders checks the headers every answer carries.
func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	exact := map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
	for k, v := range exact {
		if got := h.Get(k); !strings.EqualFold(got, v) {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
	if got := h.Get("Referrer-Policy"); got == "" {
		t.Errorf("%s: no Referrer-Policy", what)
	}
	if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") && !strings.Contains(got, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q, want a restrictive policy", what, got)
	}
}

// TestPprofOnlyOnItsOwnListener: the profiler is not on the API's listener,
// with or without PPROF_ADDR, and PPROF_ADDR serves it on that address only.
func TestPprofOnlyOnItsOwnListener(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	plain := startServer(t, "nopprof", kafkaEnv(brokers, newPrefix(t, "nopprof")))
	env := kafkaEnv(brokers, newPrefix(t, "pprof"))
	pprofAddr := freeAddr(t)
	env["PPROF_ADDR"] = pprofAddr
	profiled := startServer(t, "pprof", env)

	for _, base := range []string{plain.Base, profiled.Base} {
		for _, hdr := range []http.Header{nil, noKey} {
			if rep := do(t, http.MethodGet, base+"/debug/pprof/", "", nil, hdr); rep.Status != http.StatusNotFound {
				t.Errorf("GET %s/debug/pprof/: %s, want 404 on the API's listener", base, rep)
			}
		}
	}
	rep := do(t, http.MethodGet, "http://"+pprofAddr+"/debug/pprof/cmdline", "", nil, noKey)
	if rep.Status != http.StatusOK || !strings.Contains(string(rep.Body), "rtstream") {
		t.Errorf("GET the profiler on PPROF_ADDR %s: %s, want 200 with the command line", pprofAddr, rep)
	}
}

// TestLongPollsCountAgainstCaps: a long poll (?wait=) is held like an SSE
// stream and takes a slot of MAX_SSE_PER_KEY (issue 19 held 1,000 on one
// key); a poll that does not wait takes none.
func TestLongPollsCountAgainstCaps(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "pollcaps"))
	env["MAX_SSE_PER_KEY"] = "2"
	s := startServer(t, "pollcaps", env)
	st := createStream(t, s.Base+"/v1/streams", "pollcaps")
	results := s.Base + st.Links.Results

	// Each poll is held once the in-flight gauge counts it; the next one
	// starts only then, so that no probe of ours takes a slot meanwhile.
	const inFlight = "rtstream_http_requests_in_flight"
	base := scrape(t, s.Base)[inFlight]
	held := make(chan reply, 2)
	for i := range 2 {
		go func() {
			rep, err := tryCall(t.Context(), http.MethodGet, results+"?wait=30s", "", nil)
			if err != nil {
				rep = reply{Body: []byte(err.Error())}
			}
			held <- rep
		}()
		deadline := time.Now().Add(15 * time.Second)
		for scrape(t, s.Base)[inFlight] < base+float64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("long poll %d not in flight after 15s", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if rep := call(t, http.MethodGet, results+"?wait=1s", "", nil); rep.Status != http.StatusForbidden {
		t.Fatalf("a third long poll beside two held ones: %s, want 403 quota-exceeded", rep)
	}
	if c, rep := trySSE(t, results, nil); c != nil {
		c.close()
		t.Fatalf("an SSE stream beside two held long polls opened, want 403")
	} else {
		checkProblem(t, "an SSE stream beside two held long polls", rep, http.StatusForbidden)
	}
	if rep := call(t, http.MethodGet, results, "", nil); rep.Status != http.StatusOK {
		t.Errorf("a poll that does not wait, beside two held ones: %s, want 200", rep)
	}
	// A result ends both polls, which free their slots.
	send(t, s.Base+st.Links.Events, "application/json", []byte(`{"n":1}`), 1)
	for range 2 {
		if rep := <-held; rep.Status != http.StatusOK || !strings.Contains(string(rep.Body), `"n":1`) {
			t.Errorf("a held long poll: %s, want 200 with the result", rep)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, rep := trySSE(t, results, nil)
		if c != nil {
			c.close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an SSE stream after the polls ended: %s", rep)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
