package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// sseGroup is one SSE subscriber per stream of a phase. Each subscriber reads
// its own connection in its own goroutine and keeps what it saw in its own
// slot, so the hot path takes no lock; the shared counter exists only for
// progress lines and the drain wait.
type sseGroup struct {
	subs     []*sseSub
	received atomic.Int64
	cancel   context.CancelFunc
	phase    string
	closing  atomic.Bool
	// earliest subscribes with ?from=earliest: every result of the stream,
	// then the live ones.
	earliest bool
}

// sseSub is one subscriber's connection and everything it received.
type sseSub struct {
	stream    string
	connected chan struct{}
	done      chan struct{}
	err       error // why the connection ended before Close; nil otherwise
	ended     bool  // the server sent "event: end"

	count       int64
	first, last time.Time
	seqs        []int64         // the "seq" of every result, in arrival order
	lats        []time.Duration // receive time − the event's "t"
	sent        []int64         // the event's "t", beside each of lats

	// keepIDs keeps every result's cursor (its frame's id) in ids: the
	// resume phase resumes after cursors a subscriber saw.
	keepIDs bool
	ids     []string
	// stopAt, when above 0, closes reached once count reaches it; reachedAt
	// is when. The resume phase times a replay by its last result.
	stopAt      int64
	reached     chan struct{}
	reachedAt   time.Time
	connectedAt time.Time
}

// subscribe opens one SSE subscription per stream and returns once every one
// has read the server's ": connected" comment, which the server writes only
// after it subscribed: a result made after that reaches the client.
func (lt *loadTester) subscribe(ctx context.Context, phase string, streams []string) (*sseGroup, error) {
	return lt.subscribeWith(ctx, phase, streams, false, false)
}

// subscribeWith is subscribe, keeping every result's cursor when keepIDs,
// and from the stream's first result when earliest.
func (lt *loadTester) subscribeWith(ctx context.Context, phase string, streams []string, keepIDs, earliest bool) (*sseGroup, error) {
	ctx, cancel := context.WithCancel(ctx)
	g := &sseGroup{cancel: cancel, phase: phase, earliest: earliest}
	for _, id := range streams {
		s := &sseSub{stream: id, connected: make(chan struct{}), done: make(chan struct{}), keepIDs: keepIDs}
		g.subs = append(g.subs, s)
		go g.read(ctx, lt, s)
	}
	timeout := time.After(15 * time.Second)
	for _, s := range g.subs {
		select {
		case <-s.connected:
		case <-s.done:
			g.Close()
			return nil, fmt.Errorf("SSE subscription to %s failed: %v", s.stream, s.err)
		case <-timeout:
			g.Close()
			return nil, fmt.Errorf("SSE subscription to %s: no \": connected\" within 15s", s.stream)
		case <-ctx.Done():
			g.Close()
			return nil, ctx.Err()
		}
	}
	return g, nil
}

func (g *sseGroup) read(ctx context.Context, lt *loadTester, s *sseSub) {
	defer close(s.done)
	err := g.readErr(ctx, lt, s)
	if g.closing.Load() {
		return
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	s.err = err
	select {
	case <-s.connected:
		progress("[%s] WARNING: SSE subscriber of %s disconnected after %d results: %v", g.phase, s.stream, s.count, err)
	default:
	}
}

func (g *sseGroup) readErr(ctx context.Context, lt *loadTester, s *sseSub) error {
	url := lt.srv.URL + "/v1/streams/" + s.stream + "/results"
	if g.earliest {
		url += "?from=earliest"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	lt.auth(req)
	resp, err := lt.sse.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return s.parse(resp.Body, &g.received)
}

// parse reads SSE frames until the body ends. Only "result" events count;
// comments, ids and other events are read and dropped. It extracts "seq" and
// "t" from the event data by search rather than by decoding the JSON, so the
// reader costs little CPU on a machine the server shares.
func (s *sseSub) parse(body io.Reader, received *atomic.Int64) error {
	br := bufio.NewReaderSize(body, 256<<10)
	var (
		event   []byte
		data    []byte
		id      []byte
		hasData bool
		long    []byte
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if hasData && (len(event) == 0 || string(event) == "result") {
				s.result(data, id, time.Now())
				received.Add(1)
			}
			if string(event) == "end" {
				s.ended = true
			}
			event, data, id, hasData = event[:0], data[:0], id[:0], false
		case line[0] == ':':
			if bytes.HasPrefix(line, []byte(": connected")) {
				select {
				case <-s.connected:
				default:
					s.connectedAt = time.Now()
					close(s.connected)
				}
			}
		case bytes.HasPrefix(line, []byte("id:")):
			id = append(id[:0], bytes.TrimPrefix(line[3:], []byte(" "))...)
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[5:], []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, v...), true
		case bytes.HasPrefix(line, []byte("event:")):
			event = append(event[:0], bytes.TrimPrefix(line[6:], []byte(" "))...)
		}
	}
}

// result records one result: when it came, its cursor if asked, and its seq
// and latency when the event data carries them.
func (s *sseSub) result(data, id []byte, at time.Time) {
	if s.count == 0 {
		s.first = at
	}
	s.last = at
	s.count++
	if s.keepIDs {
		s.ids = append(s.ids, string(id))
	}
	if s.stopAt > 0 && s.count == s.stopAt {
		s.reachedAt = at
		close(s.reached)
	}
	if i := bytes.Index(data, []byte(`"data":`)); i >= 0 {
		data = data[i:]
	}
	if seq, ok := intField(data, `"seq":`); ok {
		s.seqs = append(s.seqs, seq)
	}
	if t, ok := intField(data, `"t":`); ok && t > 0 {
		s.lats = append(s.lats, at.Sub(time.Unix(0, t)))
		s.sent = append(s.sent, t)
	}
}

// intField finds key in data and parses the integer after it.
func intField(data []byte, key string) (int64, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(key):]
	j := 0
	for j < len(rest) && (rest[j] == '-' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// waitFor waits until at least target results arrived, or no result arrived
// for idle, or max passed. It returns how long it waited.
func (g *sseGroup) waitFor(target int64, idle, max time.Duration) time.Duration {
	start := time.Now()
	last, lastChange, lastPrint := g.received.Load(), time.Now(), time.Now()
	for {
		n := g.received.Load()
		if n >= target {
			return time.Since(start)
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) > idle || time.Since(start) > max || g.allDone() {
			return time.Since(start)
		}
		if time.Since(lastPrint) >= 2*time.Second {
			progress("[%s] draining: %s of %s results received", g.phase, fmtInt(n), fmtInt(target))
			lastPrint = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *sseGroup) allDone() bool {
	for _, s := range g.subs {
		select {
		case <-s.done:
		default:
			return false
		}
	}
	return true
}

// Close ends every subscription and waits for the readers, after which the
// subscribers' slots may be read.
func (g *sseGroup) Close() {
	g.closing.Store(true)
	g.cancel()
	for _, s := range g.subs {
		<-s.done
	}
}

// sseSummary is what a closed group saw, put together.
type sseSummary struct {
	Received    int64
	Distinct    int64
	Duplicates  int64
	Disconnects int
	Ended       int
	First, Last time.Time
	Lats        []time.Duration
	Samples     []latencySample // Lats with their send times, unsorted
	FirstError  string
	seen        map[int64]struct{}
}

// summary merges the subscribers' slots; call it after Close. seq values are unique per event in a
// phase, so distinct seqs are distinct events whatever the stream.
func (g *sseGroup) summary() sseSummary {
	var sum sseSummary
	seen := make(map[int64]struct{})
	for _, s := range g.subs {
		sum.Received += s.count
		if s.err != nil {
			sum.Disconnects++
			if sum.FirstError == "" {
				sum.FirstError = s.stream + ": " + s.err.Error()
			}
		}
		if s.ended {
			sum.Ended++
		}
		if s.count > 0 {
			if sum.First.IsZero() || s.first.Before(sum.First) {
				sum.First = s.first
			}
			if s.last.After(sum.Last) {
				sum.Last = s.last
			}
		}
		for _, q := range s.seqs {
			seen[q] = struct{}{}
		}
		sum.Lats = append(sum.Lats, s.lats...)
		for i, l := range s.lats {
			sum.Samples = append(sum.Samples, latencySample{sent: s.sent[i], lat: l})
		}
	}
	sum.Distinct = int64(len(seen))
	sum.Duplicates = sum.Received - sum.Distinct
	sum.seen = seen
	return sum
}

// latencySample is one event's send time (Unix ns) and POST→SSE latency.
type latencySample struct {
	sent int64
	lat  time.Duration
}

// perSecond groups samples by the second of the phase they were sent in, so
// a warm-up or a stall shows apart from the steady state.
func perSecond(samples []latencySample, start time.Time) []SecondLatency {
	buckets := map[int][]time.Duration{}
	last := 0
	for _, s := range samples {
		sec := int(time.Unix(0, s.sent).Sub(start) / time.Second)
		buckets[sec] = append(buckets[sec], s.lat)
		last = max(last, sec)
	}
	var out []SecondLatency
	for sec := 0; sec <= last; sec++ {
		b := buckets[sec]
		if len(b) == 0 {
			continue
		}
		slices.Sort(b)
		l := latencySummary(b)
		out = append(out, SecondLatency{Second: sec, Count: l.Count, P50: l.P50, P99: l.P99, Max: l.Max})
	}
	return out
}

// latencyAfter summarises the samples sent at or after from.
func latencyAfter(samples []latencySample, from time.Time) LatencySummary {
	var l []time.Duration
	for _, s := range samples {
		if s.sent >= from.UnixNano() {
			l = append(l, s.lat)
		}
	}
	slices.Sort(l)
	return latencySummary(l)
}

// missing counts the events of the acknowledged seq ranges that no
// subscriber received.
func (s sseSummary) missing(acked []seqRange) int64 {
	var n int64
	for _, r := range acked {
		for q := r.from; q < r.from+int64(r.n); q++ {
			if _, ok := s.seen[q]; !ok {
				n++
			}
		}
	}
	return n
}
