package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// sections are the phases' parts of the table, in the order it shows them
// (and so the order of rep.Targets); each writes nothing for a phase that
// did not run.
var sections = []func(*Report) []line{baselineRows, singleRows, batchRows, endToEndRows, latencyRows,
	comparisonRows, resumeRows, processorsRows, crashMarksRows, vegetaRows, swarmRows, failoverRows, drainRows, streamCreateRows}

// requestRows are a load phase's request latency and errors.
func requestRows(l LatencySummary, errs ErrorReport) []line {
	return []line{fig("  request p50", fmtMs(l.P50), ""), fig("  request p99", fmtMs(l.P99), ""), errorRow(errs)}
}

func errorRow(errs ErrorReport) line { return fig("  errors", fmtInt(errs.Total), "requests") }

func baselineRows(rep *Report) []line {
	if b := rep.Baseline; b != nil {
		return []line{head("raw producer (Sarama, acks=all)", count(b.EventsPerSec), "events/s", "ceiling")}
	}
	return nil
}

func singleRows(rep *Report) []line {
	if s := rep.Single; s != nil {
		return append([]line{head("single-event POST", count(s.RequestsSec), "req/s", "none")}, requestRows(s.Latency, s.Errors)...)
	}
	return nil
}

// batchRows are the batch phase against the raw producer.
func batchRows(rep *Report) []line {
	b := rep.Batch
	if b == nil {
		return nil
	}
	l := line{label: fmt.Sprintf("batch ingest (%d/POST)", b.BatchSize), figure: count(b.EventsPerSec), unit: "events/s", base: "-", ratio: "-"}
	c := &check{name: "batch ingest / raw producer", goal: ratioAtLeast, value: b.Ratio, bound: targetBatchRatio, off: true}
	if rep.Baseline != nil && rep.Baseline.EventsPerSec > 0 {
		l.base, l.ratio, c.off = count(rep.Baseline.EventsPerSec), percent(b.Ratio), false
	}
	return append([]line{l.judged(c)}, requestRows(b.Latency, b.Errors)...)
}

func endToEndRows(rep *Report) []line {
	e := rep.E2E
	if e == nil {
		return nil
	}
	return []line{
		line{label: "end-to-end POST->SSE", figure: count(e.EventsPerSec), unit: "events/s", base: "-", ratio: "-"}.
			judged(&check{name: "end-to-end", goal: eventsAtLeast, value: e.EventsPerSec, bound: targetE2E}),
		fig("  ingest during it", count(e.IngestPerSec), "events/s"),
		fig("  sent / received", counts(e.Sent, e.Received), "events"),
		fig("  lost", fmtInt(e.Lost), "events"),
		fig("  duplicates", fmtInt(e.Duplicates), "events"),
		fig("  SSE disconnects", strconv.Itoa(e.Disconnects), ""),
		fig("  POST->SSE p50 / p99", mss(e.SendToSSE.P50, e.SendToSSE.P99), ""),
		errorRow(e.Errors),
	}
}

func latencyRows(rep *Report) []line {
	l := rep.Latency
	if l == nil {
		return nil
	}
	ls := []line{
		head(fmt.Sprintf("latency @ %s ev/s", fmtInt(int64(l.TargetRate))), fmtMs(l.SendToSSE.P50), "p50", "none"),
		fig("  POST->SSE p90", fmtMs(l.SendToSSE.P90), ""),
		fig("  POST->SSE p99", fmtMs(l.SendToSSE.P99), ""),
		fig("  POST->SSE max", fmtMs(l.SendToSSE.Max), ""),
		fig("  after 1st s p50 / p99", mss(l.AfterWarmup.P50, l.AfterWarmup.P99), ""),
		fig("  sent rate", count(l.SentPerSec), "events/s"),
		fig("  after a warm-up of", fmt.Sprintf("%gs", l.WarmupSeconds), "uncounted"),
		fig("  sent / received / lost", counts(l.Sent, l.Received, l.Lost), "events"),
		fig("  POST p50 / p99", mss(l.RequestLatency.P50, l.RequestLatency.P99), ""),
		errorRow(l.Errors),
	}
	// The budget per hop, from the server's histograms: each point's age
	// includes the hops before it.
	for _, h := range l.Hops {
		ls = append(ls, fig("  age "+h.Point+" p50 / p99", mss(h.P50, h.P99), ""))
	}
	return ls
}

// comparisonRows are each comparison phase (middleware, metrics): OFF, ON
// and the cost, which a phase without a target shows unjudged.
func comparisonRows(rep *Report) (ls []line) {
	for _, c := range rep.comparisons() {
		m := c.res
		if m.On.Requests+m.Off.Requests == 0 {
			continue
		}
		off, on := c.name+" OFF", c.name+" ON"
		if c.off != "" {
			off, on = c.off, c.on
		}
		chk := &check{name: c.name + " cost", goal: costAtMost, value: m.Cost, bound: m.Target, off: m.On.RequestsSec <= 0}
		if m.JudgeCPU {
			chk = &check{name: c.name + " server CPU cost", goal: costAtMost, value: m.CPUCost, bound: m.Target, off: m.Off.ServerCPUPerRequest <= 0}
		}
		// Rounds of the same server that differ by more than the target
		// mean the machine's noise is as large as what is measured.
		if sp := max(m.spread(true), m.spread(false)); sp > m.Target {
			chk.notes = []string{fmt.Sprintf(", but rounds of one side differ by %.0f%%: noise", sp*100)}
		}
		rows := costRows("single POST, "+off, "single POST, "+on, "req/s", m.Off.RequestsSec, m.On.RequestsSec,
			m.sideRows(false, ""), m.sideRows(true, fmt.Sprintf("%+.1f%% vs OFF", m.CPUCost*100)), chk)
		if m.NoTarget {
			// A cost to see, not to bound: no check, so no verdict and
			// nothing in rep.Targets.
			cost := &rows[len(rows)-1]
			cost.check, cost.target, cost.verdict = nil, "none", "-"
		}
		ls = append(ls, rows...)
	}
	return ls
}

// costRows are a phase that compares a setting OFF and ON: each side's row
// and figures, then the cost (OFF/ON - 1) that chk judges.
func costRows(offLabel, onLabel, unit string, off, on float64, offFigs, onFigs []line, chk *check) []line {
	ratio := "-"
	if off > 0 {
		ratio = percent(on / off)
	}
	ls := append([]line{{label: offLabel, figure: count(off), unit: unit, base: "-", ratio: "-"}}, offFigs...)
	ls = append(ls, line{label: onLabel, figure: count(on), unit: unit, base: count(off), ratio: ratio})
	ls = append(ls, onFigs...)
	ratio = " (OFF/ON - 1)" // the throughput OFF has more
	if strings.Contains(chk.name, "CPU") {
		ratio = " (ON/OFF - 1)" // the CPU ON spends more
	}
	return append(ls, fig(chk.name+ratio, signedPercent(chk.value), "").judged(chk))
}

// sideRows are the figures of one side of a comparison; cpu notes its CPU
// per request.
func (m *CompareResult) sideRows(on bool, cpu string) []line {
	s := m.Off
	if on {
		s = m.On
	}
	lo, hi := m.roundSpan(on)
	ls := []line{
		fig("  request p50 / p99", mss(s.Latency.P50, s.Latency.P99), ""),
		fig("  rounds min / max", counts(int64(lo), int64(hi)), "req/s"),
		fig("  server CPU per request", fmt.Sprintf("%.0f µs", s.ServerCPUPerRequest), "").note(cpu),
	}
	if n := s.Stop.AccessLogLines; on && n > 0 {
		ls = append(ls, fig("  access log lines", fmtInt(int64(n)), ""))
	}
	if sp := m.Spans; on && sp != nil {
		ls = append(ls, fig("  spans exported", fmtInt(sp.Spans), "spans").
			note(fmt.Sprintf("%.3f per request, %s exports", sp.PerRequest, fmtInt(sp.Exports))))
	}
	return append(ls, errorRow(s.Errors))
}

// resumeRows are each resume run, then the burst.
func resumeRows(rep *Report) (ls []line) {
	r := rep.Resume
	if r == nil {
		return nil
	}
	for _, run := range []struct {
		label, name string
		r           ResumeRun
	}{{"resume 10k, from Kafka", "resume 10k from kafka", r.Kafka}, {"resume 10k, from history", "resume 10k from history", r.History},
		{"  same, Kafka, records of 100", "", r.KafkaBatched}} {
		if len(run.r.Tries) == 0 {
			continue
		}
		l := head(run.label, fmtMs(run.r.Seconds*1000), "slowest", "none")
		if run.name != "" {
			l = l.judged(&check{name: run.name, goal: resumeUnder, value: run.r.Seconds, bound: targetResumeSeconds,
				notes: []string{fmt.Sprintf(" (slowest of %d)", len(run.r.Tries))},
				musts: []must{{run.r.PathOK, ", but not every try took the " + run.r.Expected + " path"}, {run.r.Exact, ", but a replay was not exact"}}})
		}
		paths := make([]string, len(run.r.Tries))
		for i, t := range run.r.Tries {
			paths[i] = t.Path
		}
		ls = append(ls, l,
			fig("  fastest", fmtMs(run.r.Fastest*1000), ""),
			fig("  results/s (slowest)", count(run.r.ResultsPerSec), "results/s"),
			fig("  path by resumes_total", strings.Join(paths, ", "), "").note(fmt.Sprintf("exact: %t", run.r.Exact)))
	}
	if b := r.Burst; b != nil {
		ls = append(ls, b.rows()...)
	}
	return ls
}

// rows are the resume burst's: the live p99 beside it, and the resumes.
func (b *ResumeBurst) rows() []line {
	ratio := "-"
	if b.Quiet.P99 > 0 {
		ratio = fmt.Sprintf("x%.2f", b.Ratio)
	}
	chk := &check{name: "live p99 during resume burst", goal: p99RatioAtMost, value: b.Ratio, bound: targetResumeBurstRatio,
		musts: []must{{b.Completed == b.Resumers, fmt.Sprintf(", but only %d of %d resumes completed exactly", b.Completed, b.Resumers)},
			{b.Path == "kafka", ", but the resumes' path was " + b.Path + ", not kafka"}},
		off: b.Quiet.P99 <= 0 || b.During.Count <= 0}
	return []line{
		line{label: fmt.Sprintf("live p99, %s resumes at once", fmtInt(int64(b.Resumers))), figure: fmtMs(b.During.P99), unit: "p99",
			base: fmtMs(b.Quiet.P99), ratio: ratio}.judged(chk),
		fig("  live p50 quiet / during", mss(b.Quiet.P50, b.During.P50), ""),
		fig("  live samples quiet / during", counts(int64(b.Quiet.Count), int64(b.During.Count)), ""),
		fig("  burst took", fmt.Sprintf("%.2f s", b.Seconds), ""),
		fig("  cpu during the burst", fmt.Sprintf("server %.2f, rtbench %.2f, broker %.2f, other %.2f", b.CPU.Server, b.CPU.Bench, b.CPU.Broker, b.CPU.Other), "cores"),
		fig("  per resume p50 / max", mss(b.ResumeTime.P50, b.ResumeTime.Max), ""),
		fig("  exact / inexact / failed", fmt.Sprintf("%d / %d / %d", b.Completed, b.Inexact, b.Failed), "resumes"),
		fig("  replayed", fmtInt(b.Replayed), "results").note(count(b.ReplayedPerSec) + "/s"),
		fig("  resumes_total delta", fmt.Sprintf("kafka %d, history %d", b.Deltas["kafka"], b.Deltas["history"]), ""),
		fig("  live sent / received / lost", counts(b.LiveSent, b.LiveReceived, b.LiveLost), "events"),
	}
}

func processorsRows(rep *Report) []line {
	p := rep.Processors
	if p == nil || p.On.Rounds+p.Off.Rounds == 0 {
		return nil
	}
	chk := &check{name: "processors cost", goal: costAtMost, value: p.Cost, bound: p.Target, off: p.On.EventsPerSec <= 0}
	if lo, hi := p.roundSpan(true); lo > 0 && hi/lo-1 > p.Target {
		chk.notes = []string{fmt.Sprintf(", but ON rounds differ by %.0f%%: noise", (hi/lo-1)*100)}
	} else if lo, hi := p.roundSpan(false); lo > 0 && hi/lo-1 > p.Target {
		chk.notes = []string{fmt.Sprintf(", but OFF rounds differ by %.0f%%: noise", (hi/lo-1)*100)}
	}
	return costRows("end-to-end, passthrough", "end-to-end, filter + map", "events/s", p.Off.EventsPerSec, p.On.EventsPerSec,
		p.sideRows(false, ""), p.sideRows(true, fmt.Sprintf("%+.1f%% vs passthrough", p.CPUCost*100)), chk)
}

// sideRows are the figures of one kind of stream; cpu notes its CPU per
// event.
func (p *ProcessorsResult) sideRows(on bool, cpu string) []line {
	s := p.Off
	if on {
		s = p.On
	}
	lo, hi := p.roundSpan(on)
	return []line{
		fig("  rounds min / max", counts(int64(lo), int64(hi)), "events/s"),
		fig("  lost / duplicates", counts(s.Lost, s.Duplicates), "events"),
		fig("  server CPU per event", fmt.Sprintf("%.1f µs", s.ServerCPUPerEvent), "").note(cpu),
	}
}

func crashMarksRows(rep *Report) []line {
	c := rep.CrashMarks
	if c == nil || c.OnPerSec <= 0 {
		return nil
	}
	return costRows("router drain, no crash guard", "router drain, crash guard", "records/s", c.OffPerSec, c.OnPerSec, nil,
		[]line{fig("  careful pass (a mark per record)", count(c.CarefulSec), "records/s")},
		&check{name: "crash marks cost", goal: costAtMost, value: c.Cost, bound: c.Target})
}

// vegetaRows are each vegeta attack's; the single POSTs at max rate are
// judged against the bare server.
func vegetaRows(rep *Report) (ls []line) {
	v := rep.Vegeta
	if v == nil {
		return nil
	}
	for _, a := range v.Attacks {
		name := "vegeta " + a.Route + " " + a.Mode
		if a.Rate > 0 {
			name += " " + fmtInt(int64(a.Rate)) + "/s"
		}
		l := head(name, count(a.Throughput), "req/s", "none")
		switch {
		case a.Route == "bare":
			l.label, l.target = "vegeta bare net/http max", "ceiling"
		case a.Route == "single" && a.Mode == "max" && v.BareMax > 0:
			l.base, l.ratio = count(v.BareMax), percent(v.Ratio)
			l = l.judged(&check{name: "single POST / bare net/http", goal: ratioAtLeast, value: v.Ratio, bound: targetSingleVsBare, off: v.SingleMax <= 0})
		}
		ls = append(ls, l)
		if a.EventsPerRequest > 1 {
			ls = append(ls, fig("  events", count(a.EventsPerSec), "events/s"))
		}
		ls = append(ls, fig("  p50 / p90 / p99 / max", mss(a.Latency.P50, a.Latency.P90, a.Latency.P99, a.Latency.Max), ""),
			fig("  requests / errors", counts(a.Requests, a.Errors.Total), "").note(statusCodes(a.StatusCodes)))
	}
	return ls
}

// statusCodes writes a status histogram as "202×1234 503×2", in order.
func statusCodes(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// swarmRows are each size of the SSE swarm's; the targets are judged on the
// largest that worked.
func swarmRows(rep *Report) (ls []line) {
	sw := rep.Swarm
	if sw == nil {
		return nil
	}
	for _, r := range sw.Runs {
		name := fmt.Sprintf("SSE swarm %s over %d streams", fmtInt(int64(r.Asked)), sw.Streams)
		if r.Error != "" && r.Connected == 0 {
			ls = append(ls, fig(name, "failed", "").note(oneLine(r.Error)))
			continue
		}
		ls = append(ls, r.rows(name, sw.Rate, r != sw.largest())...)
	}
	return ls
}

// rows are one swarm run's; its checks are off unless it is the run judged.
func (r *SwarmRun) rows(name string, rate int, off bool) []line {
	size := fmt.Sprintf(" at %s connected", fmtInt(r.Connected))
	enough := must{ok: r.Connected >= targetSwarmSubscribers, but: fmt.Sprintf(", fewer than %s connected", fmtInt(targetSwarmSubscribers))}
	quick := must{ok: r.Latency.P99 <= targetSwarmP99, but: fmt.Sprintf(", p99 %s > %s", fmtMs(r.Latency.P99), fmtMs(targetSwarmP99))}
	subs := &check{name: "SSE subscribers", goal: connsAtLeast, value: float64(r.Connected), bound: targetSwarmSubscribers, off: off}
	if r.Capped != "" {
		subs.notes = []string{", capped: " + r.Capped}
	}
	ls := []line{fig(name, fmtInt(r.Connected), "connected").judged(subs)}
	if r.Capped != "" {
		ls = append(ls, fig("  capped", fmtInt(int64(r.Connections)), "tried").note(oneLine(r.Capped)))
	}
	if r.ConnectFailed > 0 {
		ls = append(ls, fig("  connect failed", fmtInt(r.ConnectFailed), "").note(oneLine(r.FirstConnectError)))
	}
	ls = append(ls,
		fig("  server RSS per connection", fmt.Sprintf("%.1f", r.RSSPerConn/1024), "KiB").judged(&check{name: "SSE RSS per connection",
			goal: kibAtMost, value: r.RSSPerConn / 1024, bound: targetSwarmRSS / 1024, notes: []string{size}, musts: []must{enough}, off: off}),
		fig("  of which (Go runtime)", r.perConnRuntime(), ""),
		fig("  server VmRSS idle / connected / load", counts(r.RSSIdleKiB, r.RSSConnectedKiB, r.RSSLoadKiB), "KiB"),
		line{label: "  deliveries", figure: count(r.DeliveriesPerSec), unit: "per s", base: count(r.Offered), ratio: "offered"}.
			judged(&check{name: "SSE deliveries/s", goal: deliveriesAtLeast, value: r.DeliveriesPerSec, bound: targetSwarmDeliveries,
				notes: []string{size, fmt.Sprintf(", %s/s offered", count(r.Offered))}, musts: []must{enough, quick}, off: off}),
		fig("  received / expected", counts(r.Received, r.Expected), "deliveries").note(fmt.Sprintf("%d disconnects", r.Disconnects)),
		line{label: "  events sent", figure: count(r.SentPerSec), unit: "per s", base: fmtInt(int64(rate)), ratio: "asked",
			verdict: fmt.Sprintf("%d batches skipped (senders busy), %d send errors", r.SkippedBatches, r.SendErrors.Total)},
		fig("  POST->receive p50 / p90 / p99 / max", mss(r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max), ""),
		fig("  cpu: server / broker / clients / other", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", r.CPU.Server, r.CPU.Broker, r.ClientCPU, max(0, r.CPU.Other-r.ClientCPU)), "cores"))
	if r.Error != "" {
		ls = append(ls, fig("  error", "", "").note(oneLine(r.Error)))
	}
	return ls
}

// drainRows are the router backlogs drained between phases.
func drainRows(rep *Report) (ls []line) {
	for _, d := range rep.RouterDrains {
		if d.InitialLag > 0 {
			ls = append(ls, fig("router backlog after "+d.After, fmtInt(d.InitialLag), "records").note(fmt.Sprintf("drained in %.1f s", d.Seconds)))
		}
	}
	return ls
}

// streamCreateRows are the streams created during setup.
func streamCreateRows(rep *Report) []line {
	if c := rep.StreamCreate; c.Count > 0 {
		return []line{fig("stream create (setup)", fmtMs(c.P50), "p50"), fig("  max", fmtMs(c.Max), "")}
	}
	return nil
}
