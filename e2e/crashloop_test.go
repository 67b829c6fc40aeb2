package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// crashMarker is the data that makes the crashhook build kill itself.
const crashMarker = "kill-the-processor"

// TestRecordThatKillsTheProcessTwiceIsDeadLettered runs a build of the server
// with the test-only crash hook (-tags crashhook): it kills itself with
// SIGKILL, as the OOM killer would, when the router reaches an event holding
// crashMarker. On real Kafka: the first start dies on that event, the second
// start dies on it again, and the third start sends it to dead letters with
// reason "crashed the processor" without evaluating it, then processes the
// events sent before and after it, each result once and in order.
func TestRecordThatKillsTheProcessTwiceIsDeadLettered(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "rtstream-crashhook")
	build := exec.Command("go", "build", "-tags", "crashhook", "-o", bin, "./cmd/rtstream")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the crashhook server: %v\n%s", err, out)
	}
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "crashloop"))
	env["RTSTREAM_TEST_CRASH_ON"] = crashMarker
	s := startServerBin(t, "crashloop", bin, env)
	st := createProcessed(t, s.Base, "true", `{"n": data.n}`)
	eventsURL := s.Base + "/v1/streams/" + st.ID + "/events"

	var ids []string
	var want []json.RawMessage
	sendOne := func(n int) {
		ids = append(ids, send(t, eventsURL, "application/json", fmt.Appendf(nil, `{"n":%d}`, n), 1)...)
		want = append(want, json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)))
	}
	for n := range 5 {
		sendOne(n)
	}
	// The router can take the event and kill the process before the API
	// has answered: then the client sees the connection drop. The event
	// was stored either way (the router only reads stored records).
	poisonData := []byte(`{"n":"` + crashMarker + `"}`)
	poisonID := ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	rep, err := tryCall(ctx, http.MethodPost, eventsURL, "application/json", poisonData)
	cancel()
	switch {
	case err == nil && rep.Status == http.StatusAccepted:
		var a accepted
		decodeJSON(t, "the poisonous send's answer", rep.Body, &a)
		poisonID = a.EventIDs[0]
	case err == nil:
		t.Fatalf("sending the poisonous event: %s, want 202", rep)
	default:
		t.Logf("the poisonous send got no answer (%v): the process died first", err)
	}

	awaitCrash(t, s, "the first start")
	if err := s.launch(); err != nil && s.running() {
		t.Fatalf("second start: %v", err)
	}
	awaitCrash(t, s, "the second start")
	if !strings.Contains(s.lastStartLog(), "its records are evaluated one at a time") {
		t.Errorf("the second start did not log its careful pass:\n%s", s.lastStartLog())
	}

	s.restart()
	for n := 5; n < 10; n++ {
		sendOne(n)
	}
	feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results?from=earliest")
	checkResults(t, st.ID, feed.awaitResults(t, len(ids), resultTimeout), ids, want)
	expectNoMoreResults(t, eventsURL, feed)

	dead := awaitDeadLetters(t, s.Base, st.ID, 1)
	if len(dead) != 1 || (poisonID != "" && dead[0].EventID != poisonID) || dead[0].Reason != "crashed the processor" ||
		!jsonEqual(dead[0].Data, poisonData) {
		t.Fatalf("dead letters %+v; want the one event %s (id %q), reason %q", dead, poisonData, poisonID, "crashed the processor")
	}
	if !s.running() {
		t.Fatal("the third start died")
	}
	if log := s.lastStartLog(); !strings.Contains(log, "killed the process 2 times") {
		t.Errorf("the third start did not log the dead-lettering:\n%s", log)
	}
	m := scrape(t, s.Base)
	if got := m[`rtstream_poison_messages_total{reason="crashed"}`]; got != 1 {
		t.Errorf(`rtstream_poison_messages_total{reason="crashed"} = %v; want 1`, got)
	}
}

// awaitCrash waits for the crash hook to kill s.
func awaitCrash(t *testing.T, s *server, what string) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s is still running 2 minutes after the poisonous event", what)
	}
	if s.err == nil || !strings.Contains(s.err.Error(), "killed") {
		t.Fatalf("%s exited with %v; want killed by its crash hook", what, s.err)
	}
}
