package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestFailoverKill9: two instances share the router's consumer group; one is
// killed with SIGKILL and not restarted. The results of the streams whose
// events partitions its router held stall until the group hands those
// partitions to the survivor, about KAFKA_SESSION_TIMEOUT later. The test
// sends through the survivor to enough streams to cover every partition,
// follows each over SSE on the survivor, and measures, per stream, how long
// after the kill the first result of an event received after it arrived.
// The bound is generous (30 s); the figure is logged, and rtbench's
// failover phase measures it properly.
func TestFailoverKill9(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	env := kafkaEnv(brokers, newPrefix(t, "failover"))
	stalls := measureFailover(t, env, env, false)
	t.Logf("after kill -9 of one of two instances, each stream's first result of an event received after the kill came in (sorted): %v", stalls)
	t.Logf("failover: the slowest stream resumed %s after the kill (KAFKA_SESSION_TIMEOUT default 6s)", stalls[len(stalls)-1])
}

// TestStaticMemberRestart: with KAFKA_GROUP_INSTANCE_ID (static membership),
// an instance killed and started again at once gets its partitions back
// without a rebalance: its streams resume as soon as it is back, before the
// session timeout (6 s) a rebalance would have waited for, and the other
// instance's streams do not pause.
func TestStaticMemberRestart(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	envA := kafkaEnv(brokers, newPrefix(t, "static"))
	envB := maps.Clone(envA)
	envA["KAFKA_GROUP_INSTANCE_ID"], envB["KAFKA_GROUP_INSTANCE_ID"] = "rtstream-a", "rtstream-b"
	stalls := measureFailover(t, envA, envB, true)
	t.Logf("after kill -9 and an immediate restart of a static member, each stream resumed after (sorted): %v", stalls)
	if slowest := stalls[len(stalls)-1]; slowest >= 6*time.Second {
		t.Errorf("the slowest stream resumed %s after the kill: a rebalance waited for the session timeout (6s)", slowest)
	}
}

// measureFailover runs A (envA) and B (envB) in one router group, sends
// through B to enough streams to cover every partition and follows each
// on B, kills A with SIGKILL (and starts it again at once with restart),
// and returns, per stream and sorted, how long after the kill the first
// result of an event received after it arrived. Each stream must resume
// within 30 s.
func measureFailover(t *testing.T, envA, envB map[string]string, restart bool) []time.Duration {
	t.Helper()
	a := startServer(t, "A", envA)
	b := startServer(t, "B", envB)
	const streams, bound = 24, 30 * time.Second

	ctx, cancel := context.WithCancel(context.Background())
	fo := &failover{first: map[string]time.Duration{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range streams {
		st := createStream(t, b.Base+"/v1/streams", fmt.Sprintf("failover-%d", i))
		feed := openSSE(t, b.Base+"/v1/streams/"+st.ID+"/results")
		wg.Go(func() { fo.follow(ctx, st.ID, feed) })
		wg.Go(func() { sendEvery(ctx, b.Base+"/v1/streams/"+st.ID+"/events", 100*time.Millisecond) })
	}
	time.Sleep(2 * time.Second) // every stream flowing
	if err := a.kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	fo.kill(killed)
	if restart {
		a.restart()
		t.Logf("A ready again %s after the kill", time.Since(killed).Round(time.Millisecond))
	}
	deadline := time.Now().Add(bound)
	for fo.resumed() < streams && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stalls := fo.stalls()
	if len(stalls) < streams {
		t.Fatalf("%d of %d streams had a result of an event received after the kill within %s", len(stalls), streams, bound)
	}
	return stalls
}

// failover records, per stream, when results resumed after the kill.
type failover struct {
	mu     sync.Mutex
	killed time.Time
	first  map[string]time.Duration
}

func (f *failover) kill(at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = at
}

// follow reads a stream's results and notes the first one received by the
// server after the kill.
func (f *failover) follow(ctx context.Context, id string, feed *sseConn) {
	for ctx.Err() == nil {
		fr, ok := feed.next(time.Second)
		if !ok || fr.Event != "result" {
			continue
		}
		var r result
		if decodeErr := json.Unmarshal([]byte(fr.Data), &r); decodeErr != nil {
			continue
		}
		now := time.Now()
		f.mu.Lock()
		if _, done := f.first[id]; !done && !f.killed.IsZero() && !r.ReceivedAt.Before(f.killed) {
			f.first[id] = now.Sub(f.killed).Round(10 * time.Millisecond)
		}
		f.mu.Unlock()
	}
}

func (f *failover) resumed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.first)
}

// stalls are the streams' times to resume, shortest first.
func (f *failover) stalls() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ds []time.Duration
	for _, d := range f.first {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// sendEvery posts one event to url every period until ctx ends; failures
// are retried by the next tick.
func sendEvery(ctx context.Context, url string, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = tryCall(rctx, http.MethodPost, url, "application/json", fmt.Appendf(nil, `{"n":%d}`, i))
		cancel()
	}
}
