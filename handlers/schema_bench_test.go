package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
)

// benchSchema has ten fields of the usual kinds; benchEvent matches it.
const (
	benchSchema = `{"type":"object","required":["id","temp","unit","site","ok"],"additionalProperties":false,"properties":{
"id":{"type":"string","maxLength":64},"temp":{"type":"number","minimum":-100,"maximum":100},"unit":{"enum":["C","F"]},
"site":{"type":"string","pattern":"^[a-z0-9-]+$"},"ok":{"type":"boolean"},"seq":{"type":"integer","minimum":0},
"tags":{"type":"array","items":{"type":"string"},"maxItems":10},"loc":{"type":"object","properties":{"lat":{"type":"number"},"lon":{"type":"number"}}},
"note":{"type":["string","null"]},"ts":{"type":"string"}}}`
	benchEvent = `{"id":"sensor-0001","temp":21.5,"unit":"C","site":"berlin-3","ok":true,"seq":12345,"tags":["a","b"],"loc":{"lat":52.5,"lon":13.4},"note":null,"ts":"2026-01-01T00:00:00Z"}`
)

// nopEvents acknowledges at once: the benchmark measures the handler, not
// Kafka.
type nopEvents struct{}

func (nopEvents) Send(_ context.Context, _ string, data []json.RawMessage) ([]string, error) {
	ids := make([]string, len(data))
	for i := range ids {
		ids[i] = "e"
	}
	return ids, nil
}

// BenchmarkIngestSchema runs the ingest path (the whole handler: routing,
// lookup, body, split, schema, answer) for a batch of 100 events, on a
// stream without a schema and on one with benchSchema, alternately in the
// same loop so that both see the same machine. It reports both, their
// ratio, and what validation adds per event. Kafka is left out (its
// acknowledgement dominates a real send): the ratio is the upper bound of
// what validation adds.
//
//	go test -run '^$' -bench IngestSchema -benchtime 2000x ./handlers/
func BenchmarkIngestSchema(b *testing.B) {
	streams := &schemaStreams{streams: map[string]rtstream.Stream{}}
	streams.put("plain", "")
	streams.put("checked", benchSchema)
	h := NewServer(Deps{Streams: streams, Events: nopEvents{},
		Subscribe: func(context.Context, string, rtstream.From) (rtstream.Feed, error) {
			return nil, rtstream.ErrUnavailable
		}})
	batch := "[" + strings.TrimSuffix(strings.Repeat(benchEvent+",", 100), ",") + "]"
	send := func(stream string) time.Duration {
		req := httptest.NewRequest(http.MethodPost, "/v1/streams/"+stream+"/events", strings.NewReader(batch))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("%s: %d %s", stream, rec.Code, rec.Body)
		}
		return d
	}
	send("checked") // compiles the schema once, as the first send on an instance does
	var plain, checked time.Duration
	for b.Loop() {
		plain += send("plain")
		checked += send("checked")
	}
	n := float64(b.N)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "ns/batch-plain")
	b.ReportMetric(float64(checked.Nanoseconds())/n, "ns/batch-schema")
	b.ReportMetric(float64(checked)/float64(plain), "schema/plain")
	b.ReportMetric(float64((checked-plain).Nanoseconds())/n/100, "ns/event-added")
}
