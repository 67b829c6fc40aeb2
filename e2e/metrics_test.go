package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/rtstream/rtstream/internal/testenv"
)

// scrape reads /metrics into "name{labels}" → value, the way Prometheus
// would see it.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	rep := call(t, http.MethodGet, base+"/metrics", "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", rep)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(rep.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// awaitMetric polls /metrics until series reaches want.
func awaitMetric(t *testing.T, base, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got float64
	for time.Now().Before(deadline) {
		if got = scrape(t, base)[series]; got >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %v; want ≥ %v", series, got, want)
}

// TestMetricsMove checks, through /metrics only, that the counters move by
// what happened: a send by its batch size, the publish counter by one record
// per request, deliveries by the results a subscriber got.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	prefix := newPrefix(t, "metrics")
	s := startServer(t, "metrics", kafkaEnv(testenv.KafkaBrokers(t), prefix))
	st := createStream(t, s.Base+"/v1/streams", "metrics")
	feed := openSSE(t, s.Base+st.Links.Results)

	before := scrape(t, s.Base)
	const n = 25
	var batch []string
	for i := range n {
		batch = append(batch, fmt.Sprintf(`{"i":%d}`, i))
	}
	send(t, s.Base+st.Links.Events, "application/json", []byte("["+strings.Join(batch, ",")+"]"), n)
	feed.awaitResults(t, n, resultTimeout)
	after := scrape(t, s.Base)

	eventsTopic := fmt.Sprintf(`rtstream_kafka_publish_total{topic="%s.events"}`, prefix)
	checks := []struct {
		series string
		delta  float64
	}{
		{"rtstream_events_accepted_total", n},
		{eventsTopic, 1}, // one record per request
		{`rtstream_http_requests_total{code="2xx",method="POST",route="/v1/streams/{id}/events"}`, 1},
	}
	for _, c := range checks {
		if got := after[c.series] - before[c.series]; got != c.delta {
			t.Errorf("%s moved by %v; want %v", c.series, got, c.delta)
		}
	}
	// Deliveries are counted once the frames are written; poll for them.
	awaitMetric(t, s.Base, "rtstream_results_delivered_total", before["rtstream_results_delivered_total"]+n)
	if got := after[`rtstream_subscribers{transport="sse"}`]; got != 1 {
		t.Errorf("rtstream_subscribers{transport=\"sse\"} = %v with one subscriber", got)
	}
	awaitMetric(t, s.Base, "rtstream_ready", 1)

	// Every family the running server exports, Watermill's and the rate
	// limiter's included, passes promlint.
	problems, err := promlint.New(bytes.NewReader(call(t, http.MethodGet, s.Base+"/metrics", "", nil).Body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for series := range after {
		for _, banned := range []string{st.ID, apiKey, "127.0.0.1"} {
			if strings.Contains(series, banned) {
				t.Errorf("series %s carries %q as a label", series, banned)
			}
		}
	}
}

// TestMetricsCountRefusals checks that a 429 increments the denials and a
// request without a key the auth failures.
func TestMetricsCountRefusals(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "metrics-429"))
	env["RATE_LIMIT_RPS"] = "0.01"
	env["RATE_LIMIT_BURST"] = "3"
	s := startServer(t, "metrics-429", env)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep, err := request(ctx, http.MethodGet, s.Base+"/v1/streams", "", nil, http.Header{"X-API-Key": {"wrong"}})
	if err != nil || rep.Status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %v %v", rep, err)
	}
	var denied bool
	for range 5 {
		if call(t, http.MethodGet, s.Base+"/v1/streams", "", nil).Status == http.StatusTooManyRequests {
			denied = true
			break
		}
	}
	if !denied {
		t.Fatal("never rate limited")
	}
	m := scrape(t, s.Base)
	if got := m[`rtstream_ratelimit_denied_total{limiter="ip"}`]; got < 1 {
		t.Errorf(`rtstream_ratelimit_denied_total{limiter="ip"} = %v after a 429`, got)
	}
	if got := m[`rtstream_auth_failures_total{reason="invalid"}`]; got != 1 {
		t.Errorf(`rtstream_auth_failures_total{reason="invalid"} = %v after one wrong key`, got)
	}
}
