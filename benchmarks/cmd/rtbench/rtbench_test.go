package main

import (
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
		m := &CompareResult{On: CompareSide{RequestsSec: c.on}, Off: CompareSide{RequestsSec: c.off}, Target: targetMiddlewareCost}
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
	m := &CompareResult{On: CompareSide{RequestsSec: 1000}, Off: CompareSide{RequestsSec: 1050}, Cost: 0.05, Target: targetMiddlewareCost,
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
	var out strings.Builder
	printTable(&out, rep)
	for _, want := range []string{"single POST, metrics OFF", "single POST, metrics ON", "metrics cost (OFF/ON - 1)", "<= 5%", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
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
