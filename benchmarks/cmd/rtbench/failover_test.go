package main

import (
	"strings"
	"testing"
	"time"
)

// TestFailoverStalls: a stream's stall is from the kill to the arrival of
// its first result of an event sent after the kill; results of events sent
// before it do not count, however late they arrive.
func TestFailoverStalls(t *testing.T) {
	kill := time.Unix(100, 0)
	sub := func(sent []time.Time, lats []time.Duration) *sseSub {
		s := &sseSub{}
		for i := range sent {
			s.sent = append(s.sent, sent[i].UnixNano())
			s.lats = append(s.lats, lats[i])
		}
		return s
	}
	g := &sseGroup{subs: []*sseSub{
		// Held by the survivor: the first event after the kill arrives at once.
		sub([]time.Time{kill.Add(-time.Second), kill.Add(100 * time.Millisecond)}, []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}),
		// Held by the dead one: a late result of an earlier event, then the first one after it, 4 s late.
		sub([]time.Time{kill.Add(-time.Second), kill.Add(200 * time.Millisecond)}, []time.Duration{6 * time.Second, 4 * time.Second}),
		// Nothing after the kill.
		sub([]time.Time{kill.Add(-time.Second)}, []time.Duration{time.Millisecond}),
	}}
	got := failoverStalls(g, kill)
	if len(got) != 2 || got[0] != 0.105 || got[1] != 4.2 {
		t.Fatalf("stalls %v, want [0.105 4.2]", got)
	}
}

// TestFailoverRows: the run with the shortest session timeout that worked is
// judged against 5 s; a failed run says why; the others are shown unjudged.
func TestFailoverRows(t *testing.T) {
	rep := &Report{Failover: &FailoverResult{Runs: []FailoverRun{
		{SessionTimeout: "6s", Max: 6.4, P50: 0.1, Stalled: 18, Streams: 48},
		{SessionTimeout: "3s", Max: 3.5, P50: 0.1, Stalled: 20, Streams: 48},
		{SessionTimeout: "1s", Error: "broker refused the session timeout"},
	}}}
	rep.evaluate()
	if len(rep.Targets) != 1 || !rep.Targets[0].Pass || !strings.Contains(rep.Targets[0].Margin, "session timeout 3s") {
		t.Fatalf("targets %+v, want one passing, on the 3s run", rep.Targets)
	}
	tableHas(t, rep, "failover after kill -9, session 6s", "6.40", "failover after kill -9, session 1s", "broker refused")
}
