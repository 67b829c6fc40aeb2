package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// table is the summary table being written: its rows, seven cells each.
type table struct {
	rep  *Report
	rows [][]string
}

// columns is how many cells a row has: phase, figure, unit, baseline,
// ratio, target, verdict (or a note).
const columns = 7

// row adds one row; the cells not given are empty (a phase's sub-rows give
// a label, a figure and a unit, and sometimes a note).
func (t *table) row(cells ...string) {
	for len(cells) < columns {
		cells = append(cells, "")
	}
	t.rows = append(t.rows, cells)
}

// note adds a sub-row whose last cell is a note.
func (t *table) note(label, figure, unit, note string) {
	t.row(label, figure, unit, "", "", "", note)
}

// verdict is the table's cell for the target named name: PASS or MISS and
// the margin, "-" when the run did not measure it.
func (t *table) verdict(name string) string {
	for _, tr := range t.rep.Targets {
		if tr.Name == name {
			if tr.Pass {
				return "PASS " + tr.Margin
			}
			return "MISS " + tr.Margin
		}
	}
	return "-"
}

// requests adds a load phase's request latency and errors.
func (t *table) requests(l LatencySummary, errs ErrorReport) {
	t.row("  request p50", fmtMs(l.P50))
	t.row("  request p99", fmtMs(l.P99))
	t.row("  errors", fmtInt(errs.Total), "requests")
}

// write aligns the rows in columns.
func (t *table) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cells := range t.rows {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprint(tw, "\t\n")
	}
	tw.Flush()
}

// baseline adds the rows of the raw producer the batch phase is compared with.
func (t *table) baseline() {
	rep := t.rep
	if b := rep.Baseline; b != nil {
		t.row("raw producer (Sarama, acks=all)", fmtInt(int64(b.EventsPerSec)), "events/s", "-", "-", "ceiling", "-")
	}
}

// single adds the rows of the single-event phase.
func (t *table) single() {
	rep := t.rep
	if s := rep.Single; s != nil {
		t.row("single-event POST", fmtInt(int64(s.RequestsSec)), "req/s", "-", "-", "none", "-")
		t.requests(s.Latency, s.Errors)
	}
}

// batch adds the rows of the batch phase, against the raw producer.
func (t *table) batch() {
	rep := t.rep
	if b := rep.Batch; b != nil {
		base, ratio := "-", "-"
		if rep.Baseline != nil && rep.Baseline.EventsPerSec > 0 {
			base = fmtInt(int64(rep.Baseline.EventsPerSec))
			ratio = fmt.Sprintf("%.1f%%", b.Ratio*100)
		}
		t.row(fmt.Sprintf("batch ingest (%d/POST)", b.BatchSize), fmtInt(int64(b.EventsPerSec)), "events/s", base, ratio,
			fmt.Sprintf(">= %.0f%%", targetBatchRatio*100), t.verdict("batch ingest / raw producer"))
		t.requests(b.Latency, b.Errors)
	}
}

// endToEnd adds the rows of the end-to-end phase.
func (t *table) endToEnd() {
	rep := t.rep
	if e := rep.E2E; e != nil {
		t.row("end-to-end POST->SSE", fmtInt(int64(e.EventsPerSec)), "events/s", "-", "-", ">= "+fmtInt(targetE2E), t.verdict("end-to-end"))
		t.row("  ingest during it", fmtInt(int64(e.IngestPerSec)), "events/s")
		t.row("  sent / received", fmtInt(e.Sent)+" / "+fmtInt(e.Received), "events")
		t.row("  lost", fmtInt(e.Lost), "events")
		t.row("  duplicates", fmtInt(e.Duplicates), "events")
		t.row("  SSE disconnects", strconv.Itoa(e.Disconnects))
		t.row("  POST->SSE p50 / p99", fmtMs(e.SendToSSE.P50)+" / "+fmtMs(e.SendToSSE.P99))
		t.row("  errors", fmtInt(e.Errors.Total), "requests")
	}
}

// latency adds the rows of the latency phase.
func (t *table) latency() {
	rep := t.rep
	if l := rep.Latency; l != nil {
		t.row(fmt.Sprintf("latency @ %s ev/s", fmtInt(int64(l.TargetRate))), fmtMs(l.SendToSSE.P50), "p50", "-", "-", "none", "-")
		t.row("  POST->SSE p90", fmtMs(l.SendToSSE.P90))
		t.row("  POST->SSE p99", fmtMs(l.SendToSSE.P99))
		t.row("  POST->SSE max", fmtMs(l.SendToSSE.Max))
		t.row("  after 1st s p50 / p99", fmtMs(l.AfterWarmup.P50)+" / "+fmtMs(l.AfterWarmup.P99))
		t.row("  sent rate", fmtInt(int64(l.SentPerSec)), "events/s")
		t.row("  sent / received / lost", fmtInt(l.Sent)+" / "+fmtInt(l.Received)+" / "+fmtInt(l.Lost), "events")
		t.row("  POST p50 / p99", fmtMs(l.RequestLatency.P50)+" / "+fmtMs(l.RequestLatency.P99))
		t.row("  errors", fmtInt(l.Errors.Total), "requests")
	}
}

// comparisons adds the rows of each comparison phase (middleware, metrics): OFF, ON and the cost.
func (t *table) comparisons() {
	rep := t.rep
	for _, c := range rep.comparisons() {
		m := c.res
		if m.On.Requests+m.Off.Requests == 0 {
			continue
		}
		t.row("single POST, "+c.name+" OFF", fmtInt(int64(m.Off.RequestsSec)), "req/s", "-", "-")
		t.row("  request p50 / p99", fmtMs(m.Off.Latency.P50)+" / "+fmtMs(m.Off.Latency.P99))
		t.row("  rounds min / max", m.roundRange(false), "req/s")
		t.row("  server CPU per request", fmt.Sprintf("%.0f µs", m.Off.ServerCPUPerRequest))
		t.row("  errors", fmtInt(m.Off.Errors.Total), "requests")
		ratio := "-"
		if m.Off.RequestsSec > 0 {
			ratio = fmt.Sprintf("%.1f%%", m.On.RequestsSec/m.Off.RequestsSec*100)
		}
		t.row("single POST, "+c.name+" ON", fmtInt(int64(m.On.RequestsSec)), "req/s", fmtInt(int64(m.Off.RequestsSec)), ratio)
		t.row("  request p50 / p99", fmtMs(m.On.Latency.P50)+" / "+fmtMs(m.On.Latency.P99))
		t.row("  rounds min / max", m.roundRange(true), "req/s")
		t.note("  server CPU per request", fmt.Sprintf("%.0f µs", m.On.ServerCPUPerRequest), "", fmt.Sprintf("%+.1f%% vs OFF", m.CPUCost*100))
		if n := m.On.Stop.AccessLogLines; n > 0 {
			t.row("  access log lines", fmtInt(int64(n)))
		}
		t.row("  errors", fmtInt(m.On.Errors.Total), "requests")
		t.row(c.name+" cost (OFF/ON - 1)", fmt.Sprintf("%+.1f%%", m.Cost*100), "", "", "", fmt.Sprintf("<= %.0f%%", m.Target*100), t.verdict(c.name+" cost"))
	}
}

// resume adds the rows of the resume phase: each resume run, then the burst.
func (t *table) resume() {
	rep := t.rep
	if r := rep.Resume; r != nil {
		for _, run := range []struct {
			label, name string
			r           ResumeRun
		}{{"resume 10k, from Kafka", "resume 10k from kafka", r.Kafka}, {"resume 10k, from history", "resume 10k from history", r.History},
			{"  same, Kafka, records of 100", "", r.KafkaBatched}} {
			if len(run.r.Tries) == 0 {
				continue
			}
			target := fmt.Sprintf("< %.0f s", targetResumeSeconds)
			if run.name == "" {
				target = "none"
			}
			t.row(run.label, fmtMs(run.r.Seconds*1000), "slowest", "-", "-", target, t.verdict(run.name))
			t.row("  fastest", fmtMs(run.r.Fastest*1000))
			t.row("  results/s (slowest)", fmtInt(int64(run.r.ResultsPerSec)), "results/s")
			paths := ""
			for i, t := range run.r.Tries {
				if i > 0 {
					paths += ", "
				}
				paths += t.Path
			}
			t.note("  path by resumes_total", paths, "", fmt.Sprintf("exact: %t", run.r.Exact))
		}
		if b := r.Burst; b != nil {
			ratio := "-"
			if b.Quiet.P99 > 0 {
				ratio = fmt.Sprintf("x%.2f", b.Ratio)
			}
			t.row(fmt.Sprintf("live p99, %s resumes at once", fmtInt(int64(b.Resumers))), fmtMs(b.During.P99), "p99", fmtMs(b.Quiet.P99), ratio,
				fmt.Sprintf("<= x%.0f", targetResumeBurstRatio), t.verdict("live p99 during resume burst"))
			t.row("  live p50 quiet / during", fmtMs(b.Quiet.P50)+" / "+fmtMs(b.During.P50))
			t.row("  live samples quiet / during", fmtInt(int64(b.Quiet.Count))+" / "+fmtInt(int64(b.During.Count)))
			t.row("  burst took", fmt.Sprintf("%.2f s", b.Seconds))
			t.row("  cpu during the burst", fmt.Sprintf("server %.2f, rtbench %.2f, broker %.2f, other %.2f", b.CPU.Server, b.CPU.Bench, b.CPU.Broker, b.CPU.Other), "cores")
			t.row("  per resume p50 / max", fmtMs(b.ResumeTime.P50)+" / "+fmtMs(b.ResumeTime.Max))
			t.row("  exact / inexact / failed", fmt.Sprintf("%d / %d / %d", b.Completed, b.Inexact, b.Failed), "resumes")
			t.note("  replayed", fmtInt(b.Replayed), "results", fmtInt(int64(b.ReplayedPerSec))+"/s")
			t.row("  resumes_total delta", fmt.Sprintf("kafka %d, history %d", b.Deltas["kafka"], b.Deltas["history"]))
			t.row("  live sent / received / lost", fmtInt(b.LiveSent)+" / "+fmtInt(b.LiveReceived)+" / "+fmtInt(b.LiveLost), "events")
		}
	}
}

// processors adds the rows of the processors phase.
func (t *table) processors() {
	rep := t.rep
	if p := rep.Processors; p != nil && p.On.Rounds+p.Off.Rounds > 0 {
		t.row("end-to-end, passthrough", fmtInt(int64(p.Off.EventsPerSec)), "events/s", "-", "-")
		lo, hi := p.roundSpan(false)
		t.row("  rounds min / max", fmtInt(int64(lo))+" / "+fmtInt(int64(hi)), "events/s")
		t.row("  lost / duplicates", fmtInt(p.Off.Lost)+" / "+fmtInt(p.Off.Duplicates), "events")
		t.row("  server CPU per event", fmt.Sprintf("%.1f µs", p.Off.ServerCPUPerEvent))
		ratio := "-"
		if p.Off.EventsPerSec > 0 {
			ratio = fmt.Sprintf("%.1f%%", p.On.EventsPerSec/p.Off.EventsPerSec*100)
		}
		t.row("end-to-end, filter + map", fmtInt(int64(p.On.EventsPerSec)), "events/s", fmtInt(int64(p.Off.EventsPerSec)), ratio)
		lo, hi = p.roundSpan(true)
		t.row("  rounds min / max", fmtInt(int64(lo))+" / "+fmtInt(int64(hi)), "events/s")
		t.row("  lost / duplicates", fmtInt(p.On.Lost)+" / "+fmtInt(p.On.Duplicates), "events")
		t.note("  server CPU per event", fmt.Sprintf("%.1f µs", p.On.ServerCPUPerEvent), "", fmt.Sprintf("%+.1f%% vs passthrough", p.CPUCost*100))
		t.row("processors cost (OFF/ON - 1)", fmt.Sprintf("%+.1f%%", p.Cost*100), "", "", "", fmt.Sprintf("<= %.0f%%", p.Target*100), t.verdict("processors cost"))
	}
}

// crashMarks adds the rows of the crash marks phase.
func (t *table) crashMarks() {
	rep := t.rep
	if c := rep.CrashMarks; c != nil && c.OnPerSec > 0 {
		t.row("router drain, no crash guard", fmtInt(int64(c.OffPerSec)), "records/s", "-", "-")
		t.row("router drain, crash guard", fmtInt(int64(c.OnPerSec)), "records/s", fmtInt(int64(c.OffPerSec)),
			fmt.Sprintf("%.1f%%", c.OnPerSec/c.OffPerSec*100))
		t.row("  careful pass (a mark per record)", fmtInt(int64(c.CarefulSec)), "records/s")
		t.row("crash marks cost (OFF/ON - 1)", fmt.Sprintf("%+.1f%%", c.Cost*100), "", "", "", fmt.Sprintf("<= %.0f%%", c.Target*100), t.verdict("crash marks cost"))
	}
}

// vegeta adds the rows of each vegeta attack.
func (t *table) vegeta() {
	rep := t.rep
	if v := rep.Vegeta; v != nil {
		for _, a := range v.Attacks {
			name := "vegeta " + a.Route + " " + a.Mode
			if a.Rate > 0 {
				name += " " + fmtInt(int64(a.Rate)) + "/s"
			}
			base, ratio, target, verdictCell := "-", "-", "none", "-"
			switch {
			case a.Route == "bare":
				name = "vegeta bare net/http max"
				target = "ceiling"
			case a.Route == "single" && a.Mode == "max" && v.BareMax > 0:
				base, ratio = fmtInt(int64(v.BareMax)), fmt.Sprintf("%.1f%%", v.Ratio*100)
				target, verdictCell = fmt.Sprintf(">= %.0f%%", targetSingleVsBare*100), t.verdict("single POST / bare net/http")
			}
			t.row(name, fmtInt(int64(a.Throughput)), "req/s", base, ratio, target, verdictCell)
			if a.EventsPerRequest > 1 {
				t.row("  events", fmtInt(int64(a.EventsPerSec)), "events/s")
			}
			t.row("  p50 / p90 / p99 / max", fmtMs(a.Latency.P50)+" / "+fmtMs(a.Latency.P90)+" / "+fmtMs(a.Latency.P99)+" / "+fmtMs(a.Latency.Max))
			t.note("  requests / errors", fmtInt(a.Requests)+" / "+fmtInt(a.Errors.Total), "", statusCodes(a.StatusCodes))
		}
	}
}

// swarm adds the rows of each size of the SSE swarm.
func (t *table) swarm() {
	rep := t.rep
	if sw := rep.Swarm; sw != nil {
		for _, r := range sw.Runs {
			name := fmt.Sprintf("SSE swarm %s over %d streams", fmtInt(int64(r.Asked)), sw.Streams)
			if r.Error != "" && r.Connected == 0 {
				t.note(name, "failed", "", oneLine(r.Error))
				continue
			}
			largest := r == sw.largest()
			pick := func(name string) string {
				if largest {
					return t.verdict(name)
				}
				return "-"
			}
			t.row(name, fmtInt(r.Connected), "connected", "", "", ">= "+fmtInt(targetSwarmSubscribers), pick("SSE subscribers"))
			if r.Capped != "" {
				t.note("  capped", fmtInt(int64(r.Connections)), "tried", oneLine(r.Capped))
			}
			if r.ConnectFailed > 0 {
				t.note("  connect failed", fmtInt(r.ConnectFailed), "", oneLine(r.FirstConnectError))
			}
			t.row("  server RSS per connection", fmt.Sprintf("%.1f", r.RSSPerConn/1024), "KiB", "", "", fmt.Sprintf("<= %d KiB", targetSwarmRSS/1024), pick("SSE RSS per connection"))
			t.row("  of which (Go runtime)", r.perConnRuntime())
			t.row("  server VmRSS idle / connected / load", fmtInt(r.RSSIdleKiB)+" / "+fmtInt(r.RSSConnectedKiB)+" / "+fmtInt(r.RSSLoadKiB), "KiB")
			t.row("  deliveries", fmtInt(int64(r.DeliveriesPerSec)), "per s", fmtInt(int64(r.Offered)), "offered", ">= "+fmtInt(targetSwarmDeliveries), pick("SSE deliveries/s"))
			t.note("  received / expected", fmtInt(r.Received)+" / "+fmtInt(r.Expected), "deliveries", fmt.Sprintf("%d disconnects", r.Disconnects))
			t.row("  events sent", fmtInt(int64(r.SentPerSec)), "per s", fmtInt(int64(sw.Rate)), "asked", "", fmt.Sprintf("%d batches skipped (senders busy), %d send errors", r.SkippedBatches, r.SendErrors.Total))
			t.row("  POST->receive p50 / p90 / p99 / max", fmtMs(r.Latency.P50)+" / "+fmtMs(r.Latency.P90)+" / "+fmtMs(r.Latency.P99)+" / "+fmtMs(r.Latency.Max))
			t.row("  cpu: server / broker / clients / other", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", r.CPU.Server, r.CPU.Broker, r.ClientCPU, max(0, r.CPU.Other-r.ClientCPU)), "cores")
			if r.Error != "" {
				t.note("  error", "", "", oneLine(r.Error))
			}
		}
	}
}

// drains adds the rows of the router backlogs drained between phases.
func (t *table) drains() {
	rep := t.rep
	for _, d := range rep.RouterDrains {
		if d.InitialLag > 0 {
			t.note("router backlog after "+d.After, fmtInt(d.InitialLag), "records", fmt.Sprintf("drained in %.1f s", d.Seconds))
		}
	}
}

// streamCreate adds the rows of the streams created during setup.
func (t *table) streamCreate() {
	rep := t.rep
	if c := rep.StreamCreate; c.Count > 0 {
		t.row("stream create (setup)", fmtMs(c.P50), "p50")
		t.row("  max", fmtMs(c.Max))
	}
}
