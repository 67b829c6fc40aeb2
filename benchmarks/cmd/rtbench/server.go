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
	"strings"
	"syscall"
	"time"
)

// server is the rtstream process under test. It runs as a child process,
// built from this tree, so the benchmark measures exactly what would ship and
// its CPU time can be told apart from the client's.
type server struct {
	URL    string
	APIKey string
	Prefix string

	cmd     *exec.Cmd
	tmp     string
	keep    bool
	logPath string
	logFile *os.File
	exited  chan error
}

// startServer builds ./cmd/rtstream (unless -server-bin names a binary),
// starts it against the brokers on a free loopback port with fresh topics,
// and waits until GET /readyz answers 200.
func startServer(ctx context.Context, o options) (*server, error) {
	tmp, err := os.MkdirTemp("", "rtbench-*")
	if err != nil {
		return nil, err
	}
	s := &server{tmp: tmp, keep: o.Keep, logPath: filepath.Join(tmp, "server.log"), exited: make(chan error, 1)}
	fail := func(err error) (*server, error) {
		if !o.Keep {
			os.RemoveAll(tmp)
		}
		return nil, err
	}

	bin := o.ServerBin
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return fail(err)
		}
		bin = filepath.Join(tmp, "rtstream")
		progress("[server] building ./cmd/rtstream")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rtstream")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("go build ./cmd/rtstream: %w\n%s", err, out))
		}
	}

	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	s.URL = "http://" + addr
	s.Prefix = fmt.Sprintf("bench-%d", time.Now().Unix())
	s.APIKey = randomHex(16)
	work := filepath.Join(tmp, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fail(err)
	}
	if s.logFile, err = os.Create(s.logPath); err != nil {
		return fail(err)
	}

	s.cmd = exec.Command(bin)
	s.cmd.Dir = work
	s.cmd.Stdout = s.logFile
	s.cmd.Stderr = s.logFile
	s.cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(o.Brokers, ","),
		"HTTP_ADDR="+addr,
		"TOPIC_PREFIX="+s.Prefix,
		"LOG_LEVEL=warn",
		"DATA_DIR="+filepath.Join(tmp, "data"),
		// The contract's API key and per-client rate limit would otherwise
		// make every request of a one-client load test a 401 or a 429.
		"API_KEYS="+s.APIKey,
		"RATE_LIMIT_RPS=1000000",
		"RATE_LIMIT_BURST=1000000",
		"SHUTDOWN_TIMEOUT=15s",
	)
	if err := s.cmd.Start(); err != nil {
		s.logFile.Close()
		return fail(fmt.Errorf("start %s: %w", bin, err))
	}
	go func() { s.exited <- s.cmd.Wait() }()
	progress("[server] pid %d on %s, topic prefix %s, log %s", s.cmd.Process.Pid, s.URL, s.Prefix, s.logPath)

	if err := s.waitReady(ctx, 90*time.Second); err != nil {
		s.Stop(5 * time.Second)
		return nil, err
	}
	return s, nil
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
				progress("[server] ready after %.1fs", time.Since(start).Seconds())
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
		progress("[server] did not stop within %s of SIGTERM; killed", grace)
	}
	st.Seconds = time.Since(start).Seconds()
	s.logFile.Close()
	st.Warnings, st.FirstWarnings = s.scanLog(5)
	if s.keep {
		progress("[server] kept %s", s.tmp)
	} else {
		os.RemoveAll(s.tmp)
	}
	return st
}

// scanLog counts the log lines at warn or error and returns the first
// distinct messages. LOG_LEVEL=warn means every line is one, bar start-up
// noise that is not JSON.
func (s *server) scanLog(keep int) (int, []string) {
	f, err := os.Open(s.logPath)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n := 0
	var first []string
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
	return n, first
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
