package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The failover phase (issue 14): how long the results of a killed instance's
// partitions stall. Two servers A and B share one topic prefix, so one
// router group. rtbench sends failoverRate events/s through B, round robin
// over failoverStreams streams (enough to cover every partition), and
// follows each over SSE on B. failoverKillAfter into the sending, A is
// killed with SIGKILL. Per stream, the stall is the time from the kill to
// the arrival of the first result of an event sent after it: ~0 for the
// partitions B's router held, about the session timeout for A's. One run
// per value of -failover-sessions; a broker refuses a session timeout under
// its group.min.session.timeout.ms (6 s by default; scripts/kafka.sh sets
// 1 s), and the run then says so.
const (
	failoverStreams   = 48
	failoverRate      = 480 // events/s, 10 per stream
	failoverKillAfter = 3 * time.Second
	// targetFailover is issue 14's goal for the slowest stream.
	targetFailover = 5.0 // seconds
)

// FailoverResult is the failover phase: one run per session timeout.
type FailoverResult struct {
	Runs []FailoverRun `json:"runs"`
}

// FailoverRun is one session timeout's run.
type FailoverRun struct {
	SessionTimeout string  `json:"session_timeout"`
	Streams        int     `json:"streams"`
	Stalled        int     `json:"streams_stalled"` // streams whose stall was over 1 s
	P50            float64 `json:"stall_p50_s"`
	Max            float64 `json:"stall_max_s"`
	Sent           int64   `json:"sent"`
	Received       int64   `json:"received"`
	Lost           int64   `json:"lost"`
	Error          string  `json:"error,omitempty"`
}

func runFailoverPhase(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	res := &FailoverResult{}
	rep.Failover = res
	for _, session := range o.FailoverSessions {
		run := FailoverRun{SessionTimeout: session.String(), Streams: failoverStreams}
		if err := failoverOnce(ctx, o, bin, kc, session, &run); err != nil {
			run.Error = err.Error()
			progress("[failover %s] %v", session, err)
		}
		res.Runs = append(res.Runs, run)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// failoverOnce runs the phase with one session timeout into run.
func failoverOnce(ctx context.Context, o options, bin string, kc *kafkaObserver, session time.Duration, run *FailoverRun) error {
	name := "failover-" + session.String()
	env := []string{"KAFKA_SESSION_TIMEOUT=" + session.String(), fmt.Sprintf("KAFKA_HEARTBEAT_INTERVAL=%s", min(time.Second, session/3))}
	a, err := startServer(ctx, o, bin, serverVariant{name: name + "-a", logLevel: "warn", env: env})
	if err != nil {
		return fmt.Errorf("start A: %w", err)
	}
	defer stopServer(a, kc, o)
	b, err := startServer(ctx, o, bin, serverVariant{name: name + "-b", logLevel: "warn", env: append(env, "TOPIC_PREFIX="+a.Prefix)})
	if err != nil {
		return fmt.Errorf("start B: %w", err)
	}
	b.Prefix = a.Prefix // one set of topics, deleted once by A's stop
	defer func() { _ = b.Stop(20 * time.Second) }()
	lt := newLoadTester(b, o)
	defer lt.Close()
	streams, err := lt.createStreams(ctx, "failover", failoverStreams)
	if err != nil {
		return err
	}
	g, err := lt.subscribe(ctx, "failover", streams)
	if err != nil {
		return err
	}
	defer g.Close()
	time.Sleep(time.Second) // both routers hold their partitions
	st := &sendStats{}
	start := time.Now()
	killed := make(chan time.Time, 1)
	go func() {
		time.Sleep(failoverKillAfter)
		killed <- time.Now()
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		progress("[failover %s] A killed (SIGKILL)", session)
	}()
	d := failoverKillAfter + session + 10*time.Second
	lt.paced(ctx, st, start, pace{streams: streams, n: 1, workers: 32, queue: 1024, perSec: failoverRate, d: d})
	run.Sent = st.okEvents.Load()
	g.waitFor(run.Sent, 5*time.Second, time.Minute)
	g.Close()
	sum := g.summary()
	run.Received, run.Lost = sum.Received, sum.missing(st.acked)
	stalls := failoverStalls(g, <-killed)
	if len(stalls) < len(streams) {
		return fmt.Errorf("%d of %d streams had no result of an event sent after the kill", len(streams)-len(stalls), len(streams))
	}
	slices.Sort(stalls)
	run.P50, run.Max = stalls[len(stalls)/2], stalls[len(stalls)-1]
	for _, s := range stalls {
		if s > 1 {
			run.Stalled++
		}
	}
	progress("[failover %s] stalls (s): p50 %.2f, max %.2f; %d of %d streams stalled over 1 s; %d sent, %d received, %d lost",
		session, run.P50, run.Max, run.Stalled, len(streams), run.Sent, run.Received, run.Lost)
	return nil
}

// failoverStalls is, per stream, the seconds from the kill to the arrival
// of the first result of an event sent after it.
func failoverStalls(g *sseGroup, killedAt time.Time) []float64 {
	var out []float64
	kill := killedAt.UnixNano()
	for _, s := range g.subs {
		for i, sent := range s.sent {
			if sent >= kill {
				arrived := time.Unix(0, sent).Add(s.lats[i])
				out = append(out, max(0, arrived.Sub(killedAt).Seconds()))
				break
			}
		}
	}
	return out
}

// failoverRows are the failover runs; the run with the shortest session
// timeout that worked is judged.
func failoverRows(rep *Report) (ls []line) {
	f := rep.Failover
	if f == nil {
		return nil
	}
	best := -1
	for i, r := range f.Runs {
		if r.Error == "" && (best < 0 || r.sessionTimeout() < f.Runs[best].sessionTimeout()) {
			best = i
		}
	}
	for i, r := range f.Runs {
		name := "failover after kill -9, session " + r.SessionTimeout
		if r.Error != "" {
			ls = append(ls, fig(name, "failed", "").note(oneLine(r.Error)))
			continue
		}
		ls = append(ls,
			fig(name, fmt.Sprintf("%.2f", r.Max), "s").judged(&check{name: "failover: slowest stream resumed", goal: secondsAtMost,
				value: r.Max, bound: targetFailover, notes: []string{", session timeout " + r.SessionTimeout}, off: i != best}),
			fig("  stall p50; streams stalled > 1 s", fmt.Sprintf("%.2f s; %d of %d", r.P50, r.Stalled, r.Streams), ""),
			fig("  sent / received / lost", fmt.Sprintf("%s / %s / %d", fmtInt(r.Sent), fmtInt(r.Received), r.Lost), "events"))
	}
	return ls
}

func (r FailoverRun) sessionTimeout() time.Duration {
	d, _ := time.ParseDuration(r.SessionTimeout)
	return d
}

// parseDurations parses a comma-separated list of durations.
func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q: want durations such as 6s,3s", s)
		}
		out = append(out, d)
	}
	return out, nil
}
