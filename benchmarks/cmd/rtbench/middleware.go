package main

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"net/http"
	"slices"
	"time"
)

// The middleware phase answers issue 3: auth, rate limiting and the access log
// together may cost at most 10% of single-event POST throughput. It runs the
// single-event load against two servers started the same way but for:
//
//	ON:  API_KEYS set and the key sent, LOG_LEVEL=info (one JSON access log
//	     line per request, written to the server's log file)
//	OFF: AUTH_DISABLED=true and no key sent, LOG_LEVEL=warn (no access log)
//
// Both run the rate limiter at a limit no request reaches: the server has no
// setting that turns it off. The per-IP limit runs in both, so its cost is
// not in the difference; the per-key limit runs in ON only, as the server
// skips it for the anonymous principal of AUTH_DISABLED.
//
// The -mw-rounds rounds (even, 4 by default) alternate in the Thue-Morse
// order ON, OFF, OFF, ON, OFF, ON, ON, OFF, ..., each -duration/(rounds/2)
// long, so each variant sends for -duration in all and a drift that is
// linear in time (a warming broker, a neighbour that starts or stops) weighs
// on both alike; more rounds also average out more of a busy machine's
// noise.
func middlewareOn(round int) bool { return bits.OnesCount(uint(round))%2 == 0 }

// middlewareSide is one of the two servers and what was sent to it.
type middlewareSide struct {
	on      bool
	srv     *server
	lt      *loadTester
	streams []string
	router  routerWatch

	requests int64
	elapsed  time.Duration
	lats     []time.Duration
	errs     ErrorReport
	cpu      CPUUsage
	serverS  float64 // server CPU seconds while this side was loaded
}

func (s *middlewareSide) label() string {
	if s.on {
		return "mw-on"
	}
	return "mw-off"
}

// runMiddleware starts the ON and OFF servers, warms each up, runs the
// alternating rounds and fills rep.Middleware.
func runMiddleware(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	round := o.Duration / time.Duration(o.MWRounds/2)
	res := &MiddlewareResult{Workers: o.Concurrency, RoundSeconds: round.Seconds()}
	rep.Middleware = res
	sides := make(map[bool]*middlewareSide, 2)
	for _, on := range []bool{true, false} {
		v := serverVariant{name: "mw-off", logLevel: "warn"}
		if on {
			v = serverVariant{name: "mw-on", auth: true, logLevel: "info"}
		}
		srv, err := startServer(ctx, o, bin, v)
		if err != nil {
			return fmt.Errorf("start %s: %w", v.name, err)
		}
		defer func() {
			if on {
				res.On.Stop = stopServer(srv, kc, o)
			} else {
				res.Off.Stop = stopServer(srv, kc, o)
			}
		}()
		s := &middlewareSide{on: on, srv: srv, lt: newLoadTester(srv, o),
			router: routerWatch{kc: kc, group: srv.Prefix + "-router", topic: srv.Prefix + ".events"}}
		defer s.lt.Close()
		if s.streams, err = s.lt.createStreams(ctx, s.label(), o.Streams); err != nil {
			return err
		}
		sides[on] = s
	}
	// A request without a key must be refused by ON, or ON is not
	// measuring auth at all.
	status, err := unauthenticatedStatus(ctx, sides[true])
	if err != nil {
		return err
	}
	res.OnUnauthenticatedStatus = status
	if status != http.StatusUnauthorized {
		return fmt.Errorf("ON server answered %d, not 401, to a POST without a key", status)
	}

	// Warm up both (connections, producer metadata), uncounted, then wait
	// until both routers are idle.
	warm := min(time.Second, o.Duration/4)
	for _, on := range []bool{true, false} {
		s := sides[on]
		s.lt.closedLoop(ctx, s.label()+" warm-up", o.Concurrency, 1, s.streams, warm)
	}
	sides[true].router.waitIdle(ctx, time.Minute)
	sides[false].router.waitIdle(ctx, time.Minute)

	brokerPid := findBroker(o.Brokers)
	progress("[middleware] %d workers, one event per POST, %d rounds of %s: ON, OFF, OFF, ON, ...", o.Concurrency, o.MWRounds, round)
	for i := range o.MWRounds {
		on := middlewareOn(i)
		s := sides[on]
		if i > 0 {
			// Start each round with the previous round's router idle.
			sides[middlewareOn(i-1)].router.waitIdle(ctx, time.Minute)
		}
		cpu := startCPU(s.srv.Pid(), brokerPid)
		st := s.lt.closedLoop(ctx, s.label(), o.Concurrency, 1, s.streams, round)
		u := cpu.stop()
		s.add(st, u)
		r := MiddlewareRound{
			Middleware:  on,
			Requests:    st.okRequests.Load(),
			Seconds:     st.elapsed.Seconds(),
			RequestsSec: float64(st.okRequests.Load()) / st.elapsed.Seconds(),
			Errors:      st.errs.total(),
		}
		res.Rounds = append(res.Rounds, r)
		progress("[middleware] round %d %s: %s requests/s, %d errors; cpu: %s", i+1, s.label(), fmtInt(int64(r.RequestsSec)), r.Errors, u)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	sides[middlewareOn(o.MWRounds-1)].router.waitIdle(ctx, time.Minute)

	res.On, res.Off = sides[true].result(), sides[false].result()
	rep.CPU = append(rep.CPU, PhaseCPU{Phase: "mw-on", Usage: sides[true].cpu}, PhaseCPU{Phase: "mw-off", Usage: sides[false].cpu})
	if res.On.RequestsSec > 0 {
		res.Cost = res.Off.RequestsSec/res.On.RequestsSec - 1
	}
	if res.Off.ServerCPUPerRequest > 0 {
		res.CPUCost = res.On.ServerCPUPerRequest/res.Off.ServerCPUPerRequest - 1
	}
	progress("[middleware] ON %s requests/s, OFF %s requests/s: cost %+.1f%% of throughput; server CPU per request %.0f µs vs %.0f µs (%+.1f%%)",
		fmtInt(int64(res.On.RequestsSec)), fmtInt(int64(res.Off.RequestsSec)), res.Cost*100,
		res.On.ServerCPUPerRequest, res.Off.ServerCPUPerRequest, res.CPUCost*100)
	return nil
}

// add folds one round into the side's totals.
func (s *middlewareSide) add(st *sendStats, u CPUUsage) {
	s.requests += st.okRequests.Load()
	s.elapsed += st.elapsed
	s.lats = append(s.lats, st.latencies...)
	s.errs = s.errs.merge(st.errs.report())
	s.cpu = s.cpu.merge(u)
	s.serverS += u.Server * u.Seconds
}

func (s *middlewareSide) result() MiddlewareSide {
	slices.Sort(s.lats)
	r := MiddlewareSide{
		Requests: s.requests,
		Seconds:  s.elapsed.Seconds(),
		Latency:  latencySummary(s.lats),
		Errors:   s.errs,
		CPU:      s.cpu,
	}
	if s.elapsed > 0 {
		r.RequestsSec = float64(s.requests) / s.elapsed.Seconds()
	}
	if s.requests > 0 {
		r.ServerCPUPerRequest = s.serverS / float64(s.requests) * 1e6
	}
	return r
}

// unauthenticatedStatus sends one event without a key to the side's server
// and returns the status it answered.
func unauthenticatedStatus(ctx context.Context, s *middlewareSide) (int, error) {
	body := appendBody(nil, -1, 1, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/streams/"+s.streams[0]+"/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.lt.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// merge adds b's counts to e's and keeps the first three examples.
func (e ErrorReport) merge(b ErrorReport) ErrorReport {
	e.Total += b.Total
	for k, n := range b.ByKind {
		if e.ByKind == nil {
			e.ByKind = map[string]int64{}
		}
		e.ByKind[k] += n
	}
	for _, x := range b.Examples {
		if len(e.Examples) < 3 {
			e.Examples = append(e.Examples, x)
		}
	}
	return e
}

// merge averages two CPU usages, weighted by their length.
func (u CPUUsage) merge(v CPUUsage) CPUUsage {
	t := u.Seconds + v.Seconds
	if t <= 0 {
		return v
	}
	w := func(a, b float64) float64 { return (a*u.Seconds + b*v.Seconds) / t }
	return CPUUsage{
		Seconds: t, Cores: max(u.Cores, v.Cores),
		Server: w(u.Server, v.Server), Broker: w(u.Broker, v.Broker), Bench: w(u.Bench, v.Bench),
		Other: w(u.Other, v.Other), MachineBusy: w(u.MachineBusy, v.MachineBusy),
	}
}
