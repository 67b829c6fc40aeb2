package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rtstream/rtstream/internal/otlpsink"
)

// The tracing phases answer issue 15's benchmark: OpenTelemetry tracing,
// off, may cost at most 1% of single-event POST throughput against the
// commit before it; with 1% of traces sampled and exported at most 5%; at
// 100% its cost is reported. Each is a comparison (compare.go) of two
// servers with an API key sent and LOG_LEVEL=warn:
//
//	tracing-off:  ON:  this build, no OTEL_* variable: tracing off
//	              OFF: -tracing-baseline-bin, a build of the commit before
//	                   tracing, so the figure is what the code costs when off
//	tracing-1pct: ON:  this build, OTEL_EXPORTER_OTLP_ENDPOINT at an OTLP
//	                   sink in rtbench's process, parentbased_traceidratio
//	                   at 0.01
//	              OFF: this build, tracing off
//	tracing-full: the same with always_on; no target
//
// No server inherits rtbench's own OTEL_* variables (server.go), so tracing
// is on exactly where a phase sets it, with the SDK's default batching
// (OTEL_BSP_*): what a deployment that only sets the endpoint and sampler
// gets. The sink decodes every export and keeps only counts; its CPU is in
// rtbench's figure, not the server's, as a collector's would be elsewhere.

// tracingBaseHowTo says how to build the tracing-off phase's OFF binary.
const tracingBaseHowTo = "git worktree add /tmp/prev <commit> && (cd /tmp/prev && go build -o /tmp/rtstream-prev ./cmd/rtstream)"

// tracingOffComparison is the tracing-off phase: this build with tracing
// off against the build before tracing.
func tracingOffComparison(o options) comparison {
	return comparison{
		phase:  "tracing-off",
		on:     serverVariant{name: "tracing-off", auth: true, logLevel: "warn"},
		off:    serverVariant{name: "tracing-prev", auth: true, logLevel: "warn", bin: o.TracingBaseBin},
		rounds: o.TracingRounds,
		target: targetTracingOffCost,
		check:  checkBuildsDiffer,
	}
}

// checkBuildsDiffer proves that the sides run different code: a baseline
// that is this very build would compare it with itself and always pass. It
// reports each side's commit, as go build stamped it, and whether it links
// the OpenTelemetry SDK.
func checkBuildsDiffer(_ context.Context, on, off *compareSide) (string, error) {
	onBin, offBin := on.srv.cmd.Path, off.srv.cmd.Path
	onSum, err := fileDigest(onBin)
	if err != nil {
		return "", err
	}
	offSum, err := fileDigest(offBin)
	if err != nil {
		return "", err
	}
	if onSum == offSum {
		return "", fmt.Errorf("-tracing-baseline-bin %s is the same build as ON's %s: build the commit before tracing (%s)", offBin, onBin, tracingBaseHowTo)
	}
	return fmt.Sprintf("different builds: ON %s; OFF %s", describeBuild(onBin), describeBuild(offBin)), nil
}

// fileDigest is the SHA-256 of the file at path.
func fileDigest(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("reading %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// describeBuild is a Go binary's commit (with "+changes" when built from a
// modified tree) and whether it links the OpenTelemetry SDK.
func describeBuild(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "no build info"
	}
	rev, modified := "commit unknown", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = "commit " + s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			modified = "+changes"
		}
	}
	sdk := "no OTel SDK"
	for _, d := range bi.Deps {
		if d.Path == "go.opentelemetry.io/otel/sdk" {
			sdk = "OTel SDK " + d.Version
		}
	}
	return rev + modified + ", " + sdk
}

// isFile says whether path names a file (not a directory) that exists.
func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// sampledTracing is a tracing phase whose ON side samples and exports.
type sampledTracing struct {
	phase string
	// sampler and arg are ON's OTEL_TRACES_SAMPLER and _ARG.
	sampler, arg string
	// target bounds the cost; with noTarget the cost is only reported.
	target   float64
	noTarget bool
	// maxPerRequest, when set, bounds the spans per request ON may export
	// over the phase: a 1% sampler that exports like 100% would make the
	// phase measure something else.
	maxPerRequest float64
	res           **CompareResult
}

// maxSpansPerRequest1Pct is tracing-1pct's maxPerRequest. A sampled send
// makes 3 spans (the HTTP request, the send to Kafka, the router's
// processing; no subscriber, so no delivery spans); 0.15 a request is five
// times what 1% of them make, and a twentieth of what 100% make.
const maxSpansPerRequest1Pct = 0.15

// sampledTracings are the sampled tracing phases, each with its place in
// rep.
func sampledTracings(rep *Report) []sampledTracing {
	return []sampledTracing{
		{phase: "tracing-1pct", sampler: "parentbased_traceidratio", arg: "0.01", target: targetTracingSampledCost,
			maxPerRequest: maxSpansPerRequest1Pct, res: &rep.TracingSampled},
		{phase: "tracing-full", sampler: "always_on", noTarget: true, res: &rep.TracingFull},
	}
}

// comparison is the phase's comparison, ON exporting to the sink at
// endpoint.
func (t sampledTracing) comparison(o options, sink *otlpsink.Sink, endpoint string) comparison {
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_TRACES_SAMPLER=" + t.sampler}
	if t.arg != "" {
		env = append(env, "OTEL_TRACES_SAMPLER_ARG="+t.arg)
	}
	return comparison{
		phase:    t.phase,
		on:       serverVariant{name: t.phase, auth: true, logLevel: "warn", env: env},
		off:      serverVariant{name: t.phase + "-off", auth: true, logLevel: "warn"},
		rounds:   o.TracingRounds,
		target:   t.target,
		noTarget: t.noTarget,
		check: func(ctx context.Context, on, _ *compareSide) (string, error) {
			return checkExports(ctx, sink, on)
		},
	}
}

// run starts the sink, runs the comparison, and counts what ON exported
// once runComparison has stopped both servers: ON flushes its last spans
// as it stops, so the count covers the whole phase.
func (t sampledTracing) run(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report, res *CompareResult) error {
	sink, endpoint, stop, err := otlpsink.Start(false)
	if err != nil {
		return err
	}
	defer stop()
	progress("[%s] OTLP sink on %s (counts spans, keeps none)", t.phase, endpoint)
	if err := runComparison(ctx, o, bin, kc, rep, t.comparison(o, sink, endpoint), res); err != nil {
		return err
	}
	// The check's POST is the one request not in the rounds or warm-up.
	sp := SpanCount{Spans: sink.Count(), Exports: sink.Requests(), Requests: res.On.WarmupRequests + 1 + res.On.Requests}
	sp.PerRequest = float64(sp.Spans) / float64(sp.Requests)
	res.Spans = &sp
	progress("[%s] the sink received %s spans in %s exports from ON: %.3f spans per request (%s POSTs answered, warm-up and check included)",
		t.phase, fmtInt(sp.Spans), fmtInt(sp.Exports), sp.PerRequest, fmtInt(sp.Requests))
	return t.judgeSpans(sp)
}

// judgeSpans says whether what ON exported fits its sampler: something,
// and no more than maxPerRequest.
func (t sampledTracing) judgeSpans(sp SpanCount) error {
	switch {
	case sp.Spans == 0:
		return errors.New("ON exported no span over the phase")
	case t.maxPerRequest > 0 && sp.PerRequest > t.maxPerRequest:
		return fmt.Errorf("ON exported %.3f spans per request, over the %.2f that %s at %s makes: not the sampling this phase measures",
			sp.PerRequest, t.maxPerRequest, t.sampler, t.arg)
	}
	return nil
}

// exportWait bounds the check's wait for ON's first export: the SDK's
// batch span processor sends every 5 s (OTEL_BSP_SCHEDULE_DELAY's default)
// or as soon as 512 spans wait.
const exportWait = 15 * time.Second

// checkExports proves that ON traces and exports: it POSTs one event with a
// sampled traceparent, which both samplers follow (a warm-up at 1% can
// sample nothing), and waits until the sink has spans. OFF has no OTLP
// endpoint, so every span the sink counts is ON's.
func checkExports(ctx context.Context, sink *otlpsink.Sink, on *compareSide) (string, error) {
	if err := postTraced(ctx, on); err != nil {
		return "", err
	}
	deadline := time.Now().Add(exportWait)
	for sink.Count() == 0 {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("ON exported no span within %s of a POST with a sampled traceparent", exportWait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Sprintf("ON exported %s spans by the end of the warm-up and a POST with a sampled traceparent; OFF has no OTLP endpoint",
		fmtInt(sink.Count())), nil
}

// postTraced sends one event to the side's server as part of a fresh,
// sampled W3C trace and checks the 202.
func postTraced(ctx context.Context, s *compareSide) error {
	body := appendBody(nil, -1, 1, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/streams/"+s.streams[0]+"/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+randomHex(16)+"-"+randomHex(8)+"-01")
	s.lt.auth(req)
	resp, err := s.lt.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST with a traceparent: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST with a traceparent: %s, want 202", resp.Status)
	}
	return nil
}
