package main

import (
	"math"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestQuantileLikeHistogramQuantile(t *testing.T) {
	bounds := []float64{.001, .002, .005, math.Inf(1)}
	counts := []uint64{0, 50, 100, 100} // cumulative
	for _, tt := range []struct {
		q    float64
		want float64
	}{
		{0.5, .002},   // the 50th of 100 is the top of the 2nd bucket
		{0.25, .0015}, // half-way into the 2nd bucket
		{0.99, .00494},
	} {
		if got := quantile(tt.q, bounds, counts, 100); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v; want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(0.99, bounds, []uint64{0, 0, 0, 10}, 10); got != .005 {
		t.Errorf("in the +Inf bucket: %v; want the last finite bound", got)
	}
	if got := quantile(0.5, bounds, []uint64{0, 0, 0, 0}, 0); got != 0 {
		t.Errorf("no observations: %v", got)
	}
}

// TestHopBudgetCountsOnlyThePhase: the budget is of what was observed
// between the two scrapes, picked by family and label.
func TestHopBudgetCountsOnlyThePhase(t *testing.T) {
	parse := func(text string) map[string]*dto.MetricFamily {
		t.Helper()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return fams
	}
	hist := func(at string, c1, c2, total int) string {
		return strings.NewReplacer("AT", at, "C1", strconv.Itoa(c1), "C2", strconv.Itoa(c2), "N", strconv.Itoa(total)).Replace(
			"rtstream_result_age_seconds_bucket{at=\"AT\",le=\"0.001\"} C1\n" +
				"rtstream_result_age_seconds_bucket{at=\"AT\",le=\"0.01\"} C2\n" +
				"rtstream_result_age_seconds_bucket{at=\"AT\",le=\"+Inf\"} N\n" +
				"rtstream_result_age_seconds_sum{at=\"AT\"} 1\n" +
				"rtstream_result_age_seconds_count{at=\"AT\"} N\n")
	}
	head := "# TYPE rtstream_result_age_seconds histogram\n"
	before := parse(head + hist("router", 1000, 1000, 1000) + hist("follower", 0, 0, 0))
	after := parse(head + hist("router", 1000, 1100, 1100) + hist("follower", 100, 100, 100))
	hops := hopBudget(before, after, "p.events")
	if len(hops) != 2 || hops[0].Point != "received -> router starts" || hops[0].Count != 100 || hops[1].Count != 100 {
		t.Fatalf("hops %+v", hops)
	}
	if hops[0].P50 <= 1 || hops[0].P50 > 10 || hops[1].P99 > 1 {
		t.Errorf("router p50 %v ms (want within the phase's 1-10 ms bucket), follower p99 %v ms (want <= 1)", hops[0].P50, hops[1].P99)
	}
}
