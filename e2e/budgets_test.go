package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rtstream/rtstream/internal/testenv"
)

// maxServerRSS is what issue 19 allows the server while it refuses the two
// expressions that used to kill it with a fatal out-of-memory error.
const maxServerRSS = 1500 << 20

// TestProcessorBombsAreDeadLetters runs the two events that took the
// service down for good — repeat over a 1 MB string, flatten over 40,000
// copies of a 100,000-element array — on the built server against Kafka.
// Each becomes a dead letter whose reason names the budget; an event sent
// to another stream at the same moment is processed; the server's peak RSS
// stays under 1.5 GB and /readyz answers 200. After a kill -9 and a restart
// on the same data the server comes up and goes on processing.
func TestProcessorBombsAreDeadLetters(t *testing.T) {
	t.Parallel()
	s := startServer(t, "bombs", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "bombs")))
	bomb := createProcessed(t, s.Base, "", "repeat(data.s, 1000000)")
	flat := createProcessed(t, s.Base, "", "flatten(map(1..40000, data.a))")
	other := createProcessed(t, s.Base, "", `{"n": data.n}`)
	feed := openSSE(t, s.Base+"/v1/streams/"+other.ID+"/results")

	var arr strings.Builder
	for i := range 100_000 {
		if i > 0 {
			arr.WriteByte(',')
		}
		arr.WriteString(strconv.Itoa(i))
	}
	bombID := send(t, s.Base+"/v1/streams/"+bomb.ID+"/events", "application/json", []byte(`{"s":"`+strings.Repeat("x", 1_000_000)+`"}`), 1)[0]
	flatID := send(t, s.Base+"/v1/streams/"+flat.ID+"/events", "application/json", []byte(`{"a":[`+arr.String()+`]}`), 1)[0]
	otherID := send(t, s.Base+"/v1/streams/"+other.ID+"/events", "application/json", []byte(`{"n":7}`), 1)[0]

	checkResults(t, other.ID, feed.awaitResults(t, 1, resultTimeout), []string{otherID}, nil)
	for _, c := range []struct{ stream, event, budget string }{
		{bomb.ID, bombID, "repeat would take the bytes made over"},
		{flat.ID, flatID, "flatten"},
	} {
		dls := awaitDeadLetters(t, s.Base, c.stream, 1)
		if len(dls) != 1 || dls[0].EventID != c.event || !strings.Contains(dls[0].Reason, "budget exceeded") || !strings.Contains(dls[0].Reason, c.budget) {
			t.Errorf("dead letters of %s: %+v; want event %s with a reason naming the budget (%q)", c.stream, dls, c.event, c.budget)
		}
	}
	if rep := call(t, http.MethodGet, s.Base+"/readyz", "", nil); rep.Status != http.StatusOK {
		t.Errorf("/readyz after the bombs: %s", rep)
	}
	if rss := peakRSS(t, s.cmd.Process.Pid); rss > maxServerRSS {
		t.Errorf("server's peak RSS %d MiB, over %d MiB", rss>>20, maxServerRSS>>20)
	} else {
		t.Logf("server's peak RSS: %d MiB", rss>>20)
	}

	// The same data again after a crash: both are dead letters already, the
	// server comes up, and a new event is processed.
	if err := s.kill(); err != nil {
		t.Fatal(err)
	}
	s.restart()
	later := send(t, s.Base+"/v1/streams/"+other.ID+"/events", "application/json", []byte(`{"n":8}`), 1)[0]
	feed2 := openSSE(t, s.Base+"/v1/streams/"+other.ID+"/results?from=earliest")
	checkResults(t, other.ID, feed2.awaitResults(t, 2, resultTimeout), []string{otherID, later}, nil)
}

// TestProcessorRefusesUnreviewedBuiltin: a builtin outside the reviewed set
// is a 422 naming it, on POST and PUT, and nothing is created.
func TestProcessorRefusesUnreviewedBuiltin(t *testing.T) {
	t.Parallel()
	s := startServer(t, "refused", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "refused")))
	body := []byte(`{"processor":{"map":"date(data.t, \"2006\", timezone(\"UTC\"))"}}`)
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		url := s.Base + "/v1/streams"
		if method == http.MethodPut {
			url += "/refused-tz"
		}
		rep := call(t, method, url, "application/json", body)
		p := checkProblem(t, method+" with timezone()", rep, http.StatusUnprocessableEntity)
		if !strings.Contains(p.Detail, "timezone") || !strings.Contains(string(rep.Body), `"pointer":"/processor/map"`) {
			t.Errorf("%s: %s; want the detail naming timezone and a pointer to /processor/map", method, rep)
		}
	}
	checkProblem(t, "GET after the refused PUT", call(t, http.MethodGet, s.Base+"/v1/streams/refused-tz", "", nil), http.StatusNotFound)
}

// peakRSS reads the process's peak resident set size (VmHWM).
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("peak RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("peak RSS: %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("peak RSS: no VmHWM in /proc/%d/status", pid)
	return 0
}
