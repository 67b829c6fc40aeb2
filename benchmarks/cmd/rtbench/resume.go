package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The resume phase answers the delivery issue's resume targets:
//
//  1. A resume of 10,000 results after a cursor completes in under a second,
//     from Kafka (the cursor's record is no longer in the stream's in-memory
//     history) and from the history. Each is timed from the request to the
//     10,000th result, and which path the server took is read from the
//     rtstream_resumes_total{source} deltas, so a figure is never credited
//     to the wrong path.
//  2. 1,000 subscribers resuming at once, from Kafka, do not more than
//     double the p99 POST→SSE latency of a live subscriber on another stream.
//
// It runs on a server of its own (MAX_SSE_PER_KEY raised: every connection
// uses the benchmark's one key) so that no other phase's streams, history or
// backlog are in its figures.
const (
	// resumeResults is how many results a timed resume replays (target 1).
	resumeResults = 10_000
	// targetResumeSeconds bounds the time of one such resume.
	targetResumeSeconds = 1.0
	// targetResumeBurstRatio bounds the live subscriber's p99 during the
	// burst of resumes over its p99 before it.
	targetResumeBurstRatio = 2.0
	// historyBatch is the events per request of the history stream: 10,000
	// results in ~100 records, far inside the 1,024 records of history.
	historyBatch = 100
	// burstSpread staggers the burst's cursors: resumer j starts up to
	// burstSpread-1 results further back than -resume-back, as clients that
	// dropped at different moments would.
	burstSpread = 200
	// resumeWait bounds one resume; it is a hang guard, not a target.
	resumeWait = 3 * time.Minute
)

// runResumePhase starts the resume phase's server and runs both parts on it.
func runResumePhase(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	raiseFDLimit(o.Resumers*2 + 1024)
	v := serverVariant{name: "resume", auth: true, logLevel: "warn",
		env: []string{fmt.Sprintf("MAX_SSE_PER_KEY=%d", o.Resumers+200)}}
	srv, err := startServer(ctx, o, bin, v)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	res := &ResumeResult{Back: resumeResults}
	rep.Resume = res
	defer func() { res.Stop = stopServer(srv, kc, o) }()
	lt := newLoadTester(srv, o)
	defer lt.Close()

	cpu := startCPU(srv.Pid(), findBroker(o.Brokers))
	err = lt.resumeSingle(ctx, res)
	if err == nil {
		err = lt.resumeBurst(ctx, res)
	}
	u := cpu.stop()
	rep.CPU = append(rep.CPU, PhaseCPU{Phase: "resume", Usage: u})
	progress("[resume] cpu: %s", u)
	return err
}

// raiseFDLimit lifts this process's open-file limit to at least need when
// the hard limit allows: the burst holds over 1,000 connections. (Go raises
// the soft limit to the hard one at start-up already; this is for the case
// it could not, and says so.)
func raiseFDLimit(need int) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= uint64(need) {
		return
	}
	want := min(max(uint64(need), l.Cur), l.Max)
	l.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || want < uint64(need) {
		progress("[resume] WARNING: open-file limit %d, below the %d the burst needs (%v)", want, need, err)
	}
}

// preparedStream is a stream whose every result a subscriber saw: its
// cursors and seqs in the order of the partition, which is the order a
// resume must replay them in.
type preparedStream struct {
	id   string
	ids  []string
	seqs []int64
}

// after returns the cursor back+1 results before the end and the seqs a
// resume after it must deliver, in order.
func (p preparedStream) after(back int) (cursor string, want []int64) {
	i := len(p.ids) - back - 1
	return p.ids[i], p.seqs[i+1:]
}

// sendCount sends total events to stream, perReq per request, from workers
// senders, into st.
func (lt *loadTester) sendCount(ctx context.Context, stream string, total, perReq, workers int, st *sendStats) {
	reqs := int64(total / perReq)
	var next atomic.Int64
	lt.closed(ctx, st, workers, perReq, []string{stream}, func() bool { return next.Add(1) <= reqs && ctx.Err() == nil })
}

// prepare sends total events to each stream (perReq per request, workers
// senders per stream) while a subscriber per stream keeps every result's
// cursor and seq, and returns once every acknowledged event came back. A
// stream whose subscriber missed or repeated a result is an error: its
// cursors could not tell what a resume must replay.
//
// unwatched sends before anyone subscribes, and the subscriber then reads
// from the earliest result: the server's history of the stream starts after
// all of them, so every cursor of it resumes from Kafka however few records
// follow it.
func (lt *loadTester) prepare(ctx context.Context, label string, streams []string, total, perReq, workers int, res *ResumeResult, unwatched bool) ([]preparedStream, error) {
	var g *sseGroup
	if !unwatched {
		var err error
		if g, err = lt.subscribeWith(ctx, label, streams, true, false); err != nil {
			return nil, err
		}
		defer g.Close()
	}
	received := func() int64 {
		if g == nil {
			return 0
		}
		return g.received.Load()
	}
	stats := make([]*sendStats, len(streams))
	for i := range stats {
		stats[i] = &sendStats{}
	}
	stop := everySecond(label, func(_ time.Duration, _ int64) (int64, string) {
		var n int64
		for _, st := range stats {
			n += st.okEvents.Load()
		}
		return n, fmt.Sprintf("%s events acknowledged, %s results received", fmtInt(n), fmtInt(received()))
	})
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() { lt.sendCount(ctx, s, total, perReq, workers, stats[i]) })
	}
	wg.Wait()
	stop()
	var sent int64
	for _, st := range stats {
		sent += st.okEvents.Load()
		res.Requests += st.okRequests.Load()
		res.Errors = res.Errors.merge(st.errs.report())
	}
	progress("[%s] %s events acknowledged in %.1fs (%d per request); waiting for the results", label, fmtInt(sent), time.Since(start).Seconds(), perReq)
	if unwatched {
		var err error
		if g, err = lt.subscribeWith(ctx, label, streams, true, true); err != nil {
			return nil, err
		}
		defer g.Close()
	}
	g.waitFor(sent, 15*time.Second, 3*time.Minute)
	g.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]preparedStream, len(streams))
	for i, s := range g.subs {
		want := stats[i].okEvents.Load()
		if s.count != want || len(s.ids) != int(want) || distinct(s.seqs) != int(want) {
			return nil, fmt.Errorf("%s: the subscriber of %s got %d results (%d distinct) of %d acknowledged (%v)", label, s.stream, s.count, distinct(s.seqs), want, s.err)
		}
		out[i] = preparedStream{id: s.stream, ids: s.ids, seqs: s.seqs}
	}
	return out, nil
}

func distinct(seqs []int64) int {
	seen := make(map[int64]struct{}, len(seqs))
	for _, q := range seqs {
		seen[q] = struct{}{}
	}
	return len(seen)
}

// resumeClient makes a client whose every request is a new connection, as a
// reconnecting subscriber's is.
func resumeClient() *http.Client {
	dial := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: dial.DialContext, DisableKeepAlives: true, DisableCompression: true}}
}

// resumeRead opens an SSE connection to stream resuming after cursor and
// reads until want results arrived, the connection ended, or resumeWait
// passed. It returns the subscriber, safe to read, and when the request
// started; received counts results for progress lines.
func (lt *loadTester) resumeRead(ctx context.Context, client *http.Client, stream, cursor string, want int64, received *atomic.Int64) (*sseSub, time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &sseSub{stream: stream, connected: make(chan struct{}), done: make(chan struct{}), stopAt: want, reached: make(chan struct{})}
	start := time.Now()
	var rerr error
	go func() {
		defer close(s.done)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, lt.srv.URL+"/v1/streams/"+stream+"/results", nil)
		if err != nil {
			rerr = err
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", cursor)
		lt.auth(req)
		resp, err := client.Do(req)
		if err != nil {
			rerr = &sendError{kind: "transport", detail: err.Error()}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			rerr = &sendError{kind: strconv.Itoa(resp.StatusCode), detail: string(bytes.TrimSpace(body))}
			return
		}
		rerr = s.parse(resp.Body, received)
	}()
	timer := time.NewTimer(resumeWait)
	defer timer.Stop()
	var err error
	select {
	case <-s.reached:
	case <-s.done:
		err = rerr
		if err == nil || err == io.EOF {
			err = &sendError{kind: "ended early", detail: fmt.Sprintf("the connection ended after %d of %d results", s.count, want)}
		}
	case <-timer.C:
		err = &sendError{kind: "timeout", detail: fmt.Sprintf("%d of %d results after %s", s.count, want, resumeWait)}
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	<-s.done
	return s, start, err
}

// resumeCounts reads rtstream_resumes_total by source from the server's
// /metrics.
func (lt *loadTester) resumeCounts(ctx context.Context) (map[string]int64, error) {
	body, err := lt.metricsText(ctx)
	if err != nil {
		return nil, err
	}
	return parseResumes(bytes.NewReader(body))
}

// parseResumes reads the rtstream_resumes_total samples of a Prometheus text
// exposition, by their source label.
func parseResumes(r io.Reader) (map[string]int64, error) {
	const name = "rtstream_resumes_total{"
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		labels, value, ok := strings.Cut(line[len(name):], "} ")
		if !ok {
			continue
		}
		_, src, ok := strings.Cut(labels, `source="`)
		if !ok {
			continue
		}
		src, _, _ = strings.Cut(src, `"`)
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("rtstream_resumes_total: %q: %w", line, err)
		}
		out[src] = int64(f)
	}
	return out, sc.Err()
}

// countDelta is after − before for every source of either.
func countDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			d[k] = -v
		}
	}
	return d
}

// resumePath names where the resumes counted in d started: "kafka" or
// "history" when all of them started there, "mixed" or "none" otherwise.
func resumePath(d map[string]int64) string {
	k, h := d["kafka"], d["history"]
	switch {
	case k > 0 && h == 0:
		return "kafka"
	case h > 0 && k == 0:
		return "history"
	case k > 0 || h > 0:
		return "mixed"
	}
	return "none"
}

// resumeSingle is target 1: it prepares a stream whose cursor 10,000 results
// back is out of the history (10,000+ single-event records, over the 1,024
// kept), and one whose cursor is in it (the same results in records of 100),
// then times -resume-reps resumes of each, one at a time. A third stream,
// with records of 100 that the history lacks, is a Kafka resume of as many
// results in 1% of the records: beside the first it tells a cost per record
// from a cost per result. It is reported, not judged.
func (lt *loadTester) resumeSingle(ctx context.Context, res *ResumeResult) error {
	extra := 50 // a few results before the cursor, so it is not the first
	streams, err := lt.createStreams(ctx, "resume", 3)
	if err != nil {
		return err
	}
	progress("[resume] stream %s: %s single-event POSTs (%d workers), so a cursor %s results back lies %s records back, beyond the 1,024 in memory",
		streams[0], fmtInt(int64(resumeResults+extra)), lt.o.Concurrency, fmtInt(resumeResults), fmtInt(resumeResults))
	kafka, err := lt.prepare(ctx, "resume setup kafka", streams[:1], resumeResults+extra, 1, lt.o.Concurrency, res, false)
	if err != nil {
		return err
	}
	progress("[resume] stream %s: %s events in POSTs of %d, so the same cursor lies ~%d records back, inside the history",
		streams[1], fmtInt(int64(resumeResults+extra*historyBatch)), historyBatch, resumeResults/historyBatch)
	hist, err := lt.prepare(ctx, "resume setup history", streams[1:2], resumeResults+extra*historyBatch, historyBatch, 4, res, false)
	if err != nil {
		return err
	}
	progress("[resume] stream %s: the same in POSTs of %d, sent before anyone watched it, so the history lacks them: Kafka, ~%d records",
		streams[2], historyBatch, resumeResults/historyBatch)
	batched, err := lt.prepare(ctx, "resume setup kafka batched", streams[2:], resumeResults+extra*historyBatch, historyBatch, 4, res, true)
	if err != nil {
		return err
	}
	client := resumeClient()
	defer client.CloseIdleConnections()
	for _, c := range []struct {
		want, label string
		p           preparedStream
		run         *ResumeRun
	}{{"kafka", "kafka", kafka[0], &res.Kafka}, {"history", "history", hist[0], &res.History},
		{"kafka", "kafka, records of 100", batched[0], &res.KafkaBatched}} {
		c.run.Stream, c.run.Expected = c.p.id, c.want
		for i := range lt.o.ResumeReps {
			t, err := lt.timeResume(ctx, client, c.p)
			if err != nil {
				return fmt.Errorf("resume from %s: %w", c.label, err)
			}
			c.run.Tries = append(c.run.Tries, t)
			progress("[resume] from %s, try %d: %s results in %s (%s results/s; connected after %s, first result after %s); path by /metrics: %s; replay %s",
				c.label, i+1, fmtInt(t.Received), fmtMs(t.Seconds*1000), fmtInt(int64(t.ResultsPerSec)), fmtMs(t.ConnectedMs), fmtMs(t.FirstResultMs),
				t.Path, map[bool]string{true: "exact", false: "WRONG"}[t.Exact])
		}
		c.run.summarize()
	}
	return nil
}

// timeResume resumes once after the cursor resumeResults results before the
// end of p and times it to the last of them.
func (lt *loadTester) timeResume(ctx context.Context, client *http.Client, p preparedStream) (ResumeTry, error) {
	cursor, want := p.after(resumeResults)
	before, err := lt.resumeCounts(ctx)
	if err != nil {
		return ResumeTry{}, err
	}
	var n atomic.Int64
	s, start, rerr := lt.resumeRead(ctx, client, p.id, cursor, int64(len(want)), &n)
	after, err := lt.resumeCounts(ctx)
	if err != nil {
		return ResumeTry{}, err
	}
	if rerr != nil {
		return ResumeTry{}, fmt.Errorf("after %s: %w", cursor, rerr)
	}
	t := ResumeTry{
		Cursor:   cursor,
		Received: s.count,
		Seconds:  s.reachedAt.Sub(start).Seconds(),
		Deltas:   countDelta(before, after),
		Exact:    slices.Equal(s.seqs, want),
	}
	t.Path = resumePath(t.Deltas)
	t.ResultsPerSec = float64(t.Received) / t.Seconds
	t.ConnectedMs = ms(s.connectedAt.Sub(start))
	t.FirstResultMs = ms(s.first.Sub(start))
	return t, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize sets the run's figure from its slowest try: the target is about
// every resume, not the typical one.
func (r *ResumeRun) summarize() {
	r.PathOK, r.Exact = len(r.Tries) > 0, len(r.Tries) > 0
	for _, t := range r.Tries {
		if t.Seconds >= r.Seconds {
			r.Seconds, r.ResultsPerSec = t.Seconds, t.ResultsPerSec
		}
		if r.Fastest == 0 || t.Seconds < r.Fastest {
			r.Fastest = t.Seconds
		}
		r.PathOK = r.PathOK && t.Path == r.Expected
		r.Exact = r.Exact && t.Exact
	}
}

// pacedSender sends events to one stream at a fixed rate, in batches of
// liveBatch as the latency phase does, from a pool of workers, on a schedule
// that does not wait for answers (open loop), until stopped. Batches keep
// the live feed far below what the router can process (single-event records
// top out at a few hundred to a thousand a second on a busy 2-core machine),
// so its latency measures delivery rather than a router backlog.
const liveBatch = 10

type pacedSender struct {
	st     sendStats
	cancel context.CancelFunc
	done   chan struct{}
	start  time.Time
}

func (lt *loadTester) startPaced(ctx context.Context, stream string, rate int) *pacedSender {
	ctx, cancel := context.WithCancel(ctx)
	p := &pacedSender{cancel: cancel, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(p.done)
		// A POST due while the pool is full is skipped: it shows as fewer
		// samples.
		lt.paced(ctx, &p.st, p.start, pace{streams: []string{stream}, n: liveBatch, workers: 16, queue: 1024,
			perSec: float64(rate) / liveBatch, detach: true})
	}()
	return p
}

// stop ends the schedule and waits for the requests under way.
func (p *pacedSender) stop() *sendStats {
	p.cancel()
	<-p.done
	return &p.st
}

// latencyBetween summarises the samples sent in [from, to).
func latencyBetween(samples []latencySample, from, to time.Time) LatencySummary {
	var l []time.Duration
	for _, s := range samples {
		if s.sent >= from.UnixNano() && s.sent < to.UnixNano() {
			l = append(l, s.lat)
		}
	}
	slices.Sort(l)
	return latencySummary(l)
}

// burstOne is what one resumer of the burst did.
type burstOne struct {
	took  time.Duration // from the burst's start to its last result
	n     int64
	exact bool
	err   error
}

// resumeBurst is target 2: a live subscriber (in a process of its own, see
// livehelper.go) gets -resume-rate events/s on its own stream; its POST→SSE p99 over -duration is taken, then -resumers
// SSE connections resume at once from Kafka on -resume-streams other
// streams (each -resume-back to -resume-back+199 results back, beyond the
// history), and its p99 while they replay is taken again.
func (lt *loadTester) resumeBurst(ctx context.Context, res *ResumeResult) error {
	o := lt.o
	b := &ResumeBurst{Resumers: o.Resumers, Streams: o.ResumeStreams, Back: o.ResumeBack, Rate: o.ResumeRate}
	res.Burst = b
	prepared, err := lt.prepareBurst(ctx, res)
	if err != nil {
		return err
	}
	live, err := lt.createStreams(ctx, "resume-live", 1)
	if err != nil {
		return err
	}
	lp, err := lt.startLive(live[0])
	if err != nil {
		return err
	}
	liveDone := false
	defer func() {
		if !liveDone {
			lp.stop()
		}
	}()
	sender := lt.startPaced(ctx, live[0], o.ResumeRate)
	stopProgress := everySecond("resume live", func(_ time.Duration, last int64) (int64, string) {
		n := sender.st.okEvents.Load()
		return n, fmt.Sprintf("live sender: %s events/s acknowledged (%s so far)", fmtInt(n-last), fmtInt(n))
	})
	progress("[resume] live subscriber (its own process) on %s, %d events/s in POSTs of %d; 1 s warm-up, then %s without resumes", live[0], o.ResumeRate, liveBatch, o.Duration)
	sleep(ctx, time.Second)
	quietFrom := time.Now()
	sleep(ctx, o.Duration)
	stopProgress()

	before, err := lt.resumeCounts(ctx)
	if err != nil {
		sender.stop()
		return err
	}
	outs, burstStart, burstEnd := lt.burst(ctx, b, prepared, sender)
	after, err := lt.resumeCounts(ctx)
	if err != nil {
		sender.stop()
		return err
	}
	sleep(ctx, time.Second)
	st := sender.stop()
	sent := st.okEvents.Load()
	// The helper cannot say how many it has; give the last events the
	// quiet p99 many times over to arrive.
	sleep(ctx, 3*time.Second)
	liveDone = true
	seqs, samples, err := lp.stop()
	if err != nil {
		return err
	}
	sum := (&sseGroup{subs: []*sseSub{{seqs: seqs, count: int64(len(seqs))}}}).summary()
	sum.Samples = samples

	b.Seconds = burstEnd.Sub(burstStart).Seconds()
	b.Deltas = countDelta(before, after)
	b.Path = resumePath(b.Deltas)
	b.tally(outs)
	if b.Seconds > 0 {
		b.ReplayedPerSec = float64(b.Replayed) / b.Seconds
	}
	b.Quiet = latencyBetween(sum.Samples, quietFrom, burstStart)
	b.During = latencyBetween(sum.Samples, burstStart, burstEnd)
	if b.Quiet.P99 > 0 {
		b.Ratio = b.During.P99 / b.Quiet.P99
	}
	b.LiveSent, b.LiveReceived, b.LiveLost = sent, sum.Received, sum.missing(st.acked)
	b.LiveErrors = st.errs.report()
	res.Requests += st.okRequests.Load()
	b.log()
	return ctx.Err()
}

// prepareBurst makes the streams the burst resumes on, each with enough
// results that every cursor of the burst lies beyond the history.
func (lt *loadTester) prepareBurst(ctx context.Context, res *ResumeResult) ([]preparedStream, error) {
	o := lt.o
	streams, err := lt.createStreams(ctx, "resume-burst", o.ResumeStreams)
	if err != nil {
		return nil, err
	}
	perStream := o.ResumeBack + burstSpread + 50
	progress("[resume] burst setup: %d streams, %s single-event POSTs each, so every cursor of the burst lies %s+ records back, beyond the history",
		len(streams), fmtInt(int64(perStream)), fmtInt(int64(o.ResumeBack)))
	prepared, err := lt.prepare(ctx, "resume setup burst", streams, perStream, 1, max(1, o.Concurrency/len(streams)), res, false)
	if err != nil {
		return nil, err
	}
	return prepared, nil
}

// log reports the burst on stderr.
func (b *ResumeBurst) log() {
	progress("[resume] cpu during the burst: %s", b.CPU)
	progress("[resume] burst: %d of %d resumes complete and exact in %.2fs (per resume p50 %s, max %s), %s results replayed (%s/s); resumes_total delta %v",
		b.Completed, b.Resumers, b.Seconds, fmtMs(b.ResumeTime.P50), fmtMs(b.ResumeTime.Max), fmtInt(b.Replayed), fmtInt(int64(b.ReplayedPerSec)), b.Deltas)
	progress("[resume] live subscriber p99: %s without resumes (%d samples), %s during them (%d samples): ×%.2f (target <= %.0f)",
		fmtMs(b.Quiet.P99), b.Quiet.Count, fmtMs(b.During.P99), b.During.Count, b.Ratio, targetResumeBurstRatio)
}

// burst starts every resumer at once and waits for all of them; b.CPU is
// what the burst cost.
func (lt *loadTester) burst(ctx context.Context, b *ResumeBurst, prepared []preparedStream, sender *pacedSender) (outs []burstOne, start, end time.Time) {
	o := lt.o
	client := resumeClient()
	defer client.CloseIdleConnections()
	outs = make([]burstOne, o.Resumers)
	var received, completed atomic.Int64
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for j := range o.Resumers {
		p := prepared[j%len(prepared)]
		back := o.ResumeBack + (j/len(prepared))%burstSpread
		cursor, want := p.after(back)
		wg.Go(func() {
			<-begin
			s, _, err := lt.resumeRead(ctx, client, p.id, cursor, int64(len(want)), &received)
			outs[j] = burstOne{n: s.count, err: err, exact: err == nil && slices.Equal(s.seqs, want)}
			if err == nil {
				outs[j].took = s.reachedAt.Sub(start)
				completed.Add(1)
			}
		})
	}
	stopBurst := everySecond("resume burst", func(_ time.Duration, last int64) (int64, string) {
		n := received.Load()
		return n, fmt.Sprintf("%d of %d resumes complete, %s replayed results/s (%s so far), live sender %s events acknowledged",
			completed.Load(), o.Resumers, fmtInt(n-last), fmtInt(n), fmtInt(sender.st.okEvents.Load()))
	})
	cpu := startCPU(lt.srv.Pid(), findBroker(o.Brokers))
	progress("[resume] %d SSE connections resume at once, %d to %d results back each", o.Resumers, o.ResumeBack, o.ResumeBack+burstSpread-1)
	start = time.Now()
	close(begin)
	wg.Wait()
	end = time.Now()
	b.CPU = cpu.stop()
	stopBurst()
	return outs, start, end
}

// tally counts what the resumers did: replayed, failed, inexact, complete,
// and how long the complete ones took.
func (b *ResumeBurst) tally(outs []burstOne) {
	var took []time.Duration
	var errs errTally
	for _, r := range outs {
		b.Replayed += r.n
		switch {
		case r.err != nil:
			b.Failed++
			errs.add(r.err)
		case !r.exact:
			b.Inexact++
		default:
			b.Completed++
		}
		if r.err == nil {
			took = append(took, r.took)
		}
	}
	b.ResumeErrors = errs.report()
	slices.Sort(took)
	b.ResumeTime = latencySummary(took)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
