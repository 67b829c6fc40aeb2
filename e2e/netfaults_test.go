package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestNetFaults puts the network between one server and Kafka through
// latency, connection resets, a black hole and a cut, while senders keep
// sending and resuming SSE subscribers keep reading, and checks what a
// client sees:
//
//   - every event answered 202 has its result, once and in its sender's
//     order, at a subscriber that reconnects with its cursor (the checker);
//   - every send is answered within SEND_TIMEOUT and a margin, 202 or 503
//     with Retry-After: a fault never makes a send hang;
//   - /readyz answers 503 naming kafka while Kafka is cut off, and within
//     10 s of Kafka going silent (black-holed: connections accepted,
//     nothing answered);
//   - the server never exits, and sends and results flow again once the
//     network is healthy.
//
// Kafka is a private broker behind an in-process toxiproxy that the broker
// advertises, so every connection the server opens to Kafka, not only the
// bootstrap one, crosses the proxy (startProxiedKafka). HTTP does not.
func TestNetFaults(t *testing.T) {
	testenv.KafkaBrokers(t) // a machine with a real Kafka has what scripts/kafka.sh needs; CI must not skip
	began := time.Now()
	kafka := startProxiedKafka(t)
	brokerReady := time.Since(began)

	const (
		sendTimeout = 3 * time.Second
		// margin covers the rest of a send besides waiting for Kafka, on a
		// small machine running two brokers and the race detector.
		margin = 3 * time.Second
	)
	env := kafkaEnv(kafka.Addr, "netfaults") // the broker is ours alone: no prefix to clean up
	env["SEND_TIMEOUT"] = sendTimeout.String()
	s := startServer(t, "netfaults", env)

	ids := make([]string, 3)
	for i := range ids {
		ids[i] = createStream(t, s.Base+"/v1/streams", fmt.Sprintf("netfaults-%d", i)).ID
	}
	load := startNetLoad(t, s.Base, ids, 10, sendTimeout+margin)
	ready := watchReadyz(t, s.Base)

	type phase struct {
		name  string
		for_  time.Duration
		fault func() (undo func())
	}
	phases := []phase{
		{"healthy", 3 * time.Second, nil},
		{"latency 200ms±50ms on every answer from Kafka", 6 * time.Second, func() func() {
			return kafka.toxic(t, toxicSpec("latency", "latency", "downstream", `{"latency":200,"jitter":50}`))
		}},
		{"healthy", 3 * time.Second, nil},
		{"reset_peer: every connection reset 1s after it sends", 6 * time.Second, func() func() {
			return kafka.toxic(t, toxicSpec("reset", "reset_peer", "upstream", `{"timeout":1000}`))
		}},
		{"healthy", 3 * time.Second, nil},
		{"timeout: connections open but nothing passes (black hole)", 12 * time.Second, func() func() {
			up := kafka.toxic(t, toxicSpec("hole_up", "timeout", "upstream", `{"timeout":0}`))
			down := kafka.toxic(t, toxicSpec("hole_down", "timeout", "downstream", `{"timeout":0}`))
			return func() { up(); down() }
		}},
		{"healthy", 4 * time.Second, nil},
		{"cut: connections refused (total outage)", 6 * time.Second, func() func() { return kafka.cut(t) }},
	}
	type window struct {
		name     string
		from, to time.Time
	}
	var windows []window
	for _, p := range phases {
		w := window{name: p.name, from: time.Now()}
		undo := func() {}
		if p.fault != nil {
			undo = p.fault()
		}
		time.Sleep(p.for_)
		undo()
		w.to = time.Now()
		windows = append(windows, w)
		if !s.running() {
			t.Fatalf("the server exited during %q: %v", p.name, s.err)
		}
	}
	healed := time.Now()

	// Recovery: a send begun after the network healed is acknowledged, and
	// /readyz answers 200 again.
	for load.acksAfter(healed) == 0 {
		if time.Since(healed) > 60*time.Second {
			t.Fatalf("no send acknowledged within 60s of the network healing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	firstAck := time.Since(healed)
	pollReadyz(t, s, http.StatusOK, 60*time.Second)
	readyAgain := time.Since(healed)
	// Some more flow after the recovery, so that the tail is judged too.
	load.waitAcked(load.acked.Load()+200, 30*time.Second)

	v := load.finish(30 * time.Second)
	if !s.running() {
		t.Fatalf("the server exited: %v", s.err)
	}

	// Per phase: how sends were answered, the slowest answer, and /readyz.
	for _, w := range windows {
		st := load.answersIn(w.from, w.to)
		rz := ready.in(w.from, w.to)
		t.Logf("%-58s %5.1fs: sends %s; /readyz %s", w.name, w.to.Sub(w.from).Seconds(), st, rz)
		if strings.HasPrefix(w.name, "cut") && rz.kafka503 == 0 {
			t.Errorf("/readyz never answered 503 naming kafka while Kafka was cut off: %s", rz)
		}
		if strings.HasPrefix(w.name, "timeout") {
			after, ok := ready.firstKafka503(w.from, w.to)
			t.Logf("black hole: /readyz answered 503 naming kafka after %s (%v)", after.Round(time.Millisecond), ok)
			if !ok || after > 10*time.Second {
				t.Errorf("/readyz did not answer 503 naming kafka within 10s of the black hole: %s", rz)
			}
		}
	}
	t.Logf("healed: first send acknowledged after %s, /readyz 200 after %s", firstAck.Round(time.Millisecond), readyAgain.Round(time.Millisecond))
	t.Logf("load: %s; %d sends answered 503, %d without an answer; slowest answer %s (bound %s)",
		v, load.refused.Load(), load.lostAnswers.Load(), load.slowest().Round(time.Millisecond), sendTimeout+margin)
	t.Logf("wall time %s (private broker ready after %s)", time.Since(began).Round(100*time.Millisecond), brokerReady.Round(100*time.Millisecond))
}
