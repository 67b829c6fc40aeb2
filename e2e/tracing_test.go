package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/internal/otlpsink"
	"github.com/rtstream/rtstream/internal/testenv"
)

// TestTracingAcrossInstances follows one send through two server processes
// that export to a real OTLP/HTTP receiver: sent on A with a traceparent,
// routed by whichever instance owns the partition, delivered over SSE on B.
// Every span shares the caller's trace id and hangs from the right parent,
// the results record in Kafka carries the trace in its headers, A's log
// lines of the request carry the ids, and both histograms carry the trace id
// as an exemplar.
func TestTracingAcrossInstances(t *testing.T) {
	t.Parallel()
	sink, endpoint, stop, err := otlpsink.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "trace")
	env := func(instance string) map[string]string {
		e := kafkaEnv(brokers, prefix)
		e["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
		e["OTEL_RESOURCE_ATTRIBUTES"] = "service.instance.id=" + instance
		e["OTEL_BSP_SCHEDULE_DELAY"] = "100" // ms: export soon after the spans end
		return e
	}
	a := startServer(t, "A", env("A"))
	b := startServer(t, "B", env("B"))

	st := createStream(t, a.Base+"/v1/streams", "traced")
	feed := openSSE(t, b.Base+"/v1/streams/"+st.ID+"/results")
	traceID, callerSpan := randomHex(t, 16), randomHex(t, 8)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := request(ctx, http.MethodPost, a.Base+"/v1/streams/"+st.ID+"/events", "application/json",
		[]byte(`[{"n":1},{"n":2}]`), http.Header{"Traceparent": {"00-" + traceID + "-" + callerSpan + "-01"}})
	if err != nil || rep.Status != http.StatusAccepted {
		t.Fatalf("traced send: %v %v, want 202", rep, err)
	}
	got := feed.awaitResults(t, 2, resultTimeout)

	spans := waitTrace(t, sink, traceID)
	checkTraceTree(t, spans, callerSpan, got[0].EventID, got[1].EventID)
	checkResultsHeader(t, brokers, prefix+".results", st.ID, traceID)
	checkLogsCarry(t, a, traceID)
	checkExemplar(t, a.Base, "rtstream_http_request_duration_seconds_bucket", traceID)
	checkExemplar(t, b.Base, "rtstream_result_delivery_age_seconds_bucket", traceID)

	// Without a traceparent the send starts a trace of its own.
	before := len(sink.Spans())
	send(t, a.Base+"/v1/streams/"+st.ID+"/events", "application/json", []byte(`{"n":3}`), 1)
	feed.awaitResults(t, 1, resultTimeout)
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	err = sink.Wait(waitCtx, func(all []otlpsink.Span) bool {
		for _, s := range all[before:] {
			if s.Kind == "server" && s.ParentSpanID == "" && s.TraceID != traceID {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Errorf("an untraced send made no root server span of a new trace: %v", err)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// waitTrace waits until the trace has every span a traced send to a
// subscribed stream makes, and returns them.
func waitTrace(t *testing.T, sink *otlpsink.Sink, traceID string) []otlpsink.Span {
	t.Helper()
	want := []string{"POST /v1/streams/{id}/events", "send", "event", "process", "deliver", "write sse"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := sink.Wait(ctx, func([]otlpsink.Span) bool {
		names := spanNames(sink.Trace(traceID))
		for _, w := range want {
			if !strings.Contains(names, "|"+w) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("trace %s: %v; spans received: %s", traceID, err, spanNames(sink.Trace(traceID)))
	}
	return sink.Trace(traceID)
}

// spanNames lists "|name" for each span, for matching and for messages.
func spanNames(spans []otlpsink.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "|%s", s.Name)
	}
	return b.String()
}

// checkTraceTree checks who made each span and its parent: the HTTP span on
// A under the caller's span, the send under it with a span per event, the
// router's processing under the send, B's delivery under the processing and
// the socket write under the delivery.
func checkTraceTree(t *testing.T, spans []otlpsink.Span, callerSpan string, eventIDs ...string) {
	t.Helper()
	one := func(prefix string) otlpsink.Span {
		var found []otlpsink.Span
		for _, s := range spans {
			if strings.HasPrefix(s.Name, prefix) {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d spans named %q, want 1: %s", len(found), prefix, spanNames(spans))
		}
		return found[0]
	}
	server, send, process := one("POST /v1/streams/{id}/events"), one("send"), one("process")
	deliver, write := one("deliver"), one("write sse")
	for _, c := range []struct {
		what         string
		span         otlpsink.Span
		parent, kind string
		instances    string
	}{
		{"HTTP send", server, callerSpan, "server", "A"},
		{"Kafka send", send, server.SpanID, "producer", "A"},
		{"router processing", process, send.SpanID, "consumer", "A B"},
		{"delivery", deliver, process.SpanID, "consumer", "B"},
		{"socket write", write, deliver.SpanID, "internal", "B"},
	} {
		if c.span.ParentSpanID != c.parent {
			t.Errorf("%s span %q: parent %s, want %s", c.what, c.span.Name, c.span.ParentSpanID, c.parent)
		}
		if c.span.Kind != c.kind {
			t.Errorf("%s span %q: kind %s, want %s", c.what, c.span.Name, c.span.Kind, c.kind)
		}
		if !strings.Contains(c.instances, c.span.Instance) || c.span.Instance == "" || c.span.Service != "rtstream" {
			t.Errorf("%s span %q made by %s/%s, want rtstream on %s", c.what, c.span.Name, c.span.Service, c.span.Instance, c.instances)
		}
	}
	seen := map[string]bool{}
	for _, s := range spans {
		if s.Name == "event" && s.ParentSpanID == send.SpanID {
			seen[s.Attrs["rtstream.event_id"]] = true
		}
	}
	for _, id := range eventIDs {
		if !seen[id] {
			t.Errorf("no event span under the send for event %s (saw %v)", id, seen)
		}
	}
	if server.Attrs["http.route"] != "/v1/streams/{id}/events" {
		t.Errorf("HTTP span attributes %v: want http.route /v1/streams/{id}/events", server.Attrs)
	}
}

// checkResultsHeader reads the stream's results records back with a plain
// Kafka client and checks that the traced one carries the trace in its
// traceparent header.
func checkResultsHeader(t *testing.T, brokers, topic, streamID, traceID string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	consumer, err := sarama.NewConsumer(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, p := range parts {
		for _, m := range readPartition(t, consumer, topic, p) {
			if string(m.Key) != streamID {
				continue
			}
			for _, h := range m.Headers {
				if string(h.Key) == "traceparent" {
					seen = append(seen, string(h.Value))
					if strings.HasPrefix(string(h.Value), "00-"+traceID+"-") {
						return
					}
				}
			}
		}
	}
	t.Errorf("no results record of stream %s in %s carries traceparent 00-%s-…; traceparents seen: %v", streamID, topic, traceID, seen)
}

// readPartition returns the records a partition holds now.
func readPartition(t *testing.T, c sarama.Consumer, topic string, p int32) []*sarama.ConsumerMessage {
	t.Helper()
	pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	end := pc.HighWaterMarkOffset()
	for int64(len(out)) < end {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
			if m.Offset+1 >= end {
				return out
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s/%d: read %d records, high water mark %d", topic, p, len(out), end)
		}
	}
	return out
}

// checkLogsCarry checks that the server logged the traced request's line
// with its trace id.
func checkLogsCarry(t *testing.T, s *server, traceID string) {
	t.Helper()
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "msg=request") && strings.Contains(line, "route=/v1/streams/{id}/events") &&
			strings.Contains(line, "trace_id="+traceID) && strings.Contains(line, "span_id=") {
			return
		}
	}
	t.Errorf("server %s logged no request line with trace_id=%s and a span_id", s.name, traceID)
}

// checkExemplar scrapes base's metrics in the OpenMetrics format and looks
// for a bucket of metric whose exemplar is the trace.
func checkExemplar(t *testing.T, base, metric, traceID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	req.Header.Set("X-API-Key", apiKey)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("%s/metrics answered %s to an OpenMetrics scrape", base, ct)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, `# {trace_id="`+traceID+`"}`) {
			return
		}
	}
	t.Errorf("%s/metrics: no %s with the exemplar trace_id=%q", base, metric, traceID)
}
