package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadTester drives the server's HTTP API. POSTs and SSE use separate
// clients so that long-lived result streams never hold a connection the
// senders wait for.
type loadTester struct {
	srv  *server
	o    options
	http *http.Client
	sse  *http.Client
	// seq numbers every event of the run; results carry it back, which is
	// how the SSE side counts distinct events and finds lost ones.
	seq atomic.Int64
	// creates are the latencies of every POST /v1/streams of the run.
	creates []time.Duration
}

func newLoadTester(srv *server, o options) *loadTester {
	conns := max(o.Concurrency, o.Streams)
	dial := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	post := &http.Transport{
		DialContext:         dial.DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	sse := &http.Transport{
		DialContext:         dial.DialContext,
		MaxIdleConnsPerHost: o.Streams,
		DisableCompression:  true,
	}
	return &loadTester{srv: srv, o: o, http: &http.Client{Transport: post}, sse: &http.Client{Transport: sse}}
}

// Close drops the idle connections.
func (lt *loadTester) Close() {
	lt.http.CloseIdleConnections()
	lt.sse.CloseIdleConnections()
}

// auth sets the server's API key on req, when the server has one.
func (lt *loadTester) auth(req *http.Request) {
	if lt.srv.APIKey != "" {
		req.Header.Set("X-API-Key", lt.srv.APIKey)
	}
}

// createStreams makes n passthrough streams for one phase, one after the
// other, and keeps how long each create took: creation is not on the hot
// path, but a slow one shows up here.
func (lt *loadTester) createStreams(ctx context.Context, phase string, n int) ([]string, error) {
	return lt.createStreamsWith(ctx, phase, n, "")
}

// createStreamsWith is createStreams with processor (a JSON object, as the
// API takes it) on every stream, or none when it is empty.
func (lt *loadTester) createStreamsWith(ctx context.Context, phase string, n int, processor string) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		body := fmt.Sprintf(`{"name":"rtbench-%s-%d"}`, phase, i)
		if processor != "" {
			body = fmt.Sprintf(`{"name":"rtbench-%s-%d","processor":%s}`, phase, i, processor)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, lt.srv.URL+"/v1/streams", bytes.NewReader([]byte(body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		lt.auth(req)
		start := time.Now()
		resp, err := lt.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("create stream: %w", err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		lt.creates = append(lt.creates, time.Since(start))
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("create stream: %s: %s", resp.Status, bytes.TrimSpace(data))
		}
		var st struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(data, &st); err != nil || st.ID == "" {
			return nil, fmt.Errorf("create stream: no id in %s", data)
		}
		ids[i] = st.ID
	}
	return ids, nil
}

// seqRange is a run of event seqs that one acknowledged request carried.
type seqRange struct {
	from int64
	n    int
}

// sendStats is what a set of senders did. Workers keep latencies and ranges
// locally and merge them once at the end.
type sendStats struct {
	okRequests atomic.Int64
	okEvents   atomic.Int64
	errs       errTally

	mu        sync.Mutex
	latencies []time.Duration
	acked     []seqRange
	firstSend time.Time
	elapsed   time.Duration
	// perStream, when set, counts the acknowledged events of each of the
	// senders' streams.
	perStream []atomic.Int64
}

func (st *sendStats) merge(lat []time.Duration, acked []seqRange) {
	st.mu.Lock()
	st.latencies = append(st.latencies, lat...)
	st.acked = append(st.acked, acked...)
	st.mu.Unlock()
}

// post sends one request of n events and checks the 202 answer.
func (lt *loadTester) post(ctx context.Context, stream string, body []byte, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lt.srv.URL+"/v1/streams/"+stream+"/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	lt.auth(req)
	start := time.Now()
	resp, err := lt.http.Do(req)
	if err != nil {
		return time.Since(start), &sendError{kind: "transport", detail: err.Error()}
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusAccepted {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(data, &p)
		if p.Detail == "" {
			p.Detail = string(bytes.TrimSpace(data))
		}
		return d, &sendError{kind: strconv.Itoa(resp.StatusCode), detail: p.Detail}
	}
	if rerr != nil {
		return d, &sendError{kind: "transport", detail: "reading the answer: " + rerr.Error()}
	}
	var a struct {
		Accepted int `json:"accepted"`
	}
	if err := json.Unmarshal(data, &a); err != nil || a.Accepted != n {
		return d, &sendError{kind: "bad 202", detail: fmt.Sprintf("want accepted=%d, got %.200s", n, data)}
	}
	return d, nil
}

// appendBody writes n events as one JSON value (n == 1) or an array. Each
// event is about 100 bytes: its seq, its send time in Unix nanoseconds, and
// padding.
func appendBody(buf []byte, seq int64, n int, t time.Time) []byte {
	buf = buf[:0]
	if n > 1 {
		buf = append(buf, '[')
	}
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"seq":`...)
		buf = strconv.AppendInt(buf, seq+int64(i), 10)
		buf = append(buf, `,"t":`...)
		buf = strconv.AppendInt(buf, t.UnixNano(), 10)
		buf = append(buf, `,"pad":"0123456789abcdefghijklmnopqrstuvwxyz0123456789"}`...)
	}
	if n > 1 {
		buf = append(buf, ']')
	}
	return buf
}

// closedLoop runs workers that each send back-to-back requests of n events
// to streams[w % len(streams)] until d has passed. A request under way at
// the deadline is finished and counted; elapsed runs until the last one.
func (lt *loadTester) closedLoop(ctx context.Context, phase string, workers, n int, streams []string, d time.Duration) *sendStats {
	st := &sendStats{}
	stop := everySecond(phase, func(_ time.Duration, last int64) (int64, string) {
		ev := st.okEvents.Load()
		return ev, fmt.Sprintf("%s requests, %s events/s, %d errors", fmtInt(st.okRequests.Load()), fmtInt(ev-last), st.errs.total())
	})
	start := time.Now()
	st.firstSend = start
	deadline := start.Add(d)
	lt.closed(ctx, st, workers, n, streams, func() bool { return time.Now().Before(deadline) && ctx.Err() == nil })
	st.elapsed = time.Since(start)
	stop()
	return st
}

// closed runs workers senders of n events per request, back to back,
// worker w to streams[w % len(streams)], each while more says so, and
// returns when all are done.
func (lt *loadTester) closed(ctx context.Context, st *sendStats, workers, n int, streams []string, more func() bool) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			lt.sender(ctx, st, n, streams, func() (int, bool) { return w % len(streams), more() })
		})
	}
	wg.Wait()
}

// sender is one worker: it POSTs n events to streams[i] for each i next
// gives until next says stop, each event stamped with its send time, and
// counts into st; it keeps the answered requests' latencies and seqs and
// merges them into st at the end.
func (lt *loadTester) sender(ctx context.Context, st *sendStats, n int, streams []string, next func() (int, bool)) {
	var (
		buf   []byte
		lat   []time.Duration
		acked []seqRange
	)
	for i, ok := next(); ok; i, ok = next() {
		seq := lt.seq.Add(int64(n)) - int64(n)
		buf = appendBody(buf, seq, n, time.Now())
		took, err := lt.post(ctx, streams[i], buf, n)
		if err != nil {
			st.errs.add(err)
			continue
		}
		st.okRequests.Add(1)
		st.okEvents.Add(int64(n))
		if st.perStream != nil {
			st.perStream[i].Add(int64(n))
		}
		lat = append(lat, took)
		acked = append(acked, seqRange{seq, n})
	}
	st.merge(lat, acked)
}

// timedPhase creates the phase's -streams streams and runs its closed loop
// on them, workers sending n events per request for -duration (about says
// what it runs); the latencies come back sorted.
func (lt *loadTester) timedPhase(ctx context.Context, phase string, workers, n int, about string) (*sendStats, error) {
	streams, err := lt.createStreams(ctx, phase, lt.o.Streams)
	if err != nil {
		return nil, err
	}
	progress("[%s] %s, for %s", phase, about, lt.o.Duration)
	st := lt.closedLoop(ctx, phase, workers, n, streams, lt.o.Duration)
	slices.Sort(st.latencies)
	return st, nil
}

// singleEvents is phase (a): -concurrency workers sending one event per
// request. It measures the per-request cost of the server: HTTP, the
// registry lookup and one Kafka round trip per request.
func (lt *loadTester) singleEvents(ctx context.Context) (*SingleResult, error) {
	st, err := lt.timedPhase(ctx, "single", lt.o.Concurrency, 1,
		fmt.Sprintf("%d workers, one event per POST, over %d streams", lt.o.Concurrency, lt.o.Streams))
	if err != nil {
		return nil, err
	}
	res := &SingleResult{
		Workers:     lt.o.Concurrency,
		Requests:    st.okRequests.Load(),
		Seconds:     st.elapsed.Seconds(),
		RequestsSec: float64(st.okRequests.Load()) / st.elapsed.Seconds(),
		Latency:     latencySummary(st.latencies),
		Errors:      st.errs.report(),
	}
	progress("[single] %s requests/s, p50 %s, p99 %s, %d errors", fmtInt(int64(res.RequestsSec)),
		fmtMs(res.Latency.P50), fmtMs(res.Latency.P99), res.Errors.Total)
	return res, nil
}

// batchIngest is phase (b): one worker per stream sending -batch events per
// request, back to back. Its events/s is compared with the raw producer.
func (lt *loadTester) batchIngest(ctx context.Context) (*BatchResult, error) {
	st, err := lt.timedPhase(ctx, "batch", lt.o.Streams, lt.o.Batch,
		fmt.Sprintf("%d workers, %d events per POST, one stream each", lt.o.Streams, lt.o.Batch))
	if err != nil {
		return nil, err
	}
	res := &BatchResult{
		Workers:      lt.o.Streams,
		BatchSize:    lt.o.Batch,
		Requests:     st.okRequests.Load(),
		Events:       st.okEvents.Load(),
		Seconds:      st.elapsed.Seconds(),
		EventsPerSec: float64(st.okEvents.Load()) / st.elapsed.Seconds(),
		Latency:      latencySummary(st.latencies),
		Errors:       st.errs.report(),
	}
	progress("[batch] %s events/s (%s requests/s), request p50 %s, p99 %s, %d errors",
		fmtInt(int64(res.EventsPerSec)), fmtInt(int64(float64(res.Requests)/res.Seconds)),
		fmtMs(res.Latency.P50), fmtMs(res.Latency.P99), res.Errors.Total)
	return res, nil
}

// endToEnd is phase (c): subscribers on every stream first, then batch
// ingest as in (b); it counts what comes back over SSE. The rate is results
// received over the time from the first send to the last result, so a
// pipeline that falls behind ingest is charged for the time it needs to
// catch up.
func (lt *loadTester) endToEnd(ctx context.Context) (*E2EResult, error) {
	streams, err := lt.createStreams(ctx, "e2e", lt.o.Streams)
	if err != nil {
		return nil, err
	}
	return lt.endToEndOn(ctx, "e2e", streams, lt.o.Duration)
}

// endToEndOn is the measurement of endToEnd on streams made by the caller,
// for d, labelled phase: the processors phase runs it on passthrough streams
// and on streams with a processor.
func (lt *loadTester) endToEndOn(ctx context.Context, phase string, streams []string, d time.Duration) (*E2EResult, error) {
	g, err := lt.subscribe(ctx, phase, streams)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	progress("[%s] %d SSE subscribers connected; %d workers, %d events per POST, for %s", phase, len(streams), len(streams), lt.o.Batch, d)
	stopRecv := everySecond(phase+" recv", func(_ time.Duration, last int64) (int64, string) {
		n := g.received.Load()
		return n, fmt.Sprintf("results received %s/s (%s so far)", fmtInt(n-last), fmtInt(n))
	})
	st := lt.closedLoop(ctx, phase+" send", len(streams), lt.o.Batch, streams, d)
	stopRecv()
	sent := st.okEvents.Load()
	progress("[%s] sent %s events in %.1fs; waiting for the results", phase, fmtInt(sent), st.elapsed.Seconds())
	drain := g.waitFor(sent, 15*time.Second, 3*time.Minute)
	g.Close()
	sum := g.summary()
	slices.Sort(sum.Lats)

	res := &E2EResult{
		Streams:        len(streams),
		BatchSize:      lt.o.Batch,
		Sent:           sent,
		SendSeconds:    st.elapsed.Seconds(),
		IngestPerSec:   float64(sent) / st.elapsed.Seconds(),
		Received:       sum.Received,
		Distinct:       sum.Distinct,
		Duplicates:     sum.Duplicates,
		Lost:           sum.missing(st.acked),
		DrainSeconds:   drain.Seconds(),
		Disconnects:    sum.Disconnects,
		FirstSSEError:  sum.FirstError,
		SendToSSE:      latencySummary(sum.Lats),
		PerSecond:      perSecond(sum.Samples, st.firstSend),
		RequestLatency: latencySummary(sortedCopy(st.latencies)),
		Errors:         st.errs.report(),
	}
	if !sum.Last.IsZero() {
		res.Seconds = sum.Last.Sub(st.firstSend).Seconds()
		res.EventsPerSec = float64(sum.Received) / res.Seconds
	}
	progress("[%s] %s events/s end to end (%s received of %s sent, %d lost, %d duplicates, %d disconnects)",
		phase, fmtInt(int64(res.EventsPerSec)), fmtInt(res.Received), fmtInt(res.Sent), res.Lost, res.Duplicates, res.Disconnects)
	return res, nil
}

// latency is phase (d): an open-loop sender at -rate events/s in batches of
// 10, round robin over the streams, each event stamped with its send time;
// the SSE readers compute receive time − send time. A batch is dispatched on
// schedule whether or not earlier ones were answered, so a slow server shows
// as latency rather than as a lower send rate; when even the sender pool is
// full the batch is skipped and counted.
func (lt *loadTester) latency(ctx context.Context) (*LatencyResult, error) {
	const perBatch = 10
	if err := lt.warmUp(ctx, perBatch); err != nil {
		return nil, err
	}
	streams, err := lt.createStreams(ctx, "latency", lt.o.Streams)
	if err != nil {
		return nil, err
	}
	g, err := lt.subscribe(ctx, "latency", streams)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	progress("[latency] %d SSE subscribers connected; %d events/s in batches of %d for %s", len(streams), lt.o.Rate, perBatch, lt.o.Duration)

	st := &sendStats{}
	stopProgress := everySecond("latency", func(_ time.Duration, last int64) (int64, string) {
		ev := st.okEvents.Load()
		return ev, fmt.Sprintf("%s events/s acknowledged, %s results received, %d errors", fmtInt(ev-last), fmtInt(g.received.Load()), st.errs.total())
	})
	before, scrapeErr := lt.scrapeFamilies(ctx)
	start := time.Now()
	skipped := lt.paced(ctx, st, start, pace{streams: streams, n: perBatch, workers: lt.o.Concurrency, queue: 1024,
		perSec: float64(lt.o.Rate) / perBatch, d: lt.o.Duration})
	sendSeconds := time.Since(start).Seconds()
	stopProgress()
	sent := st.okEvents.Load()
	drain := g.waitFor(sent, 10*time.Second, time.Minute)
	g.Close()
	sum := g.summary()
	slices.Sort(sum.Lats)
	slices.Sort(st.latencies)

	res := &LatencyResult{
		TargetRate:     lt.o.Rate,
		WarmupSeconds:  lt.o.LatencyWarmup.Seconds(),
		BatchSize:      perBatch,
		Streams:        len(streams),
		Sent:           sent,
		SentPerSec:     float64(sent) / sendSeconds,
		SkippedBatches: skipped,
		Received:       sum.Received,
		Lost:           sum.missing(st.acked),
		Duplicates:     sum.Duplicates,
		Disconnects:    sum.Disconnects,
		FirstSSEError:  sum.FirstError,
		DrainSeconds:   drain.Seconds(),
		SendToSSE:      latencySummary(sum.Lats),
		AfterWarmup:    latencyAfter(sum.Samples, start.Add(time.Second)),
		PerSecond:      perSecond(sum.Samples, start),
		RequestLatency: latencySummary(st.latencies),
		Errors:         st.errs.report(),
	}
	after, err := lt.scrapeFamilies(ctx)
	if err = errors.Join(scrapeErr, err); err != nil {
		progress("[latency] no latency budget per hop: %v", err)
	} else {
		res.Hops = hopBudget(before, after, lt.srv.Prefix+".events")
	}
	progress("[latency] POST→SSE p50 %s, p90 %s, p99 %s, max %s (%s received of %s sent, %d lost, %d skipped batches)",
		fmtMs(res.SendToSSE.P50), fmtMs(res.SendToSSE.P90), fmtMs(res.SendToSSE.P99), fmtMs(res.SendToSSE.Max),
		fmtInt(res.Received), fmtInt(res.Sent), res.Lost, skipped)
	return res, nil
}

// warmUp sends at the latency phase's rate for -latency-warmup to streams
// of its own, watched like the phase's, and waits until they got it all:
// the producer's connections, the router, the follower and the hub are
// then warm, and the phase measures a server in its steady state. Nothing
// of it is counted.
func (lt *loadTester) warmUp(ctx context.Context, perBatch int) error {
	if lt.o.LatencyWarmup <= 0 {
		return nil
	}
	streams, err := lt.createStreams(ctx, "latency warm-up", lt.o.Streams)
	if err != nil {
		return err
	}
	g, err := lt.subscribe(ctx, "latency warm-up", streams)
	if err != nil {
		return err
	}
	defer g.Close()
	st := &sendStats{}
	lt.paced(ctx, st, time.Now(), pace{streams: streams, n: perBatch, workers: lt.o.Concurrency, queue: 1024,
		perSec: float64(lt.o.Rate) / float64(perBatch), d: lt.o.LatencyWarmup})
	g.waitFor(st.okEvents.Load(), 5*time.Second, 30*time.Second)
	progress("[latency] warmed up: %s events in %s, uncounted", fmtInt(st.okEvents.Load()), lt.o.LatencyWarmup)
	return nil
}

// pace is an open-loop feed: perSec requests of n events a second for d
// (0: until ctx ends), round robin over streams, sent by a pool of workers
// that queue jobs wait for. A request due while the queue is full is
// skipped: a slow server shows as latency and skips, not as a lower rate
// (and a short queue keeps a slow server from turning the feed into one
// that runs past its time). detach lets requests under way when ctx ends
// finish instead of cancelling them.
type pace struct {
	streams           []string
	n, workers, queue int
	perSec            float64
	d                 time.Duration
	detach            bool
}

// paced runs p's feed from start into st, waits for its last answers, and
// returns how many requests it skipped.
func (lt *loadTester) paced(ctx context.Context, st *sendStats, start time.Time, p pace) (skipped int64) {
	jobs := make(chan int, p.queue)
	post := ctx
	if p.detach {
		post = context.WithoutCancel(ctx)
	}
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			lt.sender(post, st, p.n, p.streams, func() (int, bool) { i, ok := <-jobs; return i, ok })
		})
	}
	skipped = openLoop(ctx, start, p.perSec, p.d, func(n int64) bool {
		select {
		case jobs <- int(n % int64(len(p.streams))):
			return true
		default:
			return false
		}
	})
	close(jobs)
	wg.Wait()
	return skipped
}

// openLoop dispatches perSec jobs per second from start, on schedule, for d
// (0: until ctx ends), whether or not earlier ones were answered: a slow
// server shows as latency rather than as a lower rate. dispatch hands job n
// to a pool without blocking; a job it cannot hand over is skipped, and
// counted.
func openLoop(ctx context.Context, start time.Time, perSec float64, d time.Duration, dispatch func(n int64) bool) (skipped int64) {
	ticker := time.NewTicker(max(time.Millisecond, time.Duration(float64(time.Second)/perSec)))
	defer ticker.Stop()
	var dispatched int64
	for {
		select {
		case <-ctx.Done():
			return skipped
		case now := <-ticker.C:
			el := now.Sub(start)
			if d > 0 && el >= d {
				return skipped
			}
			for due := int64(el.Seconds()*perSec) + 1; dispatched < due; dispatched++ {
				if !dispatch(dispatched) {
					skipped++
				}
			}
		}
	}
}

// sendError is a request that did not end in the expected 202; kind is the
// status code, "transport" or "bad 202".
type sendError struct {
	kind, detail string
}

func (e *sendError) Error() string { return e.kind + ": " + e.detail }

// errTally counts failed requests by kind and keeps a few examples.
type errTally struct {
	mu       sync.Mutex
	n        int64
	byKind   map[string]int64
	examples []string
}

func (t *errTally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	if t.byKind == nil {
		t.byKind = map[string]int64{}
	}
	kind := "other"
	if se, ok := err.(*sendError); ok {
		kind = se.kind
	}
	t.byKind[kind]++
	if len(t.examples) < 3 {
		t.examples = append(t.examples, err.Error())
		progress("WARNING: request failed: %.300s", err.Error())
	}
}

func (t *errTally) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *errTally) report() ErrorReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ErrorReport{Total: t.n, ByKind: maps.Clone(t.byKind), Examples: slices.Clone(t.examples)}
}

func sortedCopy(d []time.Duration) []time.Duration {
	c := slices.Clone(d)
	slices.Sort(c)
	return c
}
