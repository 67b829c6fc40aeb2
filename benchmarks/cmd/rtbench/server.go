package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// server is the rtstream process under test. It runs as a child process,
// built from this tree, so the benchmark measures exactly what would ship and
// its CPU time can be told apart from the client's.
type server struct {
	Name   string // "server", or the variant's label
	URL    string
	APIKey string // sent as X-API-Key; empty when the server runs without auth
	// OtherKey is another tenant's key, when the server has an API_KEYS_FILE.
	OtherKey string
	Prefix   string

	cmd     *exec.Cmd
	tmp     string
	keep    bool
	logPath string
	logFile *os.File
	exited  chan error
}

// serverVariant says how one server process is configured. Every server of a
// run gets the same environment except for these settings.
type serverVariant struct {
	// name labels the progress lines and ends the topic prefix; empty for
	// the server of the single/batch/e2e/latency phases.
	name string
	// auth sets API_KEYS and sends the key; without it AUTH_DISABLED=true.
	auth bool
	// logLevel is LOG_LEVEL: "warn" has no access log, "info" writes one
	// line per request (as JSON, to the server's log file).
	logLevel string
	// metricsOff sets METRICS_DISABLED=true: no HTTP, Kafka or pipeline
	// instrumentation. Without it METRICS_DISABLED=false is set anyway, so
	// a value in rtbench's own environment cannot switch the ON side off.
	metricsOff bool
	// keysFile, with auth, puts the key in an API_KEYS_FILE of this many
	// keys in several tenants instead of API_KEYS.
	keysFile int
	// bin, when set, is the binary to run instead of the one built.
	bin string
	// env is set last, over everything above: the resume phase raises
	// MAX_SSE_PER_KEY this way, since all its 1,000 connections use one key.
	env []string
}

// buildServer returns the rtstream binary to run: -server-bin, or
// ./cmd/rtstream built once into a temp dir that cleanup removes (unless
// -keep).
func buildServer(ctx context.Context, o options) (bin string, cleanup func(), err error) {
	if o.ServerBin != "" {
		return o.ServerBin, func() {}, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "rtbench-bin-*")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() {
		if o.Keep {
			progress("[server] kept %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	bin = filepath.Join(dir, "rtstream")
	progress("[server] building ./cmd/rtstream")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rtstream")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/rtstream: %w\n%s", err, out)
	}
	return bin, cleanup, nil
}

// startServer starts bin against the brokers on a free loopback port with
// fresh topics, configured as v says, and waits until GET /readyz answers 200.
func startServer(ctx context.Context, o options, bin string, v serverVariant) (*server, error) {
	tmp, err := os.MkdirTemp("", "rtbench-*")
	if err != nil {
		return nil, err
	}
	s := &server{Name: "server", tmp: tmp, keep: o.Keep, logPath: filepath.Join(tmp, "server.log"), exited: make(chan error, 1)}
	fail := func(err error) (*server, error) {
		if !o.Keep {
			os.RemoveAll(tmp)
		}
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	s.URL = "http://" + addr
	s.Prefix = fmt.Sprintf("bench-%d", time.Now().Unix())
	if v.name != "" {
		s.Name = "server " + v.name
		s.Prefix += "-" + v.name
	}
	work := filepath.Join(tmp, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fail(err)
	}
	if s.logFile, err = os.Create(s.logPath); err != nil {
		return fail(err)
	}

	env, err := s.environ(o, v, tmp, addr)
	if err != nil {
		return fail(err)
	}
	if v.bin != "" {
		bin = v.bin
	}
	s.cmd = exec.Command(bin)
	s.cmd.Dir = work
	s.cmd.Stdout = s.logFile
	s.cmd.Stderr = s.logFile
	s.cmd.Env = env // for a name set twice, the last value wins
	if err := s.cmd.Start(); err != nil {
		s.logFile.Close()
		return fail(fmt.Errorf("start %s: %w", bin, err))
	}
	go func() { s.exited <- s.cmd.Wait() }()
	progress("[%s] pid %d on %s, topic prefix %s, log %s", s.Name, s.cmd.Process.Pid, s.URL, s.Prefix, s.logPath)

	if err := s.waitReady(ctx, 90*time.Second); err != nil {
		s.Stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// environ is the server's environment: rtbench's own but for OTEL_*, then
// the benchmark's settings, then v's; it sets the keys the load sends.
// OpenTelemetry's variables are left out because an endpoint inherited from
// the shell would trace every server (and the OFF side of the tracing
// phases); those phases set what ON needs in v.env.
func (s *server) environ(o options, v serverVariant, tmp, addr string) ([]string, error) {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OTEL_") })
	env = append(env,
		"KAFKA_BROKERS="+strings.Join(o.Brokers, ","),
		"HTTP_ADDR="+addr,
		"TOPIC_PREFIX="+s.Prefix,
		"LOG_LEVEL="+v.logLevel,
		"LOG_FORMAT=json",
		"DATA_DIR="+filepath.Join(tmp, "data"),
		// The contract's per-client rate limit would otherwise make most
		// requests of a one-client load test a 429. It cannot be switched
		// off: at this limit the limiter runs on every request but never
		// refuses one.
		"RATE_LIMIT_RPS=1000000",
		"RATE_LIMIT_BURST=1000000",
		"SHUTDOWN_TIMEOUT=15s",
		fmt.Sprintf("METRICS_DISABLED=%t", v.metricsOff),
	)
	switch {
	case v.auth && v.keysFile > 0:
		path, key, other, err := writeKeysFile(tmp, v.keysFile)
		if err != nil {
			return nil, err
		}
		s.APIKey, s.OtherKey = key, other
		env = append(env, "API_KEYS=", "API_KEYS_FILE="+path, "AUTH_DISABLED=false")
	case v.auth:
		s.APIKey = randomHex(16)
		env = append(env, "API_KEYS="+s.APIKey, "AUTH_DISABLED=false")
	default:
		env = append(env, "AUTH_DISABLED=true")
	}
	env = append(env, v.env...)
	return env, nil
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// time is up.
func (s *server) waitReady(ctx context.Context, max time.Duration) error {
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				progress("[%s] ready after %.1fs", s.Name, time.Since(start).Seconds())
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("server exited before it was ready (%v); log:\n%s", err, s.logTail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > max {
			return fmt.Errorf("server not ready after %s (last: %s); log:\n%s", max, last, s.logTail(30))
		}
	}
}

// Pid is the server's process id, for CPU accounting.
func (s *server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM, waits up to grace for a clean exit, then kills. It
// reports how the shutdown went and what the server logged at warn or above.
func (s *server) Stop(grace time.Duration) ServerStop {
	st := ServerStop{}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		st.ExitError = errString(err)
	case <-time.After(grace):
		st.Killed = true
		_ = s.cmd.Process.Kill()
		st.ExitError = errString(<-s.exited)
		progress("[%s] did not stop within %s of SIGTERM; killed", s.Name, grace)
	}
	st.Seconds = time.Since(start).Seconds()
	s.logFile.Close()
	st.Warnings, st.FirstWarnings, st.AccessLogLines = s.scanLog(5)
	if s.keep {
		progress("[%s] kept %s", s.Name, s.tmp)
	} else {
		os.RemoveAll(s.tmp)
	}
	return st
}

// scanLog counts the log lines at warn or error and returns the first
// distinct messages; it also counts the access log's lines (INFO "request"),
// which only a server at LOG_LEVEL=info writes.
func (s *server) scanLog(keep int) (n int, first []string, requests int) {
	f, err := os.Open(s.logPath)
	if err != nil {
		return 0, nil, 0
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   any    `json:"err"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Level == "INFO" && line.Msg == "request" {
			requests++
		}
		if line.Level != "WARN" && line.Level != "ERROR" {
			continue
		}
		n++
		text := line.Level + " " + line.Msg
		if line.Err != nil {
			text += fmt.Sprintf(" (err: %v)", line.Err)
		}
		if len(first) < keep && !seen[text] {
			seen[text] = true
			first = append(first, text)
		}
	}
	return n, first, requests
}

func (s *server) logTail(lines int) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// moduleRoot is the directory of the main module's go.mod, so the build works
// whichever directory rtbench was started from inside the tree.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the rtstream module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
