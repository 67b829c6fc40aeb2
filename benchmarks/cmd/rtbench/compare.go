package main

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"time"
)

// A comparison phase runs the single-event load against two servers started
// the same way but for one setting, and reports what that setting costs:
// OFF req/s ÷ ON req/s − 1, against a target. The middleware and metrics
// phases are comparisons.
//
// The rounds (even) alternate in the Thue-Morse order ON, OFF, OFF, ON, OFF,
// ON, ON, OFF, ..., each -duration/(rounds/2) long, so each variant sends for
// -duration in all and a drift that is linear in time (a warming broker, a
// neighbour that starts or stops) weighs on both alike; more rounds also
// average out more of a busy machine's noise.
type comparison struct {
	// phase names the phase in progress lines ("middleware", "metrics").
	phase string
	// on and off configure the two servers; their names label the sides in
	// progress lines, CPU figures and topic prefixes.
	on, off serverVariant
	// rounds is the number of rounds, even and at least 2.
	rounds int
	// target is the largest cost that passes, as a fraction: of throughput,
	// or with cpu, of server CPU per request.
	target float64
	cpu    bool
	// noTarget reports the cost without judging it: target means nothing.
	noTarget bool
	// check, when set, runs once both servers are warm and returns what it
	// saw, or an error when ON and OFF do not really differ in the setting
	// measured: a comparison of two equal servers would always pass.
	check func(ctx context.Context, on, off *compareSide) (string, error)
}

// runRounds runs the alternating rounds, the routers idle at each start.
func (c comparison) runRounds(ctx context.Context, o options, sides map[bool]*compareSide, round time.Duration, res *CompareResult) error {
	brokerPid := findBroker(o.Brokers)
	progress("[%s] %d workers, one event per POST, %d rounds of %s: ON, OFF, OFF, ON, ...", c.phase, o.Concurrency, c.rounds, round)
	for i := range c.rounds {
		on := thueMorseOn(i)
		s := sides[on]
		if i > 0 {
			// Start each round with the previous round's router idle.
			sides[thueMorseOn(i-1)].router.waitIdle(ctx, time.Minute)
		}
		cpu := startCPU(s.srv.Pid(), brokerPid)
		st := s.lt.closedLoop(ctx, s.v.name, o.Concurrency, 1, s.streams, round)
		u := cpu.stop()
		s.add(st, u)
		r := CompareRound{
			On:          on,
			Requests:    st.okRequests.Load(),
			Seconds:     st.elapsed.Seconds(),
			RequestsSec: float64(st.okRequests.Load()) / st.elapsed.Seconds(),
			Errors:      st.errs.total(),
		}
		res.Rounds = append(res.Rounds, r)
		progress("[%s] round %d %s: %s requests/s, %d errors; cpu: %s", c.phase, i+1, s.v.name, fmtInt(int64(r.RequestsSec)), r.Errors, u)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	sides[thueMorseOn(c.rounds-1)].router.waitIdle(ctx, time.Minute)
	return nil
}

// thueMorseOn says whether round i runs the ON side: ON, OFF, OFF, ON, OFF,
// ON, ON, OFF, ...
func thueMorseOn(round int) bool { return bits.OnesCount(uint(round))%2 == 0 }

// compareSide is one of the two servers and what was sent to it.
type compareSide struct {
	v       serverVariant
	srv     *server
	lt      *loadTester
	streams []string
	router  routerWatch

	warm     int64 // requests of the uncounted warm-up
	requests int64
	elapsed  time.Duration
	lats     []time.Duration
	errs     ErrorReport
	cpu      CPUUsage
	serverS  float64 // server CPU seconds while this side was loaded
}

// runComparison starts the ON and OFF servers, warms each up, runs the
// alternating rounds and fills res (which the caller has already put in the
// report, so a failed run still shows the rounds done).
func runComparison(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report, c comparison, res *CompareResult) error {
	round := o.Duration / time.Duration(c.rounds/2)
	res.Workers, res.RoundSeconds, res.Target, res.JudgeCPU, res.NoTarget = o.Concurrency, round.Seconds(), c.target, c.cpu, c.noTarget
	sides := make(map[bool]*compareSide, 2)
	for _, on := range []bool{true, false} {
		v := c.off
		if on {
			v = c.on
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
		s := &compareSide{v: v, srv: srv, lt: newLoadTester(srv, o),
			router: routerWatch{kc: kc, group: srv.Prefix + "-router", topic: srv.Prefix + ".events"}}
		defer s.lt.Close()
		if s.streams, err = s.lt.createStreams(ctx, v.name, o.Streams); err != nil {
			return err
		}
		sides[on] = s
	}

	// Warm up both (connections, producer metadata), uncounted, then wait
	// until both routers are idle.
	warm := min(time.Second, o.Duration/4)
	for _, on := range []bool{true, false} {
		s := sides[on]
		s.warm = s.lt.closedLoop(ctx, s.v.name+" warm-up", o.Concurrency, 1, s.streams, warm).okRequests.Load()
	}
	if c.check != nil {
		seen, err := c.check(ctx, sides[true], sides[false])
		if err != nil {
			return err
		}
		res.Check = seen
		progress("[%s] check: %s", c.phase, seen)
	}
	sides[true].router.waitIdle(ctx, time.Minute)
	sides[false].router.waitIdle(ctx, time.Minute)

	if err := c.runRounds(ctx, o, sides, round, res); err != nil {
		return err
	}
	res.On, res.Off = sides[true].result(), sides[false].result()
	rep.CPU = append(rep.CPU, PhaseCPU{Phase: c.on.name, Usage: sides[true].cpu}, PhaseCPU{Phase: c.off.name, Usage: sides[false].cpu})
	if res.On.RequestsSec > 0 {
		res.Cost = res.Off.RequestsSec/res.On.RequestsSec - 1
	}
	if res.Off.ServerCPUPerRequest > 0 {
		res.CPUCost = res.On.ServerCPUPerRequest/res.Off.ServerCPUPerRequest - 1
	}
	target := fmt.Sprintf("target <= %.0f%%", c.target*100)
	if c.noTarget {
		target = "reported, no target"
	}
	progress("[%s] ON %s requests/s, OFF %s requests/s: cost %+.1f%% of throughput (%s); server CPU per request %.0f µs vs %.0f µs (%+.1f%%)",
		c.phase, fmtInt(int64(res.On.RequestsSec)), fmtInt(int64(res.Off.RequestsSec)), res.Cost*100, target,
		res.On.ServerCPUPerRequest, res.Off.ServerCPUPerRequest, res.CPUCost*100)
	return nil
}

// add folds one round into the side's totals.
func (s *compareSide) add(st *sendStats, u CPUUsage) {
	s.requests += st.okRequests.Load()
	s.elapsed += st.elapsed
	s.lats = append(s.lats, st.latencies...)
	s.errs = s.errs.merge(st.errs.report())
	s.cpu = s.cpu.merge(u)
	s.serverS += u.Server * u.Seconds
}

func (s *compareSide) result() CompareSide {
	slices.Sort(s.lats)
	r := CompareSide{
		Requests:       s.requests,
		WarmupRequests: s.warm,
		Seconds:        s.elapsed.Seconds(),
		Latency:        latencySummary(s.lats),
		Errors:         s.errs,
		CPU:            s.cpu,
	}
	if s.elapsed > 0 {
		r.RequestsSec = float64(s.requests) / s.elapsed.Seconds()
	}
	if s.requests > 0 {
		r.ServerCPUPerRequest = s.serverS / float64(s.requests) * 1e6
	}
	return r
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
