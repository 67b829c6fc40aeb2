package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testAPIKey is the only key the test servers accept.
const testAPIKey = "stack-test-key-7d41c2"

// server is one rtstream process on a loopback port, with its embedded
// development broker.
type server struct {
	base    string // http://127.0.0.1:port
	addr    string // 127.0.0.1:port
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts the built server with the embedded broker and waits
// until /readyz answers 200. It is stopped, and its log printed if the test
// failed, when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	bin := serverBinary(t)
	s := &server{addr: freeAddr(t), exited: make(chan struct{}), logPath: filepath.Join(t.TempDir(), "rtstream.log")}
	s.base = "http://" + s.addr
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy

	vars := map[string]string{
		"DATA_DIR":         t.TempDir(),
		"HTTP_ADDR":        s.addr,
		"API_KEYS":         testAPIKey,
		"LOG_FORMAT":       "text",
		"TOPIC_PARTITIONS": "2",
		"SSE_HEARTBEAT":    "1s",
		"RATE_LIMIT_RPS":   "1000000",
		"RATE_LIMIT_BURST": "1000000",
		// The rate-limit store metrics exist only when a Redis store is
		// configured. A port nobody listens on gives the failure path the
		// store is built for (fail open to memory), without sharing the
		// buckets of a real Redis with the rate-limit tests.
		"REDIS_URL": "redis://" + freeAddr(t) + "/0",
	}
	// Only what the test chooses: KAFKA_BROKERS from the caller's
	// environment must not leak in (unset means the embedded broker).
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	s.cmd = exec.Command(bin)
	s.cmd.Env = env
	s.cmd.Dir = t.TempDir() // no .env there
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			log, _ := os.ReadFile(s.logPath)
			if len(log) > 64<<10 {
				log = log[len(log)-64<<10:]
			}
			t.Logf("---- rtstream log (%s) ----\n%s", s.logPath, log)
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("the server exited during start-up: %v", s.cmd.ProcessState)
		default:
		}
		if code, _, err := s.get("/readyz"); err == nil && code == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not become ready within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 30 s).
func (s *server) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("the server did not stop within 30s of SIGTERM; killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func (s *server) get(path string) (int, []byte, error) {
	resp, err := httpClient.Get(s.base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func (s *server) call(t *testing.T, method, path string, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, bytes.TrimSpace(data), want)
	}
	return data
}

// exercise makes a little traffic of every kind the dashboard shows: it
// creates a stream, subscribes to its results over SSE, sends an event,
// waits for its result on the subscription and closes it. It returns the
// stream id.
func (s *server) exercise(t *testing.T) string {
	t.Helper()
	var st struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.call(t, http.MethodPost, "/v1/streams", `{"name":"stack"}`, http.StatusCreated), &st); err != nil || st.ID == "" {
		t.Fatalf("create stream: id %q, %v", st.ID, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/streams/"+st.ID+"/results", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req) // no client timeout: it streams
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("subscribe: %d %s", resp.StatusCode, body)
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data:") && strings.Contains(line, `"event_id"`) {
				got <- line
				return
			}
		}
		close(got)
	}()

	s.call(t, http.MethodPost, "/v1/streams/"+st.ID+"/events", `{"temp":31.5}`, http.StatusAccepted)
	select {
	case line, ok := <-got:
		if !ok {
			t.Fatal("the result stream ended before the result arrived")
		}
		if !strings.Contains(line, st.ID) {
			t.Fatalf("result %s: not of stream %s", line, st.ID)
		}
	case <-ctx.Done():
		t.Fatal("no result on the SSE subscription within 60s")
	}
	cancel()
	return st.ID
}

// sample is one scraped series.
type sample struct {
	name   string
	labels map[string]string
}

type scraped struct {
	families map[string]string // name → counter, gauge, histogram, ...
	samples  []sample
}

// scrapeMetrics reads GET /metrics and parses the text exposition format.
func (s *server) scrapeMetrics(t *testing.T) *scraped {
	t.Helper()
	code, body, err := s.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := &scraped{families: map[string]string{}}
	for name, f := range fams {
		out.families[name] = strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			sm := sample{name: name, labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				sm.labels[lp.GetName()] = lp.GetValue()
			}
			out.samples = append(out.samples, sm)
		}
	}
	if len(out.families) == 0 {
		t.Fatal("GET /metrics: no metric families")
	}
	return out
}
