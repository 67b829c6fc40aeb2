// Command rtbench measures rtstream against a real Kafka broker in one run:
// the raw Sarama producer as the ceiling for batch ingest, then the server
// (built from ./cmd/rtstream and started as a child process) under single-event
// sends, batch sends, end-to-end send→SSE throughput and paced send→SSE
// latency. It prints progress while it runs, a table at the end, and writes
// every figure as JSON.
//
// It is a report, not a test: timings never fail the run. It exits 1 only when
// something errored (the setup failed, or more than 1% of the requests of the
// run were answered with a non-2xx status or failed in transport).
//
//	go run ./benchmarks/cmd/rtbench -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gometrics "github.com/rcrowley/go-metrics"
)

// options are the command-line flags.
type options struct {
	Brokers     []string
	Duration    time.Duration
	Concurrency int
	Batch       int
	Rate        int
	// LatencyWarmup is -latency-warmup: uncounted sends before the
	// latency phase measures.
	LatencyWarmup time.Duration
	Streams       int
	MWRounds      int
	// MetricsRounds is -metrics-rounds, the metrics phase's MWRounds.
	MetricsRounds int
	// AuthzBaseBin is -authz-base-bin, the authz phase's OFF binary.
	AuthzBaseBin string
	// TracingBaseBin is -tracing-baseline-bin, the tracing-off phase's OFF
	// binary; TracingRounds the tracing phases' rounds.
	TracingBaseBin string
	TracingRounds  int
	// RedisURL is -redis, the Redis of the quota phase's two servers.
	RedisURL string
	// Resumers, ResumeBack, ResumeRate, ResumeStreams and ResumeReps shape
	// the resume phase; ProcRounds is the processors phase's rounds.
	Resumers      int
	ResumeBack    int
	ResumeRate    int
	ResumeStreams int
	ResumeReps    int
	ProcRounds    int
	// VegetaDuration is each vegeta attack's length; VegetaRates the
	// constant-rate attacks' requests/s by route.
	VegetaDuration time.Duration
	VegetaRates    map[string]int
	// SwarmSizes are the swarm's connection counts, one run each, over
	// SwarmStreams streams fed SwarmRate events/s for SwarmDuration;
	// SwarmPerProc connections per client process.
	SwarmSizes []int
	// FailoverSessions are the failover phase's session timeouts, one run
	// each.
	FailoverSessions []time.Duration
	SwarmStreams     int
	SwarmRate        int
	SwarmDuration    time.Duration
	SwarmPerProc     int
	JSONPath         string
	ServerBin        string
	Keep             bool
	Phases           map[string]bool
}

// allPhases are the phases in the order they run. serverPhases share one
// server; the resume and processors phases start one of their own each, the
// middleware, metrics, authz and tracing phases two. defaultPhases run
// without -phases: the resume, processors and swarm phases are left out, as
// they add minutes and thousands of connections, and the tracing phases, as
// they answer one issue's question (ask for them by name, or "all"). The
// swarm phase starts a server per size.
var (
	allPhases = []string{"baseline", "single", "batch", "e2e", "latency", "vegeta", "resume", "processors", "middleware", "metrics", "authz",
		"tracing-off", "tracing-1pct", "tracing-full", "quota", "swarm", "crashmarks", "failover"}
	defaultPhases = []string{"baseline", "single", "batch", "e2e", "latency", "vegeta", "middleware", "metrics", "authz"}
	serverPhases  = []string{"single", "batch", "e2e", "latency", "vegeta"}
)

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("rtbench", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("RTSTREAM_TEST_KAFKA_BROKERS"), "comma-separated Kafka bootstrap servers (default $RTSTREAM_TEST_KAFKA_BROKERS)")
	o := options{}
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each measured phase sends")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "workers of the single-event phase (and of the paced phase's sender pool)")
	fs.IntVar(&o.Batch, "batch", 100, "events per request in the batch and end-to-end phases")
	fs.IntVar(&o.Rate, "rate", 5000, "events per second of the latency phase, sent as batches of 10")
	fs.DurationVar(&o.LatencyWarmup, "latency-warmup", 2*time.Second, "the latency phase first sends at -rate for this long to streams of its own, uncounted, so that it measures a warm server (0: measure from a cold start)")
	fs.IntVar(&o.Streams, "streams", 16, "streams per phase (batch phases use one worker per stream)")
	fs.IntVar(&o.MWRounds, "mw-rounds", 4, "rounds of the middleware phase, alternating ON, OFF, OFF, ON, ...; even, -duration/(rounds/2) each")
	fs.IntVar(&o.MetricsRounds, "metrics-rounds", 4, "rounds of the metrics phase, like -mw-rounds")
	fs.StringVar(&o.AuthzBaseBin, "authz-base-bin", "", "an rtstream binary for the authz phase's OFF side (a build from before tenants); empty: this build with API_KEYS")
	fs.StringVar(&o.TracingBaseBin, "tracing-baseline-bin", "", "an rtstream binary built from the commit before tracing, the tracing-off phase's OFF side (required by it; without it -phases all leaves the phase out): "+tracingBaseHowTo)
	fs.IntVar(&o.TracingRounds, "tracing-rounds", 4, "rounds of each tracing phase, like -mw-rounds")
	fs.StringVar(&o.RedisURL, "redis", os.Getenv("RTSTREAM_TEST_REDIS_URL"), "Redis for the quota phase's servers (default $RTSTREAM_TEST_REDIS_URL; scripts/redis.sh start runs one)")
	fs.IntVar(&o.Resumers, "resumers", 1000, "SSE connections that resume at once in the resume phase's burst")
	fs.IntVar(&o.ResumeBack, "resume-back", 2000, "results back (at least; up to 199 more) each resumer of the burst starts")
	fs.IntVar(&o.ResumeRate, "resume-rate", 500, "events/s to the live subscriber's stream during the resume phase's burst")
	fs.IntVar(&o.ResumeStreams, "resume-streams", 4, "streams the burst's resumers share")
	fs.IntVar(&o.ResumeReps, "resume-reps", 3, "timed resumes of 10,000 results, from Kafka and from history each")
	fs.IntVar(&o.ProcRounds, "proc-rounds", 4, "rounds of the processors phase, alternating ON, OFF, OFF, ON, ...; even, -duration/(rounds/2) each")
	fs.DurationVar(&o.VegetaDuration, "vegeta-duration", 5*time.Second, "how long each vegeta attack runs")
	vrates := fs.String("vegeta-rates", "", "requests/s of the constant-rate vegeta attacks, as route=rate pairs (routes single,batch,create; 0 skips one); default single=1000,batch=100,create=100")
	sizes := fs.String("swarm", "1000,5000,20000", "SSE connections of the swarm phase, one run per comma-separated size")
	sessions := fs.String("failover-sessions", "6s,3s", "session timeouts of the failover phase's router group, one run each")
	fs.IntVar(&o.SwarmStreams, "swarm-streams", 100, "streams the swarm's connections are spread over")
	fs.IntVar(&o.SwarmRate, "swarm-rate", 1500, "events/s sent to the swarm's streams (in POSTs of 10, round robin); each reaches every subscriber of its stream")
	fs.DurationVar(&o.SwarmDuration, "swarm-duration", 10*time.Second, "how long the swarm's feed runs per size")
	fs.IntVar(&o.SwarmPerProc, "swarm-per-proc", 5000, "SSE connections per swarm client process")
	fs.StringVar(&o.JSONPath, "json", "out/bench.json", "where to write the figures as JSON")
	fs.StringVar(&o.ServerBin, "server-bin", "", "a prebuilt rtstream binary (default: build ./cmd/rtstream into a temp dir)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temp dir (server binary, data and log) and the server's topics after the run")
	phases := fs.String("phases", strings.Join(defaultPhases, ","), "comma-separated phases to run, or all (a partial run cannot check every target); of "+strings.Join(allPhases, ","))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.Brokers = append(o.Brokers, b)
		}
	}
	var err error
	if o.VegetaRates, err = parseVegetaRates(*vrates, defaultVegetaRates); err != nil {
		return o, err
	}
	if o.FailoverSessions, err = parseDurations(*sessions); err != nil {
		return o, err
	}
	if o.SwarmSizes, err = parseSizes(*sizes); err != nil {
		return o, err
	}
	if o.Phases, err = parsePhases(*phases, o.TracingBaseBin != "", o.RedisURL != ""); err != nil {
		return o, err
	}
	return o, o.validate()
}

// validate reports the first option out of its range.
func (o options) validate() error {
	switch {
	case len(o.Phases) == 0:
		return errors.New("-phases: no phase")
	case len(o.Brokers) == 0:
		return errors.New("no Kafka brokers: set -brokers or RTSTREAM_TEST_KAFKA_BROKERS")
	case o.Duration <= 0:
		return errors.New("-duration must be positive")
	case o.Concurrency < 1 || o.Batch < 1 || o.Rate < 10 || o.Streams < 1:
		return errors.New("-concurrency, -batch and -streams must be at least 1, -rate at least 10")
	case o.MWRounds < 2 || o.MWRounds%2 != 0:
		return errors.New("-mw-rounds must be even and at least 2")
	case o.MetricsRounds < 2 || o.MetricsRounds%2 != 0:
		return errors.New("-metrics-rounds must be even and at least 2")
	case o.TracingRounds < 2 || o.TracingRounds%2 != 0:
		return errors.New("-tracing-rounds must be even and at least 2")
	case o.Phases["tracing-off"] && o.TracingBaseBin == "":
		return errors.New("-phases tracing-off needs -tracing-baseline-bin, a build of the commit before tracing: " + tracingBaseHowTo)
	case o.Phases["tracing-off"] && !isFile(o.TracingBaseBin):
		return fmt.Errorf("-tracing-baseline-bin %s: no such file", o.TracingBaseBin)
	case o.Phases["quota"] && o.RedisURL == "":
		return errors.New("-phases quota needs -redis (or RTSTREAM_TEST_REDIS_URL): the byte-rate quota is shared through Redis")
	case o.ProcRounds < 2 || o.ProcRounds%2 != 0:
		return errors.New("-proc-rounds must be even and at least 2")
	case o.Resumers < 1 || o.ResumeStreams < 1 || o.ResumeReps < 1 || o.ResumeRate < 10:
		return errors.New("-resumers, -resume-streams and -resume-reps must be at least 1, -resume-rate at least 10")
	case o.VegetaDuration <= 0:
		return errors.New("-vegeta-duration must be positive")
	case o.SwarmStreams < 1 || o.SwarmRate < swarmBatch || o.SwarmDuration <= 0 || o.SwarmPerProc < 1:
		return fmt.Errorf("-swarm-streams and -swarm-per-proc must be at least 1, -swarm-rate at least %d, -swarm-duration positive", swarmBatch)
	case o.ResumeBack <= 1024:
		return errors.New("-resume-back must be over 1024: a cursor fewer records back is in the history, and the burst is of resumes from Kafka")
	}
	return nil
}

// parsePhases reads -phases: names of allPhases, or "all": every phase that
// can run, so tracing-off only with a baseline build (tracingBase) and quota
// only with a Redis (redis).
func parsePhases(list string, tracingBase, redis bool) (map[string]bool, error) {
	phases := map[string]bool{}
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if p == "all" {
			for _, q := range allPhases {
				if (q != "tracing-off" || tracingBase) && (q != "quota" || redis) {
					phases[q] = true
				}
			}
			continue
		}
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("-phases: unknown phase %q (want some of %s)", p, strings.Join(allPhases, ","))
		}
		phases[p] = true
	}
	return phases, nil
}

func main() {
	// The server turns Sarama's go-metrics off (cmd/rtstream); the raw
	// producer baseline runs with the same client settings.
	gometrics.UseNilMetrics = true
	if url := os.Getenv(liveHelperEnv); url != "" {
		os.Exit(liveHelperMain(url))
	}
	if addr := os.Getenv(bareHTTPEnv); addr != "" {
		os.Exit(bareHTTPMain(addr))
	}
	if cfg := os.Getenv(swarmChildEnv); cfg != "" {
		os.Exit(swarmChildMain(cfg))
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "rtbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, opts)
	os.Exit(code)
}

// run does the whole benchmark and returns the exit code. Each phase's figures
// land in rep even when a later phase fails, so a partial report is written.
func run(ctx context.Context, o options) int {
	start := time.Now()
	rep := &Report{
		StartedAt: start.UTC(),
		Config: ReportConfig{
			Brokers: o.Brokers, Duration: o.Duration.String(), Concurrency: o.Concurrency,
			Batch: o.Batch, Rate: o.Rate, Streams: o.Streams, MWRounds: o.MWRounds, MetricsRounds: o.MetricsRounds,
			Resumers: o.Resumers, ResumeBack: o.ResumeBack, ResumeRate: o.ResumeRate, ResumeStreams: o.ResumeStreams,
			ResumeReps: o.ResumeReps, ProcRounds: o.ProcRounds, TracingRounds: o.TracingRounds, TracingBaselineBin: o.TracingBaseBin,
			VegetaDuration: o.VegetaDuration.String(), VegetaRates: o.VegetaRates,
			SwarmSizes: o.SwarmSizes, SwarmStreams: o.SwarmStreams, SwarmRate: o.SwarmRate, SwarmDuration: o.SwarmDuration.String(),
			GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		},
	}
	progress("rtbench: brokers %s, %s per phase, %d CPUs on this machine (broker, server and this client share them)",
		strings.Join(o.Brokers, ","), o.Duration, runtime.NumCPU())

	err := phases(ctx, o, rep)
	if err != nil {
		rep.Fatal = err.Error()
		progress("ERROR: %v", err)
	}
	rep.Elapsed = time.Since(start).Round(time.Millisecond).String()

	fmt.Println()
	printTable(os.Stdout, rep)
	if werr := writeJSON(o.JSONPath, rep); werr != nil {
		progress("ERROR: writing %s: %v", o.JSONPath, werr)
		return 1
	}
	progress("figures written to %s (run took %s)", o.JSONPath, rep.Elapsed)

	reqs, errs := rep.requestTotals()
	switch {
	case err != nil:
		return 1
	case reqs > 0 && float64(errs) > 0.01*float64(reqs):
		progress("ERROR: %d of %d requests failed (over 1%%)", errs, reqs)
		return 1
	}
	return 0
}

// phases runs the baseline, then the four server phases on one server, each
// on fresh streams so that one phase's results never reach another phase's
// subscribers, then the resume and processors phases on a server of their
// own each, then the middleware and metrics phases on two servers each.
func phases(ctx context.Context, o options, rep *Report) error {
	kc, err := newKafkaObserver(o.Brokers)
	if err != nil {
		return fmt.Errorf("connect to Kafka: %w", err)
	}
	defer kc.Close()

	brokerPid := findBroker(o.Brokers)
	defer func() {
		if now := findBroker(o.Brokers); now != brokerPid {
			rep.BrokerRestarted = true
			progress("WARNING: the broker's process changed during the run (pid %d, now %d): figures are not comparable", brokerPid, now)
		}
	}()

	if o.Phases["baseline"] {
		progress("[baseline] raw Sarama AsyncProducer, ~100-byte records, 100 keys, 12 partitions")
		base, err := runBaseline(ctx, kc, o.Duration)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = base
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if o.Phases["crashmarks"] {
		if err := runCrashMarksPhase(ctx, o, kc, rep); err != nil {
			return fmt.Errorf("crashmarks: %w", err)
		}
	}
	onServer := slices.ContainsFunc(serverPhases, func(p string) bool { return o.Phases[p] })
	ownServers := []string{"resume", "processors", "middleware", "metrics", "authz", "tracing-off", "tracing-1pct", "tracing-full", "quota", "swarm", "failover"}
	if !onServer && !slices.ContainsFunc(ownServers, func(p string) bool { return o.Phases[p] }) {
		return nil
	}
	bin, cleanup, err := buildServer(ctx, o)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer cleanup()
	if onServer {
		if err := runServerPhases(ctx, o, bin, kc, rep); err != nil {
			return err
		}
	}
	if o.Phases["resume"] {
		if err := runResumePhase(ctx, o, bin, kc, rep); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	if o.Phases["processors"] {
		if err := runProcessorsPhase(ctx, o, bin, kc, rep); err != nil {
			return fmt.Errorf("processors: %w", err)
		}
	}
	if err := runComparisons(ctx, o, bin, kc, rep); err != nil {
		return err
	}
	if o.Phases["swarm"] {
		if err := runSwarmPhase(ctx, o, bin, kc, rep); err != nil {
			return fmt.Errorf("swarm: %w", err)
		}
	}
	if o.Phases["failover"] {
		if err := runFailoverPhase(ctx, o, bin, kc, rep); err != nil {
			return fmt.Errorf("failover: %w", err)
		}
	}
	return nil
}

// runComparisons runs the comparison phases asked for, each into its
// place in the report; the sampled tracing phases, which need an OTLP sink
// around theirs, last.
func runComparisons(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	for _, c := range []struct {
		phase string
		cmp   func(options) comparison
		res   **CompareResult
	}{
		{"middleware", middlewareComparison, &rep.Middleware},
		{"metrics", metricsComparison, &rep.Metrics},
		{"authz", authzComparison, &rep.Authz},
		{"tracing-off", tracingOffComparison, &rep.TracingOff},
		{"quota", quotaComparison, &rep.Quota},
	} {
		if !o.Phases[c.phase] {
			continue
		}
		*c.res = &CompareResult{}
		if err := runComparison(ctx, o, bin, kc, rep, c.cmp(o), *c.res); err != nil {
			return fmt.Errorf("%s: %w", c.phase, err)
		}
	}
	for _, t := range sampledTracings(rep) {
		if !o.Phases[t.phase] {
			continue
		}
		*t.res = &CompareResult{}
		if err := t.run(ctx, o, bin, kc, rep, *t.res); err != nil {
			return fmt.Errorf("%s: %w", t.phase, err)
		}
	}
	return nil
}

// stopServer stops srv and, unless -keep, deletes its topics and consumer
// group: each server makes four topics and a group, and a dev broker would
// otherwise collect them run after run.
func stopServer(srv *server, kc *kafkaObserver, o options) ServerStop {
	progress("[%s] stopping (SIGTERM)", srv.Name)
	st := srv.Stop(20 * time.Second)
	if st.Warnings > 0 {
		progress("[%s] log had %d warning/error lines; first ones:\n  %s", srv.Name, st.Warnings, strings.Join(st.FirstWarnings, "\n  "))
	}
	if !o.Keep {
		for _, suffix := range []string{".events", ".results", ".streams", ".poison", ".marks"} {
			kc.deleteTopic(srv.Prefix + suffix)
		}
		_ = kc.admin.DeleteConsumerGroup(srv.Prefix + "-router")
	}
	return st
}

// runServerPhases starts the server (API key, no access log) and runs the
// chosen ones of the single, batch, e2e and latency phases on it, in order.
func runServerPhases(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	srv, err := startServer(ctx, o, bin, serverVariant{auth: true, logLevel: "warn"})
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer func() { rep.ServerStop = stopServer(srv, kc, o) }()
	lt := newLoadTester(srv, o)
	defer lt.Close()
	defer func() {
		rep.StreamCreate = latencySummary(sortedCopy(lt.creates))
		if rep.StreamCreate.Count > 0 {
			progress("[server] POST /v1/streams took p50 %s, max %s over %d creates",
				fmtMs(rep.StreamCreate.P50), fmtMs(rep.StreamCreate.Max), rep.StreamCreate.Count)
		}
	}()
	router := routerWatch{kc: kc, group: srv.Prefix + "-router", topic: srv.Prefix + ".events"}

	type phase struct {
		name string
		run  func(context.Context) error
	}
	list := []phase{
		{"single", func(ctx context.Context) (err error) { rep.Single, err = lt.singleEvents(ctx); return }},
		{"batch", func(ctx context.Context) (err error) {
			rep.Batch, err = lt.batchIngest(ctx)
			if rep.Batch != nil && rep.Baseline != nil && rep.Baseline.EventsPerSec > 0 {
				rep.Batch.Ratio = rep.Batch.EventsPerSec / rep.Baseline.EventsPerSec
			}
			return
		}},
		{"e2e", func(ctx context.Context) (err error) { rep.E2E, err = lt.endToEnd(ctx); return }},
		{"latency", func(ctx context.Context) (err error) { rep.Latency, err = lt.latency(ctx); return }},
		{"vegeta", func(ctx context.Context) (err error) {
			rep.Vegeta, err = lt.runVegeta(ctx, router, findBroker(o.Brokers))
			return
		}},
	}
	ran, prev := 0, ""
	for _, p := range list {
		if !o.Phases[p.name] {
			continue
		}
		if ran++; ran > 1 {
			// The router works through what the previous phase left in
			// the events topic; start the next phase on an idle pipeline.
			d := router.waitIdle(ctx, 3*time.Minute)
			d.After = prev
			rep.RouterDrains = append(rep.RouterDrains, d)
		}
		prev = p.name
		cpu := startCPU(srv.Pid(), findBroker(o.Brokers))
		err := p.run(ctx)
		u := cpu.stop()
		rep.CPU = append(rep.CPU, PhaseCPU{Phase: p.name, Usage: u})
		progress("[%s] cpu: %s", p.name, u)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// progress prints one timestamped progress line to stderr, so that stdout
// carries only the table.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// parseSizes reads -swarm: comma-separated connection counts, each at least 1.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-swarm: %q is not a connection count", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-swarm: no size")
	}
	return out, nil
}
