package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestFaultBrokerKill9 crashes Kafka itself under load: a private broker is
// killed with SIGKILL while senders post batches to four streams and
// resuming subscribers follow them, and started again a few seconds later.
// The server must live through it: /readyz says 503 while the broker is away
// and 200 once it is back, every send is answered within SEND_TIMEOUT (503
// with Retry-After while Kafka cannot acknowledge) instead of hanging, sends
// are acknowledged again afterwards, and every acknowledged event reaches
// every subscriber once and in order.
//
// The broker is this test's own (scripts/kafka.sh on a temp data dir and free
// ports, like TestReadyzKafkaOutage), so it runs beside the other tests.
func TestFaultBrokerKill9(t *testing.T) {
	t.Parallel()
	testenv.KafkaBrokers(t) // a machine with a real Kafka has what scripts/kafka.sh needs; CI must not skip
	kafka := startPrivateKafka(t)

	const (
		sendTimeout = 3 * time.Second
		// margin is what a send may take beyond SEND_TIMEOUT: the request
		// itself, the race detector, two busy cores.
		margin    = 4 * time.Second
		hangBound = 30 * time.Second
		outage    = 5 * time.Second // at least this long from the kill to the restart
	)
	prefix := newPrefix(t, "fault-broker")
	env := kafkaEnv(kafka.addr(), prefix)
	env["SEND_TIMEOUT"] = sendTimeout.String()
	s := startServer(t, "S", env)

	ids := make([]string, 4)
	for i := range ids {
		ids[i] = createStream(t, s.Base+"/v1/streams", fmt.Sprintf("fault-broker-%d", i)).ID
	}
	load := startFaultLoad(t, []string{s.Base}, ids, 2, 2, 3, hangBound)
	load.waitAcked(1000, 60*time.Second)

	// The broker dies somewhere inside the kill9 call, which may first wait
	// for scripts/kafka.sh's lock (shared by every broker it runs on this
	// machine): answers are bounded from the call on, the outage is timed
	// from its return, when the broker is surely dead.
	ackedBefore := load.acked.Load()
	killCalled := time.Now()
	kafka.kill9(t)
	killedAt := time.Now()
	t.Logf("broker killed (kill -9) after %d acknowledged events; kafka.sh kill9 took %s",
		ackedBefore, killedAt.Sub(killCalled).Round(time.Millisecond))

	rep := pollReadyz(t, s, http.StatusServiceUnavailable, 30*time.Second)
	notReadyAt := time.Now()
	p := checkProblem(t, "GET /readyz with the broker dead", rep, http.StatusServiceUnavailable)
	t.Logf("/readyz 503 %s after the kill: %s", notReadyAt.Sub(killedAt).Round(time.Millisecond), p.Detail)

	time.Sleep(time.Until(killedAt.Add(outage)))
	refusedDown := load.refused.Load()
	kafka.start(t)
	backAt := time.Now()
	pollReadyz(t, s, http.StatusOK, 90*time.Second)
	readyAt := time.Now()
	if !s.running() {
		t.Fatalf("the server exited during the broker outage: %v", s.err)
	}

	// Sends flow again: some attempts made after /readyz said 200 are
	// acknowledged (the first ones may still meet producers that have not
	// reconnected yet, and are retried), and the load goes on a while.
	deadline := time.Now().Add(60 * time.Second)
	for load.acksAfter(readyAt) < 20 {
		if time.Now().After(deadline) || t.Failed() {
			t.Fatalf("%d sends acknowledged within 60s of /readyz answering 200 again", load.acksAfter(readyAt))
		}
		time.Sleep(50 * time.Millisecond)
	}
	flowingAt := time.Now()
	time.Sleep(3 * time.Second)

	slow, during := load.slowest(killCalled, readyAt)
	longest := slow.elapsed
	v := load.finish(60 * time.Second)
	if !s.running() {
		t.Fatalf("the server exited: %v", s.err)
	}
	if longest > sendTimeout+margin {
		t.Errorf("a send during the outage took %s to answer, over SEND_TIMEOUT %s + %s", longest, sendTimeout, margin)
	}
	if refusedDown == 0 {
		t.Errorf("no send was answered 503 in the %s between the kill and the restart", outage)
	}
	if v.Acked <= int(ackedBefore) {
		t.Errorf("nothing acknowledged after the outage")
	}

	t.Logf("outage %s (kill to broker started); /readyz 503 after %s, 200 again %s after the broker started (%s after the kill); sends acknowledged again %s after ready",
		backAt.Sub(killedAt).Round(time.Millisecond), notReadyAt.Sub(killedAt).Round(time.Millisecond),
		readyAt.Sub(backAt).Round(time.Millisecond), readyAt.Sub(killedAt).Round(time.Millisecond),
		flowingAt.Sub(readyAt).Round(time.Millisecond))
	t.Logf("acknowledged %d events (%d before the kill); received %d results over %d subscriptions; %d delivered unacknowledged; "+
		"%d sends answered 503 (%d before the restart), %d unanswered; %d attempts from the kill to ready, longest answer %s (SEND_TIMEOUT %s)",
		load.acked.Load(), ackedBefore, v.Received, len(load.subs), v.Unacked,
		load.refused.Load(), refusedDown, load.lostAnswers.Load(), during, longest.Round(time.Millisecond), sendTimeout)
	t.Logf("the slowest answer: %d, to an attempt begun %s after the kill (the broker was started again %s after it)",
		slow.status, slow.at.Sub(killedAt).Round(time.Millisecond), backAt.Sub(killedAt).Round(time.Millisecond))
	if load.lostAnswers.Load() == 0 && v.Unacked > 0 {
		// Every attempt was answered, so these were answered 503 and
		// written anyway: the producer keeps retrying a record after
		// SEND_TIMEOUT gave up on it (decision 0002, at-least-once).
		t.Logf("%d events whose send was answered 503 reached their stream's subscribers (%d results over all of them): written after the answer", v.Unacked*len(load.ids)/len(load.subs), v.Unacked)
	}
	logRecordCounts(t, kafka.addr(), prefix)
}

// TestFaultServerKill9TwoInstances crashes the servers under load: two
// instances A and B share the (shared) broker and a topic prefix; senders
// alternate between them and retry on the other one when an attempt fails,
// subscribers resume with their cursor on the other one when theirs dies.
// A is killed with SIGKILL mid-load and restarted, later B. Each crash
// leaves the router group with one member until the dead one's session
// times out, then rebalances again when it comes back. Every acknowledged
// event must reach every subscriber once and in order; events of attempts
// whose answer was lost may arrive or not.
func TestFaultServerKill9TwoInstances(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "fault-server")
	env := kafkaEnv(brokers, prefix)
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)
	servers := []*server{a, b}
	bases := []string{a.Base, b.Base}

	ids := make([]string, 4)
	for i := range ids {
		ids[i] = createStream(t, bases[i%2]+"/v1/streams", fmt.Sprintf("fault-server-%d", i)).ID
	}
	load := startFaultLoad(t, bases, ids, 2, 2, 3, 30*time.Second)

	const step = 800 // events acknowledged between the faults
	load.waitAcked(step, 60*time.Second)
	// Every subscriber is then on the server its last connection went to,
	// half on each: A's crash moves half of them, B's all of them.
	load.waitSettled(30 * time.Second)
	for _, s := range servers {
		before := load.acked.Load()
		if err := s.kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", s.name, err)
		}
		killedAt := time.Now()
		s.restart()
		t.Logf("%s killed after %d acknowledged events, ready again after %s",
			s.name, before, time.Since(killedAt).Round(time.Millisecond))
		load.waitAcked(load.acked.Load()+step, 60*time.Second)
	}

	v := load.finish(90 * time.Second)
	// Each subscriber was on a server when it died, at least once, and
	// resumed on the other one.
	if bad := load.notResumed(1); len(bad) > 0 {
		t.Errorf("subscribers that never had to resume after a crash: %s", strings.Join(bad, ", "))
	}
	for _, s := range servers {
		if !s.running() {
			t.Errorf("server %s exited: %v", s.name, s.err)
		}
	}
	t.Logf("acknowledged %d events; received %d results over %d subscriptions; %d delivered unacknowledged; "+
		"%d sends unanswered (retried on the other instance), %d answered 503",
		load.acked.Load(), v.Received, len(load.subs), v.Unacked, load.lostAnswers.Load(), load.refused.Load())
	logRecordCounts(t, brokers, prefix)
}

// logRecordCounts logs how many results records the router made beyond one
// per events record: the redeliveries the subscribers were spared.
func logRecordCounts(t *testing.T, brokers, prefix string) {
	t.Helper()
	events, results, err := recordCounts(t, brokers, prefix)
	if err != nil {
		t.Logf("counting records: %v", err)
		return
	}
	t.Logf("topics: %d events records, %d results records: %d results records made twice", events, results, results-events)
}
