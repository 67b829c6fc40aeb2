package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The metrics phase answers the observability issue: rtstream's own
// instrumentation may cost at most 5% of single-event POST throughput. It
// compares two servers started the same way (API key sent, LOG_LEVEL=warn)
// but for METRICS_DISABLED:
//
//	ON:  METRICS_DISABLED=false, the default: HTTP, Kafka publish, pipeline
//	     and fan-out metrics, Watermill's router metrics, and the readiness
//	     and consumer-lag pollers
//	OFF: METRICS_DISABLED=true: none of them; /metrics still serves the Go
//	     runtime and process collectors and the auth and rate-limit counters
//
// Nothing scrapes /metrics during the rounds, so the cost is the collection
// on the request and processing paths, not the exposition.
func metricsComparison(o options) comparison {
	return comparison{
		phase:  "metrics",
		on:     serverVariant{name: "metrics-on", auth: true, logLevel: "warn"},
		off:    serverVariant{name: "metrics-off", auth: true, logLevel: "warn", metricsOff: true},
		rounds: o.MetricsRounds,
		target: targetMetricsCost,
		check:  checkMetricsDiffer,
	}
}

// metricsProbes are families that the warm-up makes exist on a server that
// collects: one per HTTP request and one per Kafka publish.
var metricsProbes = []string{"rtstream_http_requests_total", "rtstream_kafka_publish_total"}

// checkMetricsDiffer reads both servers' /metrics after the warm-up: ON must
// export the probe families and OFF none of them, or METRICS_DISABLED does
// not switch what this phase claims to measure.
func checkMetricsDiffer(ctx context.Context, on, off *compareSide) (string, error) {
	onText, err := scrape(ctx, on)
	if err != nil {
		return "", err
	}
	offText, err := scrape(ctx, off)
	if err != nil {
		return "", err
	}
	for _, name := range metricsProbes {
		if !strings.Contains(onText, "\n"+name+"{") {
			return "", fmt.Errorf("ON server's /metrics has no %s after the warm-up", name)
		}
		if strings.Contains(offText, name) {
			return "", fmt.Errorf("OFF server (METRICS_DISABLED=true) still exports %s", name)
		}
	}
	return "ON exports " + strings.Join(metricsProbes, " and ") + ", OFF neither", nil
}

// scrape returns the text of the side's /metrics.
func scrape(ctx context.Context, s *compareSide) (string, error) {
	body, err := s.lt.metricsText(ctx)
	return string(body), err
}

// metricsText reads the server's /metrics: the one place rtbench fetches it.
func (lt *loadTester) metricsText(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lt.srv.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	lt.auth(req)
	resp, err := lt.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s/metrics: %w", lt.srv.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s/metrics: %w", lt.srv.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", lt.srv.Name, resp.Status)
	}
	return body, nil
}
