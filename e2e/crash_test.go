package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestCrashLosesNoAcknowledgedEvent sends 1,000 events to server A as
// single-event requests from a few goroutines, kills A with SIGKILL in the
// middle and starts it again, while server B (same Kafka, same prefix) serves
// the results: every event A answered 202 must have its result on B's feed.
//
// Each goroutine has its own stream, so that the streams spread over the
// events topic's partitions and the crash hits partitions A's router was
// processing, not only ones B already owned.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	const (
		senders   = 4
		perSender = 250
		killAfter = 400 // acknowledged events before A is killed
	)
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "crash"))
	// This test is about crashes, not rate limits.
	env["RATE_LIMIT_RPS"] = "100000"
	env["RATE_LIMIT_BURST"] = "100000"
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)

	streams := make([]string, senders)
	feeds := make([]*sseConn, senders)
	for g := range senders {
		streams[g] = createStream(t, a.Base+"/v1/streams", fmt.Sprintf("crash sender %d", g)).ID
		feeds[g] = openSSE(t, b.Base+"/v1/streams/"+streams[g]+"/results")
	}

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below, also when the test stops early
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		acked    = make([][]string, senders)       // per sender, in the order answered
		dataOf   sync.Map                          // event id -> seq, for messages
		outcomes = make([]map[string]int, senders) // refused attempts by kind
		total    atomic.Int64
		killNow  = make(chan struct{})
		killOnce sync.Once
	)
	for g := range senders {
		outcomes[g] = map[string]int{}
		wg.Go(func() {
			url := a.Base + "/v1/streams/" + streams[g] + "/events"
			for seq := 0; seq < perSender; seq++ {
				body := fmt.Appendf(nil, `{"sender":%d,"seq":%d}`, g, seq)
				for {
					rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
					rep, err := tryCall(rctx, http.MethodPost, url, "application/json", body)
					rcancel()
					if err == nil && rep.Status == http.StatusAccepted {
						var ans accepted
						if err := json.Unmarshal(rep.Body, &ans); err != nil || len(ans.EventIDs) != 1 {
							t.Errorf("sender %d: a 202 answer without one event id: %s", g, rep.Body)
							return
						}
						acked[g] = append(acked[g], ans.EventIDs[0])
						dataOf.Store(ans.EventIDs[0], fmt.Sprintf("sender %d seq %d", g, seq))
						if total.Add(1) == killAfter {
							killOnce.Do(func() { close(killNow) })
						}
						break
					}
					// Not acknowledged: A is down or restarting. Retry the
					// same data; the attempt may or may not have been written.
					switch {
					case err != nil:
						outcomes[g]["transport error"]++
					case rep.Status == http.StatusServiceUnavailable || rep.Status == http.StatusTooManyRequests:
						outcomes[g][fmt.Sprint(rep.Status)]++
					default:
						t.Errorf("sender %d: a send answered %s", g, rep)
						return
					}
					if ctx.Err() != nil {
						t.Errorf("sender %d: gave up at seq %d: %v", g, seq, ctx.Err())
						return
					}
					time.Sleep(50 * time.Millisecond) // retry back-off, not synchronisation
				}
			}
		})
	}

	select {
	case <-killNow:
	case <-ctx.Done():
		t.Fatalf("only %d events acknowledged before the time ran out", total.Load())
	}
	if err := a.kill(); err != nil {
		t.Fatalf("kill -9 A: %v", err)
	}
	killedAt := time.Now()
	t.Logf("killed A after %d acknowledged events", total.Load())
	a.restart()
	t.Logf("A ready again %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	wg.Wait()
	if t.Failed() {
		return
	}
	sent := time.Now()
	for g := range senders {
		if len(outcomes[g]) > 0 {
			t.Logf("sender %d: refused attempts (retried): %v", g, outcomes[g])
		}
	}

	// Every acknowledged event's result must reach B; allow for B's router
	// taking over A's partitions once A's group session timed out.
	deadline := sent.Add(90 * time.Second)
	lost, dups, unacked := 0, 0, 0
	for g := range senders {
		want := map[string]bool{}
		for _, id := range acked[g] {
			want[id] = true
		}
		count := map[string]int{}
		var order []string // acknowledged ids in the order of their first result
		missing := len(want)
		for missing > 0 {
			d, ok := feeds[g].nextResult(t, deadline)
			if !ok {
				break
			}
			if d.StreamID != streams[g] {
				t.Errorf("sender %d: a result of stream %q on the feed of %q", g, d.StreamID, streams[g])
			}
			count[d.EventID]++
			switch {
			case count[d.EventID] > 1:
				dups++
			case want[d.EventID]:
				order = append(order, d.EventID)
				missing--
			default:
				unacked++ // an attempt that was written but never answered
			}
		}
		if missing > 0 {
			lost += missing
			var ex []string
			for _, id := range acked[g] {
				if count[id] == 0 && len(ex) < 10 {
					what, _ := dataOf.Load(id)
					ex = append(ex, fmt.Sprintf("%s (%v)", id, what))
				}
			}
			sort.Strings(ex)
			t.Errorf("sender %d: %d of %d acknowledged events have no result on B (%s), e.g. %s",
				g, missing, len(want), feeds[g].reason(), strings.Join(ex, ", "))
			continue
		}
		for i := range order {
			if order[i] != acked[g][i] {
				what, _ := dataOf.Load(order[i])
				t.Errorf("sender %d: result %d is %s (%v), want %s: out of order", g, i, order[i], what, acked[g][i])
				break
			}
		}
	}
	t.Logf("%d acknowledged events, %d lost, %d duplicate results, %d results of unanswered attempts; all in %s after the last send",
		total.Load(), lost, dups, unacked, time.Since(sent).Round(time.Millisecond))
}
