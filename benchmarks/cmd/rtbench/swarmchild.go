package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The swarm's SSE connections are held by child processes (rtbench
// re-executed with swarmChildEnv set), a few thousand each: one process may
// open only as many files as its hard limit allows (20,000 on the development
// machine, which a container cannot raise), and 20,000 readers in one Go
// process would also queue behind each other in one scheduler. Each child
// reads its connections with one goroutine and two 4 KiB buffers apiece
// (net/http's client would add two goroutines and larger buffers per
// connection), counts results and keeps a histogram of POST→receive
// latencies, so what it reports stays small however many results arrive.
const swarmChildEnv = "RTBENCH_SWARM_CHILD" // the child's swarmChildConfig as JSON

// swarmChildConfig is what one child connects.
type swarmChildConfig struct {
	Addr    string   `json:"addr"` // host:port of the server
	Key     string   `json:"key"`
	Streams []string `json:"streams"`
	// First and Count are the child's connections by global index: the
	// connection g subscribes to Streams[g % len(Streams)].
	First int `json:"first"`
	Count int `json:"count"`
	// Source is the local address to dial from (127.0.0.x), so that no
	// child runs short of ephemeral ports towards the one server port.
	Source string `json:"source"`
	// Dials is how many connections are opened at once.
	Dials int `json:"dials"`
}

// swarmChildMain is the child. It writes, on stdout:
//
//	connected <ok> <failed> [first error]   once every connection was tried
//	recv <results> <last result unix ns>    every 500 ms
//	hist <index>:<count> ...                after its stdin closed
//	done <results> <disconnects> <last result unix ns> [first error]
func swarmChildMain(cfgJSON string) int {
	var cfg swarmChildConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "swarm child:", err)
		return 2
	}
	limit, lerr := raiseOwnFDLimit(uint64(cfg.Count + 256))
	if lerr != nil {
		fmt.Fprintf(os.Stderr, "swarm child: open-file limit %d for %d connections: %v\n", limit, cfg.Count, lerr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedWriter{w: bufio.NewWriter(os.Stdout)}
	st := &swarmChildState{hist: newLatencyHist()}

	var (
		wg       sync.WaitGroup
		ok, fail atomic.Int64
		errOnce  sync.Once
		firstErr string
	)
	sem := make(chan struct{}, max(cfg.Dials, 1))
	tried := make(chan struct{}, cfg.Count)
	for j := range cfg.Count {
		g := cfg.First + j
		stream := cfg.Streams[g%len(cfg.Streams)]
		wg.Go(func() {
			sem <- struct{}{}
			conn, body, err := swarmConnect(ctx, cfg, stream)
			<-sem
			if err != nil {
				fail.Add(1)
				errOnce.Do(func() { firstErr = err.Error() })
				tried <- struct{}{}
				return
			}
			ok.Add(1)
			tried <- struct{}{}
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			err = swarmRead(body, st.result)
			conn.Close()
			if ctx.Err() == nil {
				st.disconnects.Add(1)
				st.errOnce.Do(func() { st.firstErr = fmt.Sprintf("%s: %v", stream, err) })
			}
		})
	}
	for range cfg.Count {
		<-tried
	}
	out.line(strings.TrimSpace(fmt.Sprintf("connected %d %d %s", ok.Load(), fail.Load(), oneLine(firstErr))))

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
loop:
	for {
		select {
		case <-stdinClosed:
			break loop
		case <-t.C:
			out.line(fmt.Sprintf("recv %d %d", st.received.Load(), st.last.Load()))
		}
	}
	cancel()
	wg.Wait()
	out.line("hist " + st.hist.encode())
	out.line(strings.TrimSpace(fmt.Sprintf("done %d %d %d %s", st.received.Load(), st.disconnects.Load(), st.last.Load(), oneLine(st.firstErr))))
	return 0
}

// swarmChildState is what a child's readers share: counters and the
// histogram, all updated atomically on the hot path.
type swarmChildState struct {
	received    atomic.Int64
	last        atomic.Int64 // unix ns of the latest result
	disconnects atomic.Int64
	hist        *latencyHist
	errOnce     sync.Once
	firstErr    string
}

func (st *swarmChildState) result(sentNs int64) {
	now := time.Now().UnixNano()
	st.received.Add(1)
	if now > st.last.Load() {
		st.last.Store(now) // a race between readers can only lose a few ns
	}
	if sentNs > 0 {
		st.hist.add(time.Duration(now - sentNs))
	}
}

// swarmConnect dials the server from cfg.Source, sends the SSE request and
// returns once the answer's headers and the server's ": connected" comment
// came: the server writes it only once the subscriber is registered.
func swarmConnect(ctx context.Context, cfg swarmChildConfig, stream string) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	if cfg.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.Source)}
	}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	req := "GET /v1/streams/" + stream + "/results HTTP/1.1\r\nHost: " + cfg.Addr +
		"\r\nAccept: text/event-stream\r\nX-API-Key: " + cfg.Key + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	body := bufio.NewReaderSize(resp.Body, 4<<10)
	for {
		line, err := body.ReadSlice('\n')
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("before \": connected\": %w", err)
		}
		if bytes.HasPrefix(line, []byte(": connected")) {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, body, nil
}

// swarmRead reads SSE frames until the body ends and calls result once per
// "result" event (or event without a name) with the event's "t" (its send
// time in unix ns, 0 when it has none). Lines longer than the buffer are
// skipped in pieces: only the data line matters and rtbench's are short.
func swarmRead(body *bufio.Reader, result func(sentNs int64)) error {
	var (
		isResult = true
		hasData  bool
		sent     int64
	)
	for {
		line, err := body.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = body.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if hasData && isResult {
				result(sent)
			}
			isResult, hasData, sent = true, false, 0
		case bytes.HasPrefix(line, []byte("event:")):
			isResult = string(bytes.TrimSpace(line[6:])) == "result"
		case bytes.HasPrefix(line, []byte("data:")):
			hasData = true
			v := line[5:]
			if i := bytes.Index(v, []byte(`"data":`)); i >= 0 {
				v = v[i:]
			}
			if t, ok := intField(v, `"t":`); ok {
				sent = t
			}
		}
	}
}

// raiseOwnFDLimit lifts this process's open-file limit to need, the hard
// limit too when it is lower (which takes CAP_SYS_RESOURCE). It returns the
// soft limit it ends with, and why it could not reach need.
func raiseOwnFDLimit(need uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur >= need {
		return l.Cur, nil
	}
	want := l
	want.Cur = need
	want.Max = max(l.Max, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return need, nil
	} else if l.Max > l.Cur {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		return l.Cur, fmt.Errorf("raising the hard limit %d to %d: %w", l.Max, need, err)
	} else {
		return l.Cur, fmt.Errorf("raising the hard limit %d to %d: %w", l.Max, need, err)
	}
}

// lockedWriter writes whole lines from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.WriteString(s + "\n")
	_ = l.w.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// latencyHist is a log-linear histogram of durations in microseconds: exact
// below 64 µs, then 64 buckets per power of two, so a bucket is at most 1/64
// (1.6%) wide relative to its value. It holds up to 2^40 µs (12 days); larger
// values land in the last bucket. Children send it to the parent as text,
// which is why latencies of millions of deliveries cost a few kilobytes.
type latencyHist struct {
	counts [histBuckets]atomic.Uint64
}

const (
	histSub     = 64
	histBuckets = histSub + (40-6)*histSub
)

func newLatencyHist() *latencyHist { return &latencyHist{} }

// histIndex is the bucket of us microseconds.
func histIndex(us int64) int {
	if us < histSub {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // 2^e <= us < 2^(e+1), e >= 6
	idx := histSub + (e-6)*histSub + int(uint64(us)>>(e-6)-histSub)
	return min(idx, histBuckets-1)
}

// histLow is the smallest value of bucket i, in microseconds.
func histLow(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := (i-histSub)/histSub + 6
	return int64(histSub+(i-histSub)%histSub) << (e - 6)
}

// histMid is the middle of bucket i, the value percentiles report.
func histMid(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	return float64(histLow(i)+histLow(i+1)) / 2
}

func (h *latencyHist) add(d time.Duration) { h.counts[histIndex(d.Microseconds())].Add(1) }

// encode writes the non-empty buckets as index:count pairs.
func (h *latencyHist) encode() string {
	var b strings.Builder
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(i) + ":" + strconv.FormatUint(n, 10))
		}
	}
	return b.String()
}

// decode adds the pairs of encode to h.
func (h *latencyHist) decode(s string) error {
	for _, f := range strings.Fields(s) {
		is, ns, ok := strings.Cut(f, ":")
		i, err1 := strconv.Atoi(is)
		n, err2 := strconv.ParseUint(ns, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= histBuckets {
			return fmt.Errorf("bad histogram pair %q", f)
		}
		h.counts[i].Add(n)
	}
	return nil
}

// summary gives the count, mean (from bucket middles), nearest-rank
// p50/p90/p99 and the max bucket's middle, in milliseconds.
func (h *latencyHist) summary() LatencySummary {
	var total uint64
	var sum float64
	last := -1
	for i := range h.counts {
		n := h.counts[i].Load()
		total += n
		sum += float64(n) * histMid(i)
		if n > 0 {
			last = i
		}
	}
	s := LatencySummary{Count: int(total)}
	if total == 0 {
		return s
	}
	rank := func(p float64) float64 {
		want := uint64(p/100*float64(total) + 0.999999999)
		want = max(want, 1)
		var cum uint64
		for i := range h.counts {
			if cum += h.counts[i].Load(); cum >= want {
				return histMid(i) / 1000
			}
		}
		return histMid(last) / 1000
	}
	s.Mean = sum / float64(total) / 1000
	s.P50, s.P90, s.P99 = rank(50), rank(90), rank(99)
	s.Max = histMid(last) / 1000
	return s
}
