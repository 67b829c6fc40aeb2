package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The resume phase's live subscriber runs in a child process of its own
// (rtbench re-executed with liveHelperEnv set). In rtbench's own process it
// would be one goroutine among the 1,000 resumers' readers, and Go's
// scheduler could delay it by as much as the server does: the figure would
// then be the benchmark's own queueing. A separate process is scheduled by
// the kernel beside them, and it stamps each result when it reads it.
const (
	liveHelperEnv = "RTBENCH_LIVE_HELPER" // the results URL to read
	liveKeyEnv    = "RTBENCH_LIVE_KEY"    // the API key, if any
)

// liveHelperMain is the child: it reads the SSE URL, says "connected" on
// stdout once the server's ": connected" came, and when its stdin closes
// writes one line "seq sent_unix_ns latency_ns" per result and exits.
func liveHelperMain(url string) int {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	req.Header.Set("Accept", "text/event-stream")
	if k := os.Getenv(liveKeyEnv); k != "" {
		req.Header.Set("X-API-Key", k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	s := &sseSub{connected: make(chan struct{})}
	said := make(chan struct{})
	go func() {
		defer close(said)
		select {
		case <-s.connected:
			fmt.Println("connected")
		case <-ctx.Done():
		}
	}()
	var n atomic.Int64
	err = s.parse(resp.Body, &n)
	<-said
	if ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "live helper: the stream ended:", err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := range s.lats {
		fmt.Fprintf(w, "%d %d %d\n", s.seqs[i], s.sent[i], int64(s.lats[i]))
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

// liveProc is the parent's handle on the helper.
type liveProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startChild starts exe (rtbench itself, in a helper role env selects) with
// pipes to its standard input and output; its errors go to ours.
func startChild(exe string, env ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

// startLive starts the helper on stream and returns once it is subscribed.
func (lt *loadTester) startLive(stream string) (*liveProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd, stdin, stdout, err := startChild(exe, liveHelperEnv+"="+lt.srv.URL+"/v1/streams/"+stream+"/results", liveKeyEnv+"="+lt.srv.APIKey)
	if err != nil {
		return nil, err
	}
	p := &liveProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line := make(chan string, 1)
	go func() {
		l, _ := p.out.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) == "connected" {
			return p, nil
		}
	case <-time.After(15 * time.Second):
	}
	_ = stdin.Close()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, errors.New("live subscriber process did not connect within 15s")
}

// stop closes the helper's stdin and reads what it received.
func (p *liveProc) stop() (seqs []int64, samples []latencySample, err error) {
	_ = p.stdin.Close()
	for {
		l, rerr := p.out.ReadString('\n')
		if f := strings.Fields(l); len(f) == 3 {
			q, _ := strconv.ParseInt(f[0], 10, 64)
			sent, _ := strconv.ParseInt(f[1], 10, 64)
			lat, _ := strconv.ParseInt(f[2], 10, 64)
			seqs = append(seqs, q)
			samples = append(samples, latencySample{sent: sent, lat: time.Duration(lat)})
		}
		if rerr != nil {
			break
		}
	}
	if werr := p.cmd.Wait(); werr != nil {
		err = fmt.Errorf("live subscriber process: %w", werr)
	}
	return seqs, samples, err
}
