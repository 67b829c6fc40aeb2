package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestRedisLogsAreJSON: with LOG_FORMAT=json every line the server writes
// is a JSON object, go-redis's own complaints included (issue 19 found its
// plain lines in the JSON log) — here about a Redis that is not there.
func TestRedisLogsAreJSON(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "redislog"))
	env["LOG_FORMAT"] = "json"
	env["REDIS_URL"] = "redis://" + freeAddr(t) + "/0" // nothing listens there
	s := startServer(t, "redislog", env)
	st := createStream(t, s.Base+"/v1/streams", "redislog")
	for range 5 {
		do(t, http.MethodPost, s.Base+"/v1/streams/"+st.ID+"/events", "application/json", []byte(`{"n":1}`), withKey(apiKey))
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	redisLines := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "==== start #") || strings.TrimSpace(line) == "" {
			continue // the test's own marker
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a line of the JSON log is not JSON: %q", line)
			continue
		}
		if rec["component"] == "redis" {
			redisLines++
		}
	}
	if redisLines == 0 {
		t.Error("no go-redis line in the log: the test saw nothing of what it checks")
	}
}
