package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestGracefulDrain: on SIGTERM an instance first answers /readyz 503 while
// it still serves (SHUTDOWN_DRAIN_DELAY), so that a load balancer takes it
// out of rotation before anything is refused; then it tells its SSE
// subscribers to reconnect ("retry:" and a close) and exits cleanly within
// SHUTDOWN_TIMEOUT. Every event acknowledged, before or during the drain,
// has its result, once and in order, when the subscriber comes back with
// its last cursor to the instance started again.
func TestGracefulDrain(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	const delay, timeout = 3 * time.Second, 10 * time.Second
	env := kafkaEnv(brokers, newPrefix(t, "drain"))
	env["SHUTDOWN_DRAIN_DELAY"] = delay.String()
	env["SHUTDOWN_TIMEOUT"] = timeout.String()
	s := startServer(t, "drain", env)
	st := createStream(t, s.Base+"/v1/streams", "drain")
	events, results := s.Base+"/v1/streams/"+st.ID+"/events", s.Base+"/v1/streams/"+st.ID+"/results"
	feed := openSSE(t, results+"?from=earliest")

	var ids []string
	var want []json.RawMessage
	sendOne := func(i int) reply {
		body := fmt.Appendf(nil, `{"n":%d}`, i)
		rep := call(t, http.MethodPost, events, "application/json", body)
		if rep.Status == http.StatusAccepted {
			var a accepted
			decodeJSON(t, "send answer", rep.Body, &a)
			ids, want = append(ids, a.EventIDs...), append(want, body)
		}
		return rep
	}
	for i := range 5 {
		sendOne(i)
	}
	got := feed.awaitResults(t, 5, 30*time.Second)

	termAt := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rep := pollReadyz(t, s, http.StatusServiceUnavailable, delay/2)
	t.Logf("/readyz %s %s after SIGTERM", rep, time.Since(termAt).Round(time.Millisecond))
	// Still serving during the delay: sends are acknowledged.
	for i := 5; time.Since(termAt) < delay-time.Second; i++ {
		if rep := sendOne(i); rep.Status != http.StatusAccepted {
			t.Fatalf("a send %s after SIGTERM, within the drain delay, answered %s", time.Since(termAt).Round(time.Millisecond), rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got = append(got, feed.awaitResults(t, len(ids)-len(got), 30*time.Second)...)

	// Then the subscriber is told to come back, and the stream closes.
	retry := ""
	for retry == "" {
		f, ok := feed.next(timeout)
		if !ok {
			t.Fatalf("no retry: field before the stream ended: %s", feed.reason())
		}
		if f.Event == "result" {
			t.Fatalf("a result after every acknowledged event was delivered: %+v", f)
		}
		retry = f.Retry
	}
	if ms, err := strconv.Atoi(retry); err != nil || ms < 1000 || ms > 3000 {
		t.Errorf("retry: %q, want 1000–3000 ms", retry)
	}
	select {
	case <-feed.done:
	case <-time.After(5 * time.Second):
		t.Error("the stream stayed open after retry:")
	}
	select {
	case <-s.exited:
	case <-time.After(delay + timeout + 5*time.Second):
		t.Fatalf("still running %s after SIGTERM", time.Since(termAt))
	}
	if s.err != nil {
		t.Fatalf("exited with %v after SIGTERM", s.err)
	}
	t.Logf("exited %s after SIGTERM (drain delay %s, %d events acknowledged)", time.Since(termAt).Round(time.Millisecond), delay, len(ids))

	// Back with the last cursor: nothing more, nothing missing.
	s.restart()
	checkResults(t, st.ID, got, ids, want)
	again := openSSEWith(t, results, http.Header{"Last-Event-ID": {got[len(got)-1].Cursor}})
	sendOne(len(ids))
	last := again.awaitResults(t, 1, 30*time.Second)
	checkResults(t, st.ID, append(got, last...), ids, want)
}
