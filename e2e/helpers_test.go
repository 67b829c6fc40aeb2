// Package e2e drives the built rtstream binary over HTTP, the way a client
// does: the server is a black box configured through its environment. The
// only packages of this module it imports are the ones clients use (client,
// the CLI's binary) — never the server's internals.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rtstreamBin is the server binary built once by TestMain.
var rtstreamBin string

// apiKey is configured on every server and sent with every request, so the
// tests keep working once authentication is enforced.
const apiKey = "e2e-test-key"

const (
	readyTimeout   = 60 * time.Second
	requestTimeout = 30 * time.Second
	resultTimeout  = 60 * time.Second
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rtstream-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rtstreamBin = filepath.Join(dir, "rtstream")
	build := exec.Command("go", "build", "-o", rtstreamBin, "./cmd/rtstream")
	build.Dir = ".." // the module root; go test runs in the package directory
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the server: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// newPrefix is a topic prefix no other test or run uses. The topics the
// servers create under it are deleted when the test ends (after its servers
// stopped, since their cleanups were registered later), so the shared broker
// does not pile up thousands of partitions across runs.
func newPrefix(t *testing.T, label string) string {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	prefix := "e2e-" + label + "-" + hex.EncodeToString(b[:])
	if brokers := os.Getenv("RTSTREAM_TEST_KAFKA_BROKERS"); brokers != "" {
		t.Cleanup(func() { deleteTopicsWithPrefix(t, brokers, prefix+".") })
	}
	return prefix
}

// randomSuffix is a short random string for stream ids.
func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// freeAddr finds a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ---------------------------------------------------------------------------
// Server processes

// server is one rtstream process, restartable with the same environment.
type server struct {
	t       *testing.T
	name    string
	bin     string // the binary it runs
	vars    map[string]string
	dir     string // working directory (no .env in it)
	logPath string
	// Base is http://host:port. It does not change on restart.
	Base string

	starts int
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

// startServer starts rtstream with the test defaults overridden by vars and
// waits until it is ready. Without KAFKA_BROKERS in vars the server uses its
// embedded broker. The process is stopped and, if the test failed, its log
// printed when the test ends.
func startServer(t *testing.T, name string, vars map[string]string) *server {
	t.Helper()
	return startServerBin(t, name, rtstreamBin, vars)
}

// startServerBin is startServer with another build of the server.
func startServerBin(t *testing.T, name, bin string, vars map[string]string) *server {
	t.Helper()
	s := &server{
		t:       t,
		name:    name,
		bin:     bin,
		dir:     t.TempDir(),
		logPath: filepath.Join(t.TempDir(), name+".log"),
		vars: map[string]string{
			"LOG_FORMAT":       "text",
			"LOG_LEVEL":        "info",
			"SSE_HEARTBEAT":    "1s",
			"TOPIC_PARTITIONS": "4",
			"DATA_DIR":         t.TempDir(),
			"API_KEYS":         apiKey,
			// The load these tests make comes from one address and one
			// key; the rate limits have tests of their own.
			"RATE_LIMIT_RPS":   "1000000",
			"RATE_LIMIT_BURST": "1000000",
		},
	}
	for k, v := range vars {
		s.vars[k] = v
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("server %s: %v", s.name, err)
		}
		if t.Failed() {
			t.Logf("---- server %s log (%s) ----\n%s", s.name, s.logPath, s.logTail(512<<10))
		}
	})
	_, fixedAddr := vars["HTTP_ADDR"]
	for attempt := 1; ; attempt++ {
		if !fixedAddr {
			s.vars["HTTP_ADDR"] = freeAddr(t)
		}
		s.Base = "http://" + s.vars["HTTP_ADDR"]
		err := s.launch()
		if err == nil {
			return s
		}
		// Another process may have taken the free port in between.
		if !fixedAddr && attempt < 3 && strings.Contains(s.lastStartLog(), "address already in use") {
			continue
		}
		t.Fatalf("server %s did not become ready: %v", s.name, err)
	}
}

// environ is the process environment: only what the tests choose, so that
// nothing of the caller's environment (KAFKA_BROKERS, say) leaks in.
func (s *server) environ() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range s.vars {
		env = append(env, k+"="+v)
	}
	return env
}

// launch starts the process and waits for GET /readyz to answer 200.
func (s *server) launch() error {
	s.starts++
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "==== start #%d of %s at %s, HTTP_ADDR=%s ====\n",
		s.starts, s.name, time.Now().Format(time.RFC3339Nano), s.vars["HTTP_ADDR"])
	cmd := exec.Command(s.bin)
	cmd.Dir = s.dir
	cmd.Env = s.environ()
	cmd.Stdout = logf
	cmd.Stderr = logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		s.err = cmd.Wait()
		close(exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rep, err := tryCall(ctx, http.MethodGet, s.Base+"/readyz", "", nil)
		cancel()
		if err == nil && rep.Status == http.StatusOK {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the process exited before it was ready: %v", s.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.kill()
			if err != nil {
				return fmt.Errorf("not ready after %s: %w", readyTimeout, err)
			}
			return fmt.Errorf("not ready after %s: /readyz answered %d %s", readyTimeout, rep.Status, rep.Body)
		}
	}
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// restart starts the process again with the same environment and address.
func (s *server) restart() {
	s.t.Helper()
	if s.running() {
		s.t.Fatalf("server %s: restart while running", s.name)
	}
	if err := s.launch(); err != nil {
		s.t.Fatalf("server %s did not become ready after a restart: %v", s.name, err)
	}
}

// kill crashes the process with SIGKILL and waits for it to be gone.
func (s *server) kill() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-s.exited
	return nil
}

// stop shuts the process down gracefully with SIGTERM. It returns an error
// when the process does not stop within 45 s (it is then killed) or exits
// with a failure status.
func (s *server) stop() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(45 * time.Second):
		_ = s.kill()
		return errors.New("did not stop within 45s of SIGTERM; killed")
	}
	if s.err != nil {
		return fmt.Errorf("exited after SIGTERM with %v", s.err)
	}
	return nil
}

// logTail is the end of the process log, at most max bytes.
func (s *server) logTail(max int64) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if int64(len(data)) > max {
		data = append([]byte("...(earlier lines cut)...\n"), data[int64(len(data))-max:]...)
	}
	return string(data)
}

// lastStartLog is what the latest start wrote.
func (s *server) lastStartLog() string {
	data, _ := os.ReadFile(s.logPath)
	if i := bytes.LastIndex(data, []byte("==== start #")); i >= 0 {
		data = data[i:]
	}
	return string(data)
}

// kafkaEnv is the environment of a server on a real Kafka.
func kafkaEnv(brokers, prefix string) map[string]string {
	return map[string]string{"KAFKA_BROKERS": brokers, "TOPIC_PREFIX": prefix}
}

// ---------------------------------------------------------------------------
// HTTP

var httpClient = &http.Client{Transport: func() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return tr
}()}

// reply is a whole HTTP answer.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// tryCall makes one request with the test API key and reads the whole answer.
func tryCall(ctx context.Context, method, url, contentType string, body []byte) (reply, error) {
	return request(ctx, method, url, contentType, body, nil)
}

// request is tryCall with extra headers; an empty value removes a header,
// such as the default X-API-Key.
func request(ctx context.Context, method, url, contentType string, body []byte, hdr http.Header) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-API-Key", apiKey)
	for k, vs := range hdr {
		req.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				req.Header.Add(k, v)
			}
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("reading the answer to %s %s: %w", method, url, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// call is tryCall that fails the test on a transport error.
func call(t *testing.T, method, url, contentType string, body []byte) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := tryCall(ctx, method, url, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return rep
}

// ---------------------------------------------------------------------------
// JSON and API shapes

// streamObj is a stream as the API shows it.
type streamObj struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Links     struct {
		Events  string `json:"events"`
		Results string `json:"results"`
	} `json:"links"`
}

// accepted is the answer to a send.
type accepted struct {
	Accepted int      `json:"accepted"`
	EventIDs []string `json:"event_ids"`
}

// result is the data of one SSE result frame.
type result struct {
	StreamID    string          `json:"stream_id"`
	EventID     string          `json:"event_id"`
	ReceivedAt  time.Time       `json:"received_at"`
	ProcessedAt time.Time       `json:"processed_at"`
	Data        json.RawMessage `json:"data"`
}

// problemBody is an RFC 9457 problem.
type problemBody struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

func decodeJSON(t *testing.T, what string, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: not the expected JSON (%v): %s", what, err, data)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// jsonEqual compares two JSON texts as values; numbers compare by their text.
func jsonEqual(a, b []byte) bool {
	va, errA := decodeNumbers(a)
	vb, errB := decodeNumbers(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// mediaType is the media type of a Content-Type header, without parameters.
func mediaType(header string) string {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return header
	}
	return mt
}

// checkProblem checks that rep is an application/problem+json answer with
// status want whose body carries the same status.
func checkProblem(t *testing.T, what string, rep reply, want int) problemBody {
	t.Helper()
	var p problemBody
	if rep.Status != want {
		t.Errorf("%s: status %d, want %d; body: %s", what, rep.Status, want, rep.Body)
	}
	if ct := rep.Header.Get("Content-Type"); mediaType(ct) != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	if err := json.Unmarshal(rep.Body, &p); err != nil {
		t.Errorf("%s: body is not a JSON problem (%v): %s", what, err, rep.Body)
		return p
	}
	if p.Status != rep.Status {
		t.Errorf("%s: problem status %d differs from the HTTP status %d", what, p.Status, rep.Status)
	}
	if p.Type == "" || p.Title == "" || p.Detail == "" || p.Instance == "" {
		t.Errorf("%s: problem lacks type, title, detail or instance: %s", what, rep.Body)
	}
	return p
}

// createStream POSTs a create request to url and checks the 201 answer.
func createStream(t *testing.T, url, name string) streamObj {
	t.Helper()
	rep := call(t, http.MethodPost, url, "application/json", mustJSON(t, map[string]string{"name": name}))
	if rep.Status != http.StatusCreated {
		t.Fatalf("POST %s: %s, want 201", url, rep)
	}
	var st streamObj
	decodeJSON(t, "created stream", rep.Body, &st)
	checkStream(t, st, "", name)
	if loc := rep.Header.Get("Location"); loc != "/v1/streams/"+st.ID {
		t.Errorf("POST %s: Location %q, want /v1/streams/%s", url, loc, st.ID)
	}
	return st
}

// checkStream checks a stream object's fields; an empty id is not compared.
func checkStream(t *testing.T, st streamObj, id, name string) {
	t.Helper()
	if st.ID == "" || (id != "" && st.ID != id) {
		t.Errorf("stream id %q, want %q", st.ID, id)
	}
	if st.Name != name {
		t.Errorf("stream %s: name %q, want %q", st.ID, st.Name, name)
	}
	if st.CreatedAt.IsZero() {
		t.Errorf("stream %s: no created_at", st.ID)
	}
	if st.Links.Events != "/v1/streams/"+st.ID+"/events" || st.Links.Results != "/v1/streams/"+st.ID+"/results" {
		t.Errorf("stream %s: links %+v", st.ID, st.Links)
	}
}

// send POSTs events to url and checks the 202 answer accepts n of them.
func send(t *testing.T, url, contentType string, body []byte, n int) []string {
	t.Helper()
	rep := call(t, http.MethodPost, url, contentType, body)
	if rep.Status != http.StatusAccepted {
		t.Fatalf("POST %s (%s): %s, want 202", url, contentType, rep)
	}
	var a accepted
	decodeJSON(t, "send answer", rep.Body, &a)
	if a.Accepted != n || len(a.EventIDs) != n {
		t.Fatalf("POST %s: accepted %d with %d event ids, want %d", url, a.Accepted, len(a.EventIDs), n)
	}
	for _, id := range a.EventIDs {
		if id == "" {
			t.Fatalf("POST %s: an empty event id in %s", url, rep.Body)
		}
	}
	return a.EventIDs
}

// ---------------------------------------------------------------------------
// Server-sent events

// frame is one thing read from an event stream: a comment line, or an event
// (the fields of the lines up to a blank line).
type frame struct {
	Comment string // the comment text, for a comment line
	ID      string
	HasID   bool
	Event   string
	Data    string
	Retry   string // the "retry:" field, in ms
}

// sseConn reads an event stream in a goroutine into a channel.
type sseConn struct {
	url    string
	frames chan frame
	done   chan struct{} // closed when the stream ended; err says why
	err    error
	cancel context.CancelFunc
}

// openSSE opens url with Accept: text/event-stream, checks the 200 answer and
// waits for the ": connected" comment, after which the feed is live. The
// connection is closed when the test ends.
func openSSE(t *testing.T, url string) *sseConn {
	t.Helper()
	return openSSEWith(t, url, nil)
}

// openSSEWith is openSSE with extra request headers; an empty value removes
// a header, such as the default X-API-Key.
func openSSEWith(t *testing.T, url string, hdr http.Header) *sseConn {
	t.Helper()
	c, rep := trySSE(t, url, hdr)
	if c == nil {
		t.Fatalf("GET %s: %s, want 200", url, rep)
	}
	return c
}

// trySSE asks for the event stream at url like openSSEWith. On a 200 it
// returns the live feed (after ": connected"); on any other status it
// returns nil and the whole answer. A transport error or a 200 that is not
// an event stream fails the test.
func trySSE(t *testing.T, url string, hdr http.Header) (*sseConn, reply) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-API-Key", apiKey)
	for k, vs := range hdr {
		req.Header.Del(k)
		for _, v := range vs {
			if v != "" {
				req.Header.Add(k, v)
			}
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	if ct := resp.Header.Get("Content-Type"); mediaType(ct) != "text/event-stream" {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: Content-Type %q, want text/event-stream", url, ct)
	}
	c := &sseConn{url: url, frames: make(chan frame, 1<<16), done: make(chan struct{}), cancel: cancel}
	go c.read(ctx, resp.Body)
	t.Cleanup(c.close)

	f, ok := c.next(10 * time.Second)
	if !ok {
		t.Fatalf("GET %s: no first frame: %v", url, c.reason())
	}
	if f.Comment != "connected" {
		t.Fatalf("GET %s: first frame %+v, want the comment \": connected\"", url, f)
	}
	return c, reply{Status: resp.StatusCode, Header: resp.Header}
}

func (c *sseConn) close() {
	c.cancel()
	<-c.done
}

func (c *sseConn) read(ctx context.Context, body io.ReadCloser) {
	defer close(c.done)
	defer body.Close()
	emit := func(f frame) bool {
		select {
		case c.frames <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	br := bufio.NewReader(body)
	var cur frame
	var data []string
	pending := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				err = errors.New("the server closed the stream")
			}
			c.err = err
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if pending {
				cur.Data = strings.Join(data, "\n")
				if !emit(cur) {
					c.err = ctx.Err()
					return
				}
			}
			cur, data, pending = frame{}, nil, false
		case strings.HasPrefix(line, ":"):
			if !emit(frame{Comment: strings.TrimPrefix(line[1:], " ")}) {
				c.err = ctx.Err()
				return
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			pending = true
			switch field {
			case "id":
				cur.ID, cur.HasID = value, true
			case "event":
				cur.Event = value
			case "data":
				data = append(data, value)
			case "retry":
				cur.Retry = value
			}
		}
	}
}

// next returns the next frame, or false when none came within timeout or
// the stream ended.
func (c *sseConn) next(timeout time.Duration) (frame, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case f := <-c.frames:
		return f, true
	case <-timer.C:
		return frame{}, false
	case <-c.done:
		// Frames read before the end are still in the channel.
		select {
		case f := <-c.frames:
			return f, true
		default:
			return frame{}, false
		}
	}
}

// reason says why next returned false.
func (c *sseConn) reason() string {
	select {
	case <-c.done:
		return fmt.Sprintf("the stream ended: %v", c.err)
	default:
		return "timed out"
	}
}

// delivery is one result frame: its cursor and its result.
type delivery struct {
	Cursor string
	result
}

// nextEvent returns the next event before deadline: not a comment, and not
// a block with only a "retry:" field, which EventSource does not dispatch
// either.
func (c *sseConn) nextEvent(deadline time.Time) (frame, bool) {
	for {
		f, ok := c.next(time.Until(deadline))
		if !ok {
			return frame{}, false
		}
		if f.Comment == "" && (f.Event != "" || f.Data != "") {
			return f, true
		}
	}
}

// nextResult returns the next result frame before deadline. Any other event
// fails the test.
func (c *sseConn) nextResult(t *testing.T, deadline time.Time) (delivery, bool) {
	t.Helper()
	f, ok := c.nextEvent(deadline)
	if !ok {
		return delivery{}, false
	}
	if f.Event != "result" {
		t.Fatalf("%s: got event %q (data %s), want a result", c.url, f.Event, f.Data)
	}
	if !f.HasID || f.ID == "" {
		t.Errorf("%s: a result frame without an id: %+v", c.url, f)
	}
	d := delivery{Cursor: f.ID}
	decodeJSON(t, "result frame data", []byte(f.Data), &d.result)
	return d, true
}

// awaitResults reads exactly n results, failing the test if they do not all
// arrive within timeout.
func (c *sseConn) awaitResults(t *testing.T, n int, timeout time.Duration) []delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	got := make([]delivery, 0, n)
	for len(got) < n {
		d, ok := c.nextResult(t, deadline)
		if !ok {
			t.Fatalf("%s: %d of %d results arrived, then: %s", c.url, len(got), n, c.reason())
		}
		got = append(got, d)
	}
	return got
}

// awaitEnd reads until the "end" event, failing on a result or a timeout,
// and then expects the server to close the stream.
func (c *sseConn) awaitEnd(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	f, ok := c.nextEvent(deadline)
	if !ok {
		t.Fatalf("%s: no end event: %s", c.url, c.reason())
	}
	if f.Event != "end" {
		t.Fatalf("%s: got event %q (data %s), want end", c.url, f.Event, f.Data)
	}
	select {
	case <-c.done:
	case <-time.After(time.Until(deadline)):
		t.Errorf("%s: the stream stayed open after the end event", c.url)
	}
}

// checkResults checks that got are the results of the events ids, with
// data want, in that order, each once, with distinct cursors.
func checkResults(t *testing.T, streamID string, got []delivery, ids []string, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("%d results, want %d", len(got), len(ids))
	}
	cursors := map[string]int{}
	bad := 0
	for i, d := range got {
		if bad > 10 {
			t.Errorf("... more mismatches not shown")
			break
		}
		if d.EventID != ids[i] {
			t.Errorf("result %d: event_id %s, want %s (results out of order or not the ones sent)", i, d.EventID, ids[i])
			bad++
		}
		if d.StreamID != streamID {
			t.Errorf("result %d: stream_id %q, want %q", i, d.StreamID, streamID)
			bad++
		}
		if want != nil && !jsonEqual(d.Data, want[i]) {
			t.Errorf("result %d: data %s, want %s", i, d.Data, want[i])
			bad++
		}
		if d.ReceivedAt.IsZero() || d.ProcessedAt.IsZero() || d.ProcessedAt.Before(d.ReceivedAt) {
			t.Errorf("result %d: received_at %s, processed_at %s", i, d.ReceivedAt, d.ProcessedAt)
			bad++
		}
		if j, dup := cursors[d.Cursor]; dup {
			t.Errorf("results %d and %d share the cursor %q", j, i, d.Cursor)
			bad++
		}
		cursors[d.Cursor] = i
	}
}

// expectNoMoreResults sends a sentinel event to eventsURL and checks that its
// result is the next one on every feed: anything before it is a result that
// should not have come (a duplicate, or from a request that was refused).
func expectNoMoreResults(t *testing.T, eventsURL string, feeds ...*sseConn) {
	t.Helper()
	sentinel := send(t, eventsURL, "application/json", []byte(`{"sentinel":true}`), 1)[0]
	for _, c := range feeds {
		deadline := time.Now().Add(resultTimeout)
		for {
			d, ok := c.nextResult(t, deadline)
			if !ok {
				t.Fatalf("%s: the sentinel's result did not arrive: %s", c.url, c.reason())
			}
			if d.EventID == sentinel {
				break
			}
			t.Errorf("%s: unexpected extra result before the sentinel: event_id %s data %s", c.url, d.EventID, d.Data)
		}
	}
}

// expectHeartbeat checks that an idle feed carries ": ping" comments (the
// servers here run with SSE_HEARTBEAT=1s): two of them within within, and
// nothing but comments in between.
func expectHeartbeat(t *testing.T, c *sseConn, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for pings := 0; pings < 2; {
		f, ok := c.next(time.Until(deadline))
		if !ok {
			t.Fatalf("%s: %d of 2 heartbeats within %s: %s", c.url, pings, within, c.reason())
		}
		switch {
		case f.Comment == "ping":
			pings++
		case f.Comment == "":
			t.Fatalf("%s: an idle feed sent a frame %+v", c.url, f)
		}
	}
}
