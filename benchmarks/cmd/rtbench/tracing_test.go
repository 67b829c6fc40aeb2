package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestTracingFlags: tracing-off cannot run without a baseline build, so
// naming it without -tracing-baseline-bin (or with a path that is no file)
// fails at flag parsing, and "all" leaves it out instead.
func TestTracingFlags(t *testing.T) {
	bin := os.Args[0] // the test binary: a file that exists
	for _, c := range []struct {
		name    string
		args    []string
		err     string // "" when parsing must succeed
		has     []string
		hasNot  []string
		nPhases int // 0: not checked
	}{
		{name: "named without baseline", args: []string{"-phases", "tracing-off"}, err: "-tracing-baseline-bin"},
		{name: "named with baseline", args: []string{"-phases", "tracing-off", "-tracing-baseline-bin", bin}, has: []string{"tracing-off"}, nPhases: 1},
		{name: "baseline not a file", args: []string{"-phases", "tracing-off", "-tracing-baseline-bin", t.TempDir()}, err: "no such file"},
		{name: "sampled need no baseline", args: []string{"-phases", "tracing-1pct,tracing-full"}, has: []string{"tracing-1pct", "tracing-full"}, nPhases: 2},
		{name: "all without baseline", args: []string{"-phases", "all", "-redis", "redis://r:6379"}, has: []string{"tracing-1pct", "tracing-full", "quota"}, hasNot: []string{"tracing-off"}, nPhases: len(allPhases) - 1},
		{name: "all with baseline", args: []string{"-phases", "all", "-redis", "redis://r:6379", "-tracing-baseline-bin", bin}, has: []string{"tracing-off"}, nPhases: len(allPhases)},
		{name: "quota needs redis", args: []string{"-phases", "quota", "-redis", ""}, err: "-redis"},
		{name: "all without redis", args: []string{"-phases", "all", "-redis", ""}, hasNot: []string{"tracing-off", "quota"}, nPhases: len(allPhases) - 2},
		{name: "not by default", args: nil, hasNot: []string{"tracing-off", "tracing-1pct", "tracing-full"}},
		{name: "odd rounds", args: []string{"-tracing-rounds", "3"}, err: "-tracing-rounds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(append([]string{"-brokers", "x:9092"}, c.args...))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one about %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range c.has {
				if !o.Phases[p] {
					t.Errorf("phase %s not chosen: %v", p, o.Phases)
				}
			}
			for _, p := range c.hasNot {
				if o.Phases[p] {
					t.Errorf("phase %s chosen: %v", p, o.Phases)
				}
			}
			if c.nPhases > 0 && len(o.Phases) != c.nPhases {
				t.Errorf("%d phases, want %d: %v", len(o.Phases), c.nPhases, o.Phases)
			}
		})
	}
}

// TestTracingRows: tracing off and at 1% are judged on throughput against
// their targets; at 100% the cost row has no target and no verdict, and is
// not in rep.Targets. The sides are labelled by what they run.
func TestTracingRows(t *testing.T) {
	side := func(rps float64) CompareSide {
		return CompareSide{Requests: 1000, RequestsSec: rps, ServerCPUPerRequest: 300}
	}
	rep := &Report{
		TracingOff:     &CompareResult{On: side(1000), Off: side(1005), Cost: 0.005, Target: targetTracingOffCost},
		TracingSampled: &CompareResult{On: side(1000), Off: side(1080), Cost: 0.08, Target: targetTracingSampledCost, Spans: &SpanCount{Spans: 30, Exports: 6, Requests: 1001, PerRequest: 0.03}},
		TracingFull:    &CompareResult{On: side(1000), Off: side(1400), Cost: 0.4, NoTarget: true, Spans: &SpanCount{Spans: 3003, Exports: 9, Requests: 1001, PerRequest: 3}},
	}
	rep.evaluate()
	got := map[string]bool{}
	for _, tr := range rep.Targets {
		got[tr.Name] = tr.Pass
	}
	if want := map[string]bool{"tracing off cost": true, "tracing 1% cost": false}; len(got) != len(want) || got["tracing off cost"] != true || got["tracing 1% cost"] != false {
		t.Errorf("targets %+v, want %v", rep.Targets, want)
	}
	rows := map[string][]string{}
	for _, l := range rep.lines() {
		rows[l.label] = l.cells()
	}
	for _, want := range [][]string{
		{"single POST, previous build", "1,005", "req/s", "-", "-", "", ""},
		{"single POST, this build, tracing off", "1,000", "req/s", "1,005", "99.5%", "", ""},
		{"single POST, tracing off", "1,400", "req/s", "-", "-", "", ""},
		{"tracing off cost (OFF/ON - 1)", "+0.5%", "", "", "", "<= 1%", "PASS -0.5 pts"},
		{"tracing 1% cost (OFF/ON - 1)", "+8.0%", "", "", "", "<= 5%", "MISS +3.0 pts"},
		{"single POST, tracing 100%", "1,000", "req/s", "1,400", "71.4%", "", ""},
		{"tracing 100% cost (OFF/ON - 1)", "+40.0%", "", "", "", "none", "-"},
	} {
		if got := rows[want[0]]; !slices.Equal(got, want) {
			t.Errorf("row %q:\n got %q\nwant %q", want[0], got, want)
		}
	}
	tableHas(t, rep, "spans exported", "3,003", "3.000 per request, 9 exports", "0.030 per request, 6 exports")
}

// TestSampledTracingSpans: a sampled phase fails when ON exported nothing,
// and the 1% phase when ON exported like a higher sampling.
func TestSampledTracingSpans(t *testing.T) {
	ts := sampledTracings(&Report{})
	pct, full := ts[0], ts[1]
	for _, c := range []struct {
		t          sampledTracing
		spans      int64
		perRequest float64
		ok         bool
	}{
		{pct, 0, 0, false},
		{pct, 300, 0.03, true},
		{pct, 30000, 3, false},
		{full, 0, 0, false},
		{full, 30000, 3, true},
	} {
		err := c.t.judgeSpans(SpanCount{Spans: c.spans, PerRequest: c.perRequest})
		if (err == nil) != c.ok {
			t.Errorf("%s, %d spans, %.2f a request: err %v, want ok=%v", c.t.phase, c.spans, c.perRequest, err, c.ok)
		}
	}
	if pct.res == nil || full.res == nil || pct.noTarget || !full.noTarget || pct.target != targetTracingSampledCost {
		t.Errorf("phases %+v", ts)
	}
}

// TestServerEnvironLeavesOutOTEL: no server inherits rtbench's OTEL_*
// variables, so a shell with an endpoint set cannot trace every server, and
// a variant's own OTEL_* settings reach it.
func TestServerEnvironLeavesOutOTEL(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://leaked:4318")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "1")
	for _, v := range []serverVariant{
		{name: "off", auth: true, logLevel: "warn"},
		{name: "on", auth: true, logLevel: "warn", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_TRACES_SAMPLER=always_on"}},
	} {
		s := &server{Prefix: "p"}
		env, err := s.environ(options{Brokers: []string{"x:9092"}}, v, t.TempDir(), "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var otel []string
		for _, kv := range env {
			if strings.HasPrefix(kv, "OTEL_") {
				otel = append(otel, kv)
			}
		}
		if !slices.Equal(otel, v.env) {
			t.Errorf("%s: OTEL_* in the environment %q, want %q", v.name, otel, v.env)
		}
	}
}
