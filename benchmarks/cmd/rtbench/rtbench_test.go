package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream/processor"
)

// The figures are only as good as the arithmetic and the SSE parsing behind
// them; these tests need no broker.

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
	s := latencySummary(d)
	if s.Count != 100 || s.Max != 100 || s.P50 != 50 || s.Mean != 50.5 {
		t.Errorf("summary %+v", s)
	}
}

func TestAppendBodyIsValidJSON(t *testing.T) {
	now := time.Unix(1795827745, 763496159)
	one := appendBody(nil, 1234567, 1, now)
	var ev struct{ Seq, T int64 }
	if err := json.Unmarshal(one, &ev); err != nil || ev.Seq != 1234567 || ev.T != now.UnixNano() {
		t.Fatalf("single event %s: %v %+v", one, err, ev)
	}
	if n := len(one); n < 90 || n > 110 {
		t.Errorf("event is %d bytes, want about 100", n)
	}
	batch := appendBody(one[:0], 100, 10, now)
	var evs []struct{ Seq int64 }
	if err := json.Unmarshal(batch, &evs); err != nil || len(evs) != 10 || evs[9].Seq != 109 {
		t.Fatalf("batch %s: %v", batch, err)
	}
}

func TestSSEParse(t *testing.T) {
	body := ": connected\n\n" +
		"id: 0-1-0\nevent: result\ndata: {\"stream_id\":\"s\",\"received_at\":\"x\",\"data\":{\"seq\":5,\"t\":1000}}\n\n" +
		": ping\n\n" +
		"id: 0-1-1\r\nevent: result\r\ndata: {\"data\":{\"seq\":6,\"t\":2000,\"pad\":\"" + strings.Repeat("x", 300<<10) + "\"}}\r\n\r\n" +
		"event: end\ndata: {\"reason\":\"stream deleted\"}\n\n"
	s := &sseSub{connected: make(chan struct{})}
	var n atomic.Int64
	err := s.parse(strings.NewReader(body), &n)
	if err == nil || err.Error() != "EOF" {
		t.Fatalf("parse ended with %v, want EOF", err)
	}
	select {
	case <-s.connected:
	default:
		t.Error("connected comment not seen")
	}
	if n.Load() != 2 || s.count != 2 || !slices.Equal(s.seqs, []int64{5, 6}) {
		t.Errorf("results %d/%d seqs %v", n.Load(), s.count, s.seqs)
	}
	if len(s.lats) != 2 || !s.ended {
		t.Errorf("lats %v ended %v", s.lats, s.ended)
	}
}

func TestMissingAndDuplicates(t *testing.T) {
	g := &sseGroup{subs: []*sseSub{{seqs: []int64{0, 1, 2, 2}, count: 4}, {seqs: []int64{10, 12}, count: 2}}}
	sum := g.summary()
	if sum.Received != 6 || sum.Distinct != 5 || sum.Duplicates != 1 {
		t.Errorf("summary %+v", sum)
	}
	if got := sum.missing([]seqRange{{0, 3}, {10, 3}}); got != 1 {
		t.Errorf("missing %d, want 1 (seq 11)", got)
	}
}

func TestFmtInt(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -52000: "-52,000"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestComparisonVerdict(t *testing.T) {
	for _, c := range []struct {
		metrics bool
		on, off float64
		pass    bool
	}{
		{false, 1000, 1099, true}, {false, 1000, 1101, false}, {false, 1200, 1000, true},
		{true, 1000, 1049, true}, {true, 1000, 1051, false}, {true, 1200, 1000, true},
	} {
		// A phase that ran has requests on both sides: its rows show, and
		// the cost row carries the target.
		m := &CompareResult{On: CompareSide{Requests: 1, RequestsSec: c.on}, Off: CompareSide{Requests: 1, RequestsSec: c.off}, Target: targetMiddlewareCost}
		m.Cost = m.Off.RequestsSec/m.On.RequestsSec - 1
		rep, name := &Report{Middleware: m}, "middleware cost"
		if c.metrics {
			m.Target = targetMetricsCost
			rep, name = &Report{Metrics: m}, "metrics cost"
		}
		rep.evaluate()
		if len(rep.Targets) != 1 || rep.Targets[0].Name != name || rep.Targets[0].Pass != c.pass {
			t.Errorf("%s: ON %v OFF %v: targets %+v, want pass=%v", name, c.on, c.off, rep.Targets, c.pass)
		}
	}
	m := &CompareResult{On: CompareSide{Requests: 1, RequestsSec: 1000}, Off: CompareSide{Requests: 1, RequestsSec: 1050}, Cost: 0.05, Target: targetMiddlewareCost,
		Rounds: []CompareRound{{On: true, RequestsSec: 800}, {RequestsSec: 1050}, {RequestsSec: 1050}, {On: true, RequestsSec: 1200}}}
	rep := &Report{Middleware: m}
	rep.evaluate()
	if !rep.Targets[0].Pass || !strings.Contains(rep.Targets[0].Margin, "differ by 50%: noise") {
		t.Errorf("noisy rounds: %+v", rep.Targets[0])
	}
	// The metrics phase's noise warning is against its own, smaller target.
	m = &CompareResult{On: CompareSide{Requests: 20000, RequestsSec: 1000}, Off: CompareSide{Requests: 20000, RequestsSec: 1000}, Target: targetMetricsCost,
		Rounds: []CompareRound{{On: true, RequestsSec: 1000}, {RequestsSec: 1000}, {RequestsSec: 1070}, {On: true, RequestsSec: 1000}}}
	rep = &Report{Metrics: m}
	rep.evaluate()
	if !rep.Targets[0].Pass || !strings.Contains(rep.Targets[0].Margin, "differ by 7%: noise") {
		t.Errorf("noisy metrics rounds: %+v", rep.Targets[0])
	}
	tableHas(t, rep, "single POST, metrics OFF", "single POST, metrics ON", "metrics cost (OFF/ON - 1)", "<= 5%", "PASS")
}

func TestMergeCPUAndErrors(t *testing.T) {
	u := CPUUsage{Seconds: 1, Server: 1}.merge(CPUUsage{Seconds: 3, Server: 0.5, Cores: 2})
	if u.Seconds != 4 || u.Server != 0.625 || u.Cores != 2 {
		t.Errorf("merged cpu %+v", u)
	}
	e := ErrorReport{}.merge(ErrorReport{Total: 2, ByKind: map[string]int64{"503": 2}, Examples: []string{"a", "b"}})
	e = e.merge(ErrorReport{Total: 3, ByKind: map[string]int64{"503": 1, "transport": 2}, Examples: []string{"c", "d"}})
	if e.Total != 5 || e.ByKind["503"] != 3 || e.ByKind["transport"] != 2 || len(e.Examples) != 3 {
		t.Errorf("merged errors %+v", e)
	}
}

func TestComparisonOrder(t *testing.T) {
	var got []bool
	for i := range 8 {
		got = append(got, thueMorseOn(i))
	}
	// ON OFF OFF ON, then the mirror: each half has two of each.
	if want := []bool{true, false, false, true, false, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestSSEParseKeepsCursorsAndStops(t *testing.T) {
	body := ": connected\n\n" +
		"id: 3-10-0\nevent: result\ndata: {\"data\":{\"seq\":1,\"t\":5}}\n\n" +
		"id: 3-11-0\nevent: result\ndata: {\"data\":{\"seq\":2,\"t\":6}}\n\n" +
		"id: 3-11-1\nevent: result\ndata: {\"data\":{\"seq\":3,\"t\":7}}\n\n"
	s := &sseSub{connected: make(chan struct{}), keepIDs: true, stopAt: 2, reached: make(chan struct{})}
	var n atomic.Int64
	_ = s.parse(strings.NewReader(body), &n)
	if !slices.Equal(s.ids, []string{"3-10-0", "3-11-0", "3-11-1"}) {
		t.Errorf("ids %v", s.ids)
	}
	select {
	case <-s.reached:
	default:
		t.Fatal("reached not closed at the 2nd result")
	}
	if s.reachedAt.IsZero() || s.connectedAt.IsZero() {
		t.Errorf("reachedAt %v connectedAt %v", s.reachedAt, s.connectedAt)
	}
	p := preparedStream{ids: s.ids, seqs: s.seqs}
	cursor, want := p.after(1)
	if cursor != "3-11-0" || !slices.Equal(want, []int64{3}) {
		t.Errorf("after(1) = %q %v", cursor, want)
	}
}

func TestParseResumesAndPath(t *testing.T) {
	text := "# HELP rtstream_resumes_total x\n# TYPE rtstream_resumes_total counter\n" +
		"rtstream_resumes_total{source=\"history\"} 3\n" +
		"rtstream_resumes_total{source=\"kafka\"} 1.001e+03\n" +
		"rtstream_resumes_totally_other 9\n"
	got, err := parseResumes(strings.NewReader(text))
	if err != nil || got["history"] != 3 || got["kafka"] != 1001 || len(got) != 2 {
		t.Fatalf("parseResumes = %v, %v", got, err)
	}
	for _, c := range []struct {
		before, after map[string]int64
		want          string
	}{
		{map[string]int64{"kafka": 1}, map[string]int64{"kafka": 2, "history": 3}, "mixed"},
		{map[string]int64{"kafka": 1, "history": 3}, map[string]int64{"kafka": 1001, "history": 3}, "kafka"},
		{nil, map[string]int64{"history": 1}, "history"},
		{map[string]int64{"history": 1}, map[string]int64{"history": 1}, "none"},
	} {
		if got := resumePath(countDelta(c.before, c.after)); got != c.want {
			t.Errorf("%v -> %v: path %q, want %q", c.before, c.after, got, c.want)
		}
	}
}

func TestLatencyBetween(t *testing.T) {
	base := time.Unix(100, 0)
	var samples []latencySample
	for i := range 10 {
		samples = append(samples, latencySample{sent: base.Add(time.Duration(i) * time.Second).UnixNano(), lat: time.Duration(i+1) * time.Millisecond})
	}
	l := latencyBetween(samples, base.Add(2*time.Second), base.Add(5*time.Second))
	if l.Count != 3 || l.P50 != 4 || l.Max != 5 {
		t.Errorf("window [2s, 5s): %+v", l)
	}
}

// The processors phase's map must hand seq and t back exactly, as integers:
// the SSE reader finds them by search, and a t in float notation would make
// every latency of the ON side garbage.
func TestProcessorKeepsSeqAndTime(t *testing.T) {
	prog, err := processor.Compile(procFilter, procMap)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1795827745, 763496159)
	ev := appendBody(nil, 1234567, 1, now)
	out, keep, err := prog.Eval(processor.Event{ID: "e", ReceivedAt: now, Data: ev})
	if err != nil || !keep {
		t.Fatalf("eval: keep %v err %v", keep, err)
	}
	seq, ok1 := intField(out, `"seq":`)
	ts, ok2 := intField(out, `"t":`)
	if !ok1 || !ok2 || seq != 1234567 || ts != now.UnixNano() || bytes.Contains(out, []byte("pad\":")) {
		t.Errorf("map made %s", out)
	}
	page := []byte(`{"results":[{"cursor":"1-2-0","data":` + string(out) + `}],"next":"1-2-0"}`)
	if _, err := mappedShape(page); err != nil {
		t.Errorf("mappedShape of the map's own output: %v", err)
	}
	if _, err := mappedShape([]byte(`{"results":[{"data":` + string(ev) + `}]}`)); err == nil {
		t.Error("mappedShape accepted an unmapped event")
	}
	var p struct{ Filter, Map string }
	if err := json.Unmarshal([]byte(processorJSON()), &p); err != nil || p.Filter != procFilter || p.Map != procMap {
		t.Errorf("processorJSON %s: %v", processorJSON(), err)
	}
}

func TestResumeAndProcessorVerdicts(t *testing.T) {
	rep := &Report{
		Resume: &ResumeResult{
			Kafka:   ResumeRun{Expected: "kafka", Tries: []ResumeTry{{Seconds: 0.4, Path: "kafka", Exact: true}, {Seconds: 0.9, Path: "kafka", Exact: true}}},
			History: ResumeRun{Expected: "history", Tries: []ResumeTry{{Seconds: 0.1, Path: "kafka", Exact: true}}},
			Burst: &ResumeBurst{Resumers: 10, Completed: 10, Path: "kafka",
				Quiet: LatencySummary{Count: 100, P99: 10}, During: LatencySummary{Count: 50, P99: 21}},
		},
		Processors: &ProcessorsResult{Target: targetProcessorsCost, On: ProcSide{Rounds: 2, EventsPerSec: 1000}, Off: ProcSide{Rounds: 2, EventsPerSec: 1150}},
	}
	rep.Resume.Kafka.summarize()
	rep.Resume.History.summarize()
	rep.Resume.Burst.Ratio = rep.Resume.Burst.During.P99 / rep.Resume.Burst.Quiet.P99
	rep.Processors.Cost = rep.Processors.Off.EventsPerSec/rep.Processors.On.EventsPerSec - 1
	rep.evaluate()
	want := map[string]bool{
		"resume 10k from kafka":        true,  // slowest 0.9 s
		"resume 10k from history":      false, // fast, but it took the Kafka path
		"live p99 during resume burst": false, // ×2.1
		"processors cost":              true,  // 15%
	}
	if len(rep.Targets) != len(want) {
		t.Fatalf("targets %+v", rep.Targets)
	}
	for _, tr := range rep.Targets {
		if w, ok := want[tr.Name]; !ok || w != tr.Pass {
			t.Errorf("%s: pass %v, want %v (%s)", tr.Name, tr.Pass, w, tr.Margin)
		}
	}
	if rep.Resume.Kafka.Seconds != 0.9 || rep.Resume.Kafka.Fastest != 0.4 {
		t.Errorf("kafka run %+v", rep.Resume.Kafka)
	}
	tableHas(t, rep, "resume 10k, from Kafka", "live p99, 10 resumes at once", "x2.10", "processors cost (OFF/ON - 1)", "+15.0%")
}

func TestParsePhases(t *testing.T) {
	o, err := parseFlags([]string{"-brokers", "x:9092"})
	if err != nil || o.Phases["resume"] || o.Phases["processors"] || !o.Phases["e2e"] {
		t.Errorf("default phases %v, %v", o.Phases, err)
	}
	o, err = parseFlags([]string{"-brokers", "x:9092", "-phases", "all", "-tracing-baseline-bin", os.Args[0], "-redis", "redis://r:6379"})
	if err != nil || len(o.Phases) != len(allPhases) {
		t.Errorf("all: %v, %v", o.Phases, err)
	}
	if _, err := parseFlags([]string{"-brokers", "x:9092", "-resume-back", "1000"}); err == nil {
		t.Error("-resume-back 1000 (inside the history) accepted")
	}
}
