package main

import (
	"bytes"
	"context"
	"math"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// HopAge is one point of the latency budget: how old events were (now minus
// received_at) when they reached it, from the server's own histograms over
// the phase. Each point includes the ones before it, so a hop's own share is
// the difference to the previous point.
type HopAge struct {
	Point string  `json:"point"`
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

// hopPoint is where a point's histogram is: a family and the labels that
// pick its series.
type hopPoint struct {
	label, family, labelName, labelValue string
}

// hopPoints are the points of the budget, in pipeline order. topicEvents is
// the events topic's name.
func hopPoints(topicEvents string) []hopPoint {
	return []hopPoint{
		{"received -> Kafka ack", "rtstream_kafka_publish_duration_seconds", "topic", topicEvents},
		{"received -> router starts", "rtstream_result_age_seconds", "at", "router"},
		{"received -> follower reads result", "rtstream_result_age_seconds", "at", "follower"},
		{"received -> written to the socket", "rtstream_result_delivery_age_seconds", "", ""},
	}
}

// scrapeFamilies reads the server's /metrics as metric families.
func (lt *loadTester) scrapeFamilies(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	body, err := lt.metricsText(ctx)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// hopBudget is each point's age quantiles over what was observed between the
// before and after scrapes.
func hopBudget(before, after map[string]*dto.MetricFamily, topicEvents string) []HopAge {
	var out []HopAge
	for _, p := range hopPoints(topicEvents) {
		a := findHistogram(after, p)
		if a == nil {
			continue
		}
		b := findHistogram(before, p)
		bounds, counts := bucketDeltas(b, a)
		total := a.GetSampleCount()
		if b != nil {
			total -= b.GetSampleCount()
		}
		out = append(out, HopAge{Point: p.label, Count: total,
			P50: quantile(0.5, bounds, counts, total) * 1000, P99: quantile(0.99, bounds, counts, total) * 1000})
	}
	return out
}

func findHistogram(fams map[string]*dto.MetricFamily, p hopPoint) *dto.Histogram {
	f := fams[p.family]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		if p.labelName == "" {
			return m.GetHistogram()
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == p.labelName && l.GetValue() == p.labelValue {
				return m.GetHistogram()
			}
		}
	}
	return nil
}

// bucketDeltas are after's cumulative bucket counts minus before's.
func bucketDeltas(before, after *dto.Histogram) (bounds []float64, counts []uint64) {
	for i, bk := range after.GetBucket() {
		c := bk.GetCumulativeCount()
		if before != nil && i < len(before.GetBucket()) {
			c -= before.GetBucket()[i].GetCumulativeCount()
		}
		bounds = append(bounds, bk.GetUpperBound())
		counts = append(counts, c)
	}
	return bounds, counts
}

// quantile estimates the q-quantile from cumulative bucket counts the way
// PromQL's histogram_quantile does: linearly within the bucket it falls in;
// past the last finite bound it is that bound. No observations: 0.
func quantile(q float64, bounds []float64, counts []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, ub := range bounds {
		if math.IsInf(ub, 1) {
			return lower
		}
		if float64(counts[i]) >= rank {
			if counts[i] == below {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(counts[i]-below)
		}
		lower, below = ub, counts[i]
	}
	return lower
}
