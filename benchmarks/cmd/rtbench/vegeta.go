package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The vegeta phase attacks the three write routes with vegeta (as a
// library), the way people who use vegeta measure an HTTP API: each route at
// a constant rate (open loop: requests go out on schedule whether or not
// earlier ones were answered, so a slow server shows as latency and as an
// achieved rate under the requested one) and at the maximum rate (-concurrency
// workers and connections, each sending back to back). The closed-loop phases
// before it stay as they are; this one adds the open-loop view and the bare
// net/http ceiling the single-event figure is judged against.
//
// Single-event POSTs and the bare server get the same 60-byte JSON body, the
// same attacker settings and the same duration, one right after the other, so
// the ratio compares the servers and not the loads.

// vegetaSingleBody is the single event of the vegeta attacks and the bare
// baseline: 60 bytes of JSON (a unit test holds it to that).
const vegetaSingleBody = `{"sensor":"rtbench-vegeta","temp":21.5,"seq":1234567,"ok":1}`

// targetSingleVsBare is the goal for single-event POSTs: at least 60%
// of what a bare net/http handler answers on the same machine.
const targetSingleVsBare = 0.60

// vegetaRoutes are the attacked routes, in the order they run, and the rate
// flag's keys.
var vegetaRoutes = []string{"single", "batch", "create"}

// parseVegetaRates reads -vegeta-rates: route=requests/s pairs, comma
// separated, for the constant-rate attacks. A route left out keeps its
// default; a rate of 0 skips that route's constant-rate attack.
func parseVegetaRates(s string, defaults map[string]int) (map[string]int, error) {
	rates := maps.Clone(defaults)
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("-vegeta-rates: %q is not route=rate", kv)
		}
		k = strings.TrimSpace(k)
		if !slices.Contains(vegetaRoutes, k) {
			return nil, fmt.Errorf("-vegeta-rates: unknown route %q (want some of %s)", k, strings.Join(vegetaRoutes, ","))
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-vegeta-rates: %s: want a whole number of requests/s, at least 0", kv)
		}
		rates[k] = n
	}
	return rates, nil
}

// defaultVegetaRates are requests/s well under what the routes take on the
// 2-core development machine (single-event POSTs ran at ~2,000 req/s closed
// loop there), so the constant-rate latencies are those of a server that
// keeps up.
var defaultVegetaRates = map[string]int{"single": 1000, "batch": 100, "create": 100}

// vegetaAttackSpec is one attack: where, how fast and what answer counts.
type vegetaAttackSpec struct {
	route   string // "single", "batch", "create", or "bare"
	rate    int    // requests/s; 0 is the maximum rate
	targets []vegeta.Target
	want    int // the expected status
	events  int // events per request, for events/s; 0 for creates
	pid     int // the process answering, for CPU accounting
}

// runVegeta is the vegeta phase on lt's server: the bare ceiling and the
// single-event POST at the maximum rate first, back to back, then the rest.
func (lt *loadTester) runVegeta(ctx context.Context, router routerWatch, brokerPid int) (*VegetaResult, error) {
	o := lt.o
	streams, err := lt.createStreams(ctx, "vegeta", o.Streams)
	if err != nil {
		return nil, err
	}
	hdr := func() http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		if lt.srv.APIKey != "" {
			h.Set("X-API-Key", lt.srv.APIKey)
		}
		return h
	}
	var single, batch []vegeta.Target
	batchBody := appendBody(nil, 0, o.Batch, time.Now())
	for _, s := range streams {
		url := lt.srv.URL + "/v1/streams/" + s + "/events"
		single = append(single, vegeta.Target{Method: http.MethodPost, URL: url, Body: []byte(vegetaSingleBody), Header: hdr()})
		batch = append(batch, vegeta.Target{Method: http.MethodPost, URL: url, Body: batchBody, Header: hdr()})
	}
	create := []vegeta.Target{{Method: http.MethodPost, URL: lt.srv.URL + "/v1/streams", Body: []byte(`{"name":"rtbench-vegeta-create"}`), Header: hdr()}}

	res := &VegetaResult{Seconds: o.VegetaDuration.Seconds(), Workers: o.Concurrency, Rates: o.VegetaRates}

	bare, err := startBare()
	if err != nil {
		return res, err
	}
	progress("[vegeta] bare net/http server pid %d on %s", bare.Pid(), bare.URL)
	bareTargets := []vegeta.Target{{Method: http.MethodPost, URL: bare.URL + "/v1/streams/x/events", Body: []byte(vegetaSingleBody), Header: hdr()}}
	a := lt.vegetaAttack(ctx, vegetaAttackSpec{route: "bare", targets: bareTargets, want: http.StatusAccepted, events: 1, pid: bare.Pid()}, brokerPid)
	bare.stop()
	res.Attacks = append(res.Attacks, a)
	res.BareMax = a.Throughput

	specs := []vegetaAttackSpec{
		{route: "single", targets: single, want: http.StatusAccepted, events: 1},
		{route: "single", rate: o.VegetaRates["single"], targets: single, want: http.StatusAccepted, events: 1},
		{route: "batch", targets: batch, want: http.StatusAccepted, events: o.Batch},
		{route: "batch", rate: o.VegetaRates["batch"], targets: batch, want: http.StatusAccepted, events: o.Batch},
		{route: "create", targets: create, want: http.StatusCreated},
		{route: "create", rate: o.VegetaRates["create"], targets: create, want: http.StatusCreated},
	}
	for i, sp := range specs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if i%2 == 1 && sp.rate == 0 {
			continue // this route's constant-rate attack was asked off (rate 0)
		}
		if i > 0 {
			// Start each attack with the router idle, so one attack's
			// backlog is not in the next one's figures.
			router.waitIdle(ctx, 3*time.Minute)
		}
		sp.pid = lt.srv.Pid()
		a := lt.vegetaAttack(ctx, sp, brokerPid)
		res.Attacks = append(res.Attacks, a)
		if sp.route == "single" && sp.rate == 0 {
			res.SingleMax = a.Throughput
		}
	}
	if res.BareMax > 0 {
		res.Ratio = res.SingleMax / res.BareMax
	}
	progress("[vegeta] single-event POST %s req/s vs bare net/http %s req/s: %.1f%% (target >= %.0f%%)",
		fmtInt(int64(res.SingleMax)), fmtInt(int64(res.BareMax)), res.Ratio*100, targetSingleVsBare*100)
	return res, nil
}

// vegetaAttack runs one attack for -vegeta-duration and sums it up. Every
// answer other than sp.want counts as an error, by status ("transport" when
// there was none).
func (lt *loadTester) vegetaAttack(ctx context.Context, sp vegetaAttackSpec, brokerPid int) VegetaAttack {
	o := lt.o
	mode := "max"
	if sp.rate > 0 {
		mode = "constant"
	}
	n := uint64(o.Concurrency)
	// The same connection settings for every attack: at most -concurrency
	// connections, kept alive. At the maximum rate, -concurrency workers
	// send back to back; at a constant rate vegeta starts workers as the
	// schedule needs them, up to 4× as many, which then wait for one of
	// the connections (that wait is in their latency, as it should be).
	opts := []func(*vegeta.Attacker){
		vegeta.Connections(o.Concurrency), vegeta.MaxConnections(o.Concurrency),
		vegeta.KeepAlive(true), vegeta.Timeout(30 * time.Second), vegeta.MaxBody(64 << 10),
	}
	pacer := vegeta.Pacer(vegeta.ConstantPacer{Freq: sp.rate, Per: time.Second})
	if sp.rate == 0 {
		opts = append(opts, vegeta.Workers(n), vegeta.MaxWorkers(n))
	} else {
		opts = append(opts, vegeta.Workers(min(n, 10)), vegeta.MaxWorkers(4*n))
	}
	atk := vegeta.NewAttacker(opts...)
	label := sp.route + " " + mode
	if sp.rate > 0 {
		label += " " + fmtInt(int64(sp.rate)) + "/s"
	}
	progress("[vegeta] %s: %s for %s", label, describeTargets(sp), o.VegetaDuration)

	var done, bad atomic.Int64
	stop := everySecond("vegeta "+label, func(_ time.Duration, last int64) (int64, string) {
		d := done.Load()
		return d, fmt.Sprintf("%s requests/s, %d errors", fmtInt(d-last), bad.Load())
	})
	stopWatch := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stopWatch()

	cpu := startCPU(sp.pid, brokerPid)
	var m vegeta.Metrics
	errs := errTally{}
	for r := range atk.Attack(vegeta.NewStaticTargeter(sp.targets...), pacer, o.VegetaDuration, label) {
		m.Add(r)
		done.Add(1)
		if int(r.Code) != sp.want {
			bad.Add(1)
			errs.add(vegetaError(r))
		}
	}
	m.Close()
	u := cpu.stop()
	stop()

	a := VegetaAttack{
		Route: sp.route, Mode: mode, Rate: sp.rate, EventsPerRequest: sp.events,
		Requests: int64(m.Requests), Seconds: m.Duration.Seconds(), WaitSeconds: m.Wait.Seconds(),
		SentPerSec: m.Rate, Throughput: m.Throughput, Success: m.Success,
		Latency:     vegetaLatency(m.Latencies, m.Requests),
		StatusCodes: m.StatusCodes, Errors: errs.report(), CPU: u,
	}
	a.EventsPerSec = a.Throughput * float64(sp.events)
	progress("[vegeta] %s: %s req/s answered %d (sent %s/s), p50 %s, p90 %s, p99 %s, max %s, %d errors %v; cpu: %s",
		label, fmtInt(int64(a.Throughput)), sp.want, fmtInt(int64(a.SentPerSec)), fmtMs(a.Latency.P50), fmtMs(a.Latency.P90),
		fmtMs(a.Latency.P99), fmtMs(a.Latency.Max), a.Errors.Total, a.Errors.ByKind, u)
	return a
}

// vegetaError turns a result that was not the expected answer into a
// sendError, so that errTally counts it by status.
func vegetaError(r *vegeta.Result) error {
	if r.Code == 0 {
		return &sendError{kind: "transport", detail: r.Error}
	}
	detail := strings.TrimSpace(string(r.Body))
	if len(detail) > 200 {
		detail = detail[:200]
	}
	return &sendError{kind: strconv.Itoa(int(r.Code)), detail: detail}
}

// vegetaLatency converts vegeta's latency metrics to milliseconds. Its
// percentiles are vegeta's own (a t-digest estimate), not nearest-rank.
func vegetaLatency(l vegeta.LatencyMetrics, n uint64) LatencySummary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return LatencySummary{Count: int(n), Mean: ms(l.Mean), P50: ms(l.P50), P90: ms(l.P90), P99: ms(l.P99), Max: ms(l.Max)}
}

func describeTargets(sp vegetaAttackSpec) string {
	what := map[string]string{
		"bare":   "bare net/http 202, 60-byte JSON",
		"single": "POST /v1/streams/{id}/events, one 60-byte event",
		"batch":  "POST /v1/streams/{id}/events, a batch",
		"create": "POST /v1/streams",
	}[sp.route]
	return fmt.Sprintf("%s, %d target(s)", what, len(sp.targets))
}
