package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The processors phase answers the delivery issue's processor target: a
// stream's filter and map may cost at most 20% of end-to-end throughput. It
// runs the end-to-end measurement of the e2e phase (batches to -streams
// streams, results read over SSE, events/s = results ÷ first send to last
// result) on one server, in rounds that alternate, in the Thue–Morse order
// of the comparison phases, between passthrough streams (OFF) and streams
// with procFilter and procMap (ON). Every round makes its own streams, so no
// round's results reach another's subscribers.
//
// The filter keeps every event, so both sides deliver the same number of
// results and the difference is the processors' work: decoding each event,
// running both programs, encoding the map's value. The map reshapes the
// event but keeps seq and t, which the SSE reader needs to count lost and
// duplicated events and to compute latency.
const (
	procFilter = `data.seq >= 0`
	procMap    = `{"seq": data.seq, "t": data.t, "kind": "rtbench", "pad_len": len(data.pad), "parity": data.seq % 2}`
	// targetProcessorsCost is the largest passthrough ÷ processors − 1.
	targetProcessorsCost = 0.20
)

// processorJSON is the "processor" member of the create request.
func processorJSON() string {
	b, _ := json.Marshal(map[string]string{"filter": procFilter, "map": procMap})
	return string(b)
}

// runProcessorsPhase starts a server of its own and runs the rounds on it.
func runProcessorsPhase(ctx context.Context, o options, bin string, kc *kafkaObserver, rep *Report) error {
	srv, err := startServer(ctx, o, bin, serverVariant{name: "processors", auth: true, logLevel: "warn"})
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	res := &ProcessorsResult{Filter: procFilter, Map: procMap, Target: targetProcessorsCost}
	rep.Processors = res
	defer func() { res.Stop = stopServer(srv, kc, o) }()
	lt := newLoadTester(srv, o)
	defer lt.Close()
	router := routerWatch{kc: kc, group: srv.Prefix + "-router", topic: srv.Prefix + ".events"}
	brokerPid := findBroker(o.Brokers)

	streamsFor := func(on bool, label string) ([]string, error) { return lt.procStreams(ctx, on, label) }
	name := procSideName

	// Warm up both kinds (connections, the programs' cache), uncounted,
	// then check that ON really runs the map.
	warm := min(time.Second, o.Duration/4)
	for _, on := range []bool{true, false} {
		streams, err := streamsFor(on, "proc-warm")
		if err != nil {
			return err
		}
		if _, err := lt.endToEndOn(ctx, name(on)+" warm-up", streams, warm); err != nil {
			return err
		}
		if on {
			if res.Check, err = lt.checkMapped(ctx, streams[0]); err != nil {
				return err
			}
			progress("[processors] check: %s", res.Check)
		}
	}

	round := o.Duration / time.Duration(o.ProcRounds/2)
	res.RoundSeconds = round.Seconds()
	progress("[processors] %d rounds of %s end to end, ON, OFF, OFF, ON, ...; ON streams: filter %q, map %q", o.ProcRounds, round, procFilter, procMap)
	sides := map[bool]*ProcSide{true: &res.On, false: &res.Off}
	for i := range o.ProcRounds {
		on := thueMorseOn(i)
		router.waitIdle(ctx, 3*time.Minute)
		streams, err := streamsFor(on, fmt.Sprintf("proc-%d", i))
		if err != nil {
			return err
		}
		cpu := startCPU(srv.Pid(), brokerPid)
		e, err := lt.endToEndOn(ctx, name(on), streams, round)
		u := cpu.stop()
		if err != nil {
			return err
		}
		r := ProcRound{On: on, Sent: e.Sent, Received: e.Received, Lost: e.Lost, Duplicates: e.Duplicates,
			Seconds: e.Seconds, EventsPerSec: e.EventsPerSec, P99: e.SendToSSE.P99, Errors: e.Errors.Total}
		res.Rounds = append(res.Rounds, r)
		sides[on].add(e, u)
		progress("[processors] round %d %s: %s events/s end to end, %d lost, %d duplicates; cpu: %s",
			i+1, name(on), fmtInt(int64(r.EventsPerSec)), r.Lost, r.Duplicates, u)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	router.waitIdle(ctx, 3*time.Minute)
	res.On.finish()
	res.Off.finish()
	rep.CPU = append(rep.CPU, PhaseCPU{Phase: "proc-on", Usage: res.On.CPU}, PhaseCPU{Phase: "proc-off", Usage: res.Off.CPU})
	if res.On.EventsPerSec > 0 {
		res.Cost = res.Off.EventsPerSec/res.On.EventsPerSec - 1
	}
	if res.Off.ServerCPUPerEvent > 0 {
		res.CPUCost = res.On.ServerCPUPerEvent/res.Off.ServerCPUPerEvent - 1
	}
	progress("[processors] ON %s events/s, OFF %s events/s: cost %+.1f%% of end-to-end throughput (target <= %.0f%%); server CPU per event %.1f µs vs %.1f µs (%+.1f%%)",
		fmtInt(int64(res.On.EventsPerSec)), fmtInt(int64(res.Off.EventsPerSec)), res.Cost*100, targetProcessorsCost*100,
		res.On.ServerCPUPerEvent, res.Off.ServerCPUPerEvent, res.CPUCost*100)
	return nil
}

// procStreams makes -streams streams with the processor (on) or without.
func (lt *loadTester) procStreams(ctx context.Context, on bool, label string) ([]string, error) {
	if on {
		return lt.createStreamsWith(ctx, label, lt.o.Streams, processorJSON())
	}
	return lt.createStreams(ctx, label, lt.o.Streams)
}

// procSideName names a side of the processors phase in progress lines.
func procSideName(on bool) string {
	if on {
		return "processors ON"
	}
	return "processors OFF"
}

// add folds one round into the side.
func (s *ProcSide) add(e *E2EResult, u CPUUsage) {
	s.Rounds++
	s.Sent += e.Sent
	s.Received += e.Received
	s.Lost += e.Lost
	s.Duplicates += e.Duplicates
	s.Seconds += e.Seconds
	s.Requests += e.Sent / int64(max(e.BatchSize, 1))
	s.Errors = s.Errors.merge(e.Errors)
	s.CPU = s.CPU.merge(u)
	s.serverS += u.Server * u.Seconds
	s.P99Max = max(s.P99Max, e.SendToSSE.P99)
}

func (s *ProcSide) finish() {
	if s.Seconds > 0 {
		s.EventsPerSec = float64(s.Received) / s.Seconds
	}
	if s.Received > 0 {
		s.ServerCPUPerEvent = s.serverS / float64(s.Received) * 1e6
	}
}

// checkMapped reads the first result of a processor stream as a JSON page
// and checks that it is the map's value, not the event: an ON side that
// passed events through unchanged would measure nothing.
func (lt *loadTester) checkMapped(ctx context.Context, stream string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lt.srv.URL+"/v1/streams/"+stream+"/results?limit=1", nil)
	if err != nil {
		return "", err
	}
	lt.auth(req)
	resp, err := lt.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("read a processor stream's results: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("read a processor stream's results: %s: %.300s", resp.Status, body)
	}
	return mappedShape(body)
}

// mappedShape checks a results page's first result against procMap.
func mappedShape(page []byte) (string, error) {
	var p struct {
		Results []struct {
			Data map[string]any `json:"data"`
		} `json:"results"`
	}
	if err := json.Unmarshal(page, &p); err != nil {
		return "", fmt.Errorf("results page: %w", err)
	}
	if len(p.Results) == 0 {
		return "", fmt.Errorf("processor stream has no result after its warm-up")
	}
	d := p.Results[0].Data
	_, hasPad := d["pad"]
	_, hasSeq := d["seq"]
	_, hasT := d["t"]
	if d["kind"] != "rtbench" || d["pad_len"] == nil || hasPad || !hasSeq || !hasT {
		return "", fmt.Errorf("processor stream's result is not the map's value: %v", d)
	}
	return "a processor stream's result is the map's value (seq, t, kind, pad_len, parity; no pad)", nil
}
