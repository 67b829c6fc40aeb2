package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestReadyzKafkaOutage checks the readiness contract against a Kafka that
// really goes away: GET /readyz answers 200 while Kafka is reachable, 503
// with a problem naming "kafka" while it is not, and 200 again once it is
// back; sends during the outage answer 503 with Retry-After instead of
// hanging, and the pipeline delivers again afterwards.
//
// The outage is a private broker (scripts/kafka.sh on its own ports and data
// dir) that the test stops and starts again. Cutting a TCP proxy in front of
// the shared broker would not do: Kafka clients bootstrap through the address
// they are given but then connect to the address the broker advertises, so a
// proxy carries the first connection only. And the shared broker is not ours
// to stop.
func TestReadyzKafkaOutage(t *testing.T) {
	testenv.KafkaBrokers(t) // a machine with a real Kafka has what scripts/kafka.sh needs; CI must not skip
	kafka := startPrivateKafka(t)

	const sendTimeout = 3 * time.Second
	env := kafkaEnv(kafka.addr(), newPrefix(t, "readyz"))
	env["SEND_TIMEOUT"] = sendTimeout.String()
	s := startServer(t, "readyz", env)

	if rep := call(t, http.MethodGet, s.Base+"/readyz", "", nil); rep.Status != http.StatusOK {
		t.Fatalf("GET /readyz with Kafka up: %s, want 200", rep)
	}
	st := createStream(t, s.Base+"/v1/streams", "readyz-"+randomSuffix())
	events := s.Base + st.Links.Events
	send(t, events, "application/json", []byte(`{"n":1}`), 1)

	kafka.stop(t)

	// Readiness notices within a bounded poll, and names the part.
	rep := pollReadyz(t, s, http.StatusServiceUnavailable, 60*time.Second)
	p := checkProblem(t, "GET /readyz with Kafka down", rep, http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "kafka") {
		t.Errorf("GET /readyz with Kafka down: detail %q does not name kafka", p.Detail)
	}
	// The route is open to anyone: it names the component, not where it is
	// or why it failed (issue 19); those go to the log.
	if host, port, _ := strings.Cut(kafka.addr(), ":"); strings.Contains(string(rep.Body), port) || strings.Contains(string(rep.Body), host) ||
		strings.Contains(string(rep.Body), "dial") || strings.Contains(string(rep.Body), "tcp") {
		t.Errorf("GET /readyz with Kafka down: %s gives the broker's address or error", rep.Body)
	}
	t.Logf("/readyz with Kafka down: %s", p.Detail)

	// A send answers within its timeout (plus a margin for the request
	// itself), with 503 and Retry-After; it must not wait for Kafka.
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout+10*time.Second)
		rep, err := tryCall(ctx, http.MethodPost, events, "application/json", []byte(`{"n":2}`))
		cancel()
		what := fmt.Sprintf("send %d with Kafka down", i+1)
		if err != nil {
			t.Fatalf("%s: no answer within SEND_TIMEOUT %s + 10s: %v", what, sendTimeout, err)
		}
		checkProblem(t, what, rep, http.StatusServiceUnavailable)
		if ra, err := strconv.Atoi(rep.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q, want a number of seconds", what, rep.Header.Get("Retry-After"))
		}
	}

	kafka.start(t)

	pollReadyz(t, s, http.StatusOK, 90*time.Second)
	// Ready means the router and the fan-out run again: a new subscriber
	// gets the result of an event sent now. The readiness check only dials
	// a broker, so the first requests may still meet Kafka clients that
	// have not reconnected yet and answer 503; they are retried.
	deadline := time.Now().Add(60 * time.Second)
	var sse *sseConn
	for sse == nil {
		var rep reply
		if sse, rep = trySSE(t, s.Base+st.Links.Results, nil); sse != nil {
			break
		}
		if rep.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET %s after the outage: %s, want 200", st.Links.Results, rep)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var id string
	for id == "" {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		rep, err := tryCall(ctx, http.MethodPost, events, "application/json", []byte(`{"n":3}`))
		cancel()
		switch {
		case err == nil && rep.Status == http.StatusAccepted:
			var a accepted
			decodeJSON(t, "send after the outage", rep.Body, &a)
			if len(a.EventIDs) != 1 {
				t.Fatalf("send after the outage: %s", rep)
			}
			id = a.EventIDs[0]
		case time.Now().After(deadline):
			t.Fatalf("no send accepted within 60s of /readyz answering 200 again; last: %s %v", rep, err)
		default:
			time.Sleep(500 * time.Millisecond)
		}
	}
	for {
		f, ok := sse.next(resultTimeout)
		if !ok {
			t.Fatalf("no result for event %s after the outage: %v", id, sse.reason())
		}
		if f.Event != "result" {
			continue
		}
		var r result
		decodeJSON(t, "result frame", []byte(f.Data), &r)
		if r.EventID == id {
			break
		}
	}
}

// pollReadyz asks GET /readyz every 250 ms until it answers want, and
// returns that answer; it fails the test after max.
func pollReadyz(t *testing.T, s *server, want int, max time.Duration) reply {
	t.Helper()
	deadline := time.Now().Add(max)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rep, err := tryCall(ctx, http.MethodGet, s.Base+"/readyz", "", nil)
		cancel()
		if err == nil && rep.Status == want {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz did not answer %d within %s; last: %s %v", want, max, rep, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// privateKafka is a single-node broker of this test alone, run by
// scripts/kafka.sh with its own data dir and ports. The script's stop reads
// the pid from that data dir, so it can only ever stop this broker.
type privateKafka struct {
	env  []string // KAFKA_DATA_DIR, KAFKA_PORT, ... for every call of the script
	port string
	dir  string // KAFKA_DATA_DIR
}

func (k *privateKafka) addr() string { return "127.0.0.1:" + k.port }

// startPrivateKafka starts a broker on free ports (extra: more of
// scripts/kafka.sh's settings, NAME=value) and stops it when the test
// ends. The ports are free when chosen but may be taken before the broker
// binds them; the script then refuses to start, and new ports are tried.
func startPrivateKafka(t *testing.T, extra ...string) *privateKafka {
	t.Helper()
	var last error
	for range 3 {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		_, ctrl, _ := strings.Cut(freeAddr(t), ":")
		k := &privateKafka{port: port, dir: t.TempDir()}
		k.env = append([]string{
			"KAFKA_DATA_DIR=" + k.dir,
			"KAFKA_PORT=" + port,
			"KAFKA_CONTROLLER_PORT=" + ctrl,
			// A second JVM beside the shared broker on a small machine.
			"KAFKA_HEAP_OPTS=-Xms128m -Xmx512m",
			"KAFKA_START_TIMEOUT=120",
		}, extra...)
		if last = k.run("start", 150*time.Second); last == nil {
			t.Cleanup(func() {
				if err := k.run("stop", 60*time.Second); err != nil {
					t.Errorf("stopping the private broker: %v", err)
				}
			})
			return k
		}
		_ = k.run("stop", 60*time.Second) // in case it got as far as starting
	}
	t.Fatalf("starting a private broker with scripts/kafka.sh: %v", last)
	return nil
}

// start starts the broker again on the same ports and data.
func (k *privateKafka) start(t *testing.T) {
	t.Helper()
	began := time.Now()
	if err := k.run("start", 150*time.Second); err != nil {
		t.Fatalf("restarting the private broker: %v", err)
	}
	t.Logf("private broker back after %s", time.Since(began).Round(100*time.Millisecond))
}

// stop stops the broker (SIGTERM, the script's own bounded wait).
func (k *privateKafka) stop(t *testing.T) {
	t.Helper()
	if err := k.run("stop", 60*time.Second); err != nil {
		t.Fatalf("stopping the private broker: %v", err)
	}
}

// run runs scripts/kafka.sh cmd with the broker's environment.
func (k *privateKafka) run(cmd string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join("..", "scripts", "kafka.sh"), cmd)
	// Drop any KAFKA_* of the caller's (a KAFKA_DATA_DIR naming the shared
	// broker's, say), then add this broker's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAFKA_") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env, k.env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kafka.sh %s: %w\n%s", cmd, err, out)
	}
	return nil
}
