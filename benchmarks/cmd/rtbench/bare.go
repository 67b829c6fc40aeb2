package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The ceiling for single requests is a bare net/http server on the same
// machine: it reads the body and answers 202, nothing else. It runs as a
// child process (rtbench re-executed with bareHTTPEnv set), like rtstream, so
// that it gets the same process-level share of the cores and its CPU can be
// told apart from the attacker's; in rtbench's own process it would share
// Go's scheduler with the attacker and look slower than it is.
const bareHTTPEnv = "RTBENCH_BARE_HTTP" // the address to listen on

// bareAccepted is what the bare handler answers: the shape of rtstream's 202
// without an event id, so both answers are about as long.
const bareAccepted = `{"accepted":1,"event_ids":["01KBBENCH0000000000000000"]}`

// bareHandler answers every request with 202 after reading its body: the
// least an HTTP server must do for a POST.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, bareAccepted)
	})
}

// bareHTTPMain is the child: it listens on addr, says "listening" on stdout
// and serves until its stdin closes.
func bareHTTPMain(addr string) int {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare http:", err)
		return 1
	}
	// The same header timeout as rtstream's default; no other setting of
	// rtstream's server affects a request that is answered at once.
	srv := &http.Server{Handler: bareHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Println("listening")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare http:", err)
		return 1
	}
	return 0
}

// bareProc is the parent's handle on the bare server.
type bareProc struct {
	URL   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startBare starts the bare server on a free loopback port and returns once
// it listens.
func startBare() (*bareProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	cmd, stdin, stdout, err := startChild(exe, bareHTTPEnv+"="+addr)
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) == "listening" {
			return &bareProc{URL: "http://" + addr, cmd: cmd, stdin: stdin}, nil
		}
	case <-time.After(15 * time.Second):
	}
	_ = stdin.Close()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, errors.New("bare net/http server did not start within 15s")
}

// Pid is the bare server's process id, for CPU accounting.
func (b *bareProc) Pid() int { return b.cmd.Process.Pid }

// stop closes the child's stdin, which shuts it down, and waits for it.
func (b *bareProc) stop() {
	_ = b.stdin.Close()
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}
