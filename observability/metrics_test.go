package observability_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/rtstream/rtstream/observability"
)

func TestMetricsPassPromlint(t *testing.T) {
	reg := observability.NewRegistry()
	m := observability.NewMetrics(reg)
	// Touch every metric so that every family is gathered.
	m.HTTPStart()()
	m.HTTPDone("/v1/streams", "POST", 201, time.Millisecond, "")
	m.Published("t", 3, time.Millisecond, nil)
	m.Published("t", 1, time.Millisecond, errors.New("x"))
	m.EventsAccepted(3)
	m.Poisoned("other")
	m.Processed(time.Millisecond)
	m.Lag("g", "t", 0, 5)
	m.RouterRunning(true)
	m.Ready(true)
	m.Subscribed("sse")()
	m.Delivered(time.Now(), time.Now(), "")
	m.SlowDisconnect()
	m.IdempotentReplay()
	m.IdempotencyStoreError()

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n < 20 {
		t.Fatalf("gathered %d series, %v", n, err)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *observability.Metrics
	m.HTTPStart()()
	m.HTTPDone("r", "GET", 200, 0, "")
	m.Published("t", 1, 0, nil)
	m.EventsAccepted(1)
	m.Poisoned("other")
	m.Processed(0)
	m.Lag("g", "t", 0, 1)
	m.RouterRunning(true)
	m.Ready(true)
	m.Subscribed("sse")()
	m.Delivered(time.Now(), time.Now(), "")
	m.SlowDisconnect()
	m.IdempotentReplay()
	m.IdempotencyStoreError()
}

func TestStatusClassesAndZeroSeries(t *testing.T) {
	reg := observability.NewRegistry()
	m := observability.NewMetrics(reg)
	for _, code := range []int{200, 202, 404, 429, 503} {
		m.HTTPDone("/x", "GET", code, 0, "")
	}
	want := `
# HELP rtstream_http_requests_total HTTP requests answered, by route pattern, method and status class.
# TYPE rtstream_http_requests_total counter
rtstream_http_requests_total{code="2xx",method="GET",route="/x"} 2
rtstream_http_requests_total{code="4xx",method="GET",route="/x"} 2
rtstream_http_requests_total{code="5xx",method="GET",route="/x"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rtstream_http_requests_total"); err != nil {
		t.Fatal(err)
	}
	// Subscribers and poison reasons exist before anything happens.
	if n, _ := testutil.GatherAndCount(reg, "rtstream_subscribers", "rtstream_poison_messages_total"); n != 1+len(observability.PoisonReasons) {
		t.Fatalf("zero series: %d", n)
	}
}
