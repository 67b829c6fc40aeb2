package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/router"
)

// scripted is a registry whose lookups fail as a test says: "flaky" fails
// transiently failures times before it answers, "boom" panics, any other
// stream is a passthrough. It counts lookups per stream.
type scripted struct {
	mu       sync.Mutex
	failures int
	calls    map[string]int
}

func (s *scripted) GetCached(_ context.Context, id string) (rtstream.Stream, error) {
	s.mu.Lock()
	s.calls[id]++
	n := s.calls[id]
	s.mu.Unlock()
	switch {
	case id == "boom":
		panic("processor blew up")
	case id == "flaky" && n <= s.failures:
		return rtstream.Stream{}, fmt.Errorf("registry: %w", rtstream.ErrUnavailable)
	}
	return rtstream.Stream{ID: id}, nil
}

func (s *scripted) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// TestRouterMiddlewareOnKafka checks the router's middleware chain on the real
// broker: a transient failure is retried by the Retry middleware until it
// succeeds (its result arrives, nothing is poisoned); a panic is recovered,
// not retried, and its record goes to the poison topic with the panic as the
// reason; the records after both are processed, in order.
func TestRouterMiddlewareOnKafka(t *testing.T) {
	brokers := os.Getenv("RTSTREAM_TEST_KAFKA_BROKERS")
	if brokers == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("RTSTREAM_TEST_KAFKA_BROKERS is not set; CI must run against the real broker")
		}
		t.Skip("needs a real Kafka: run `make test`")
	}
	// One partition, so that the order of the results across streams is the
	// order the records were sent in.
	cfg := pubsub.Config{Brokers: strings.Split(brokers, ","), TopicPrefix: "test-routermw-" + watermill.NewShortUUID(), Partitions: 1}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := pubsub.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopics(t, cfg) })
	pub, err := pubsub.NewPublisher(cfg, 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := pubsub.NewSubscriber(cfg, cfg.TopicPrefix+"-router", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := &scripted{failures: 3, calls: map[string]int{}}
	r, err := router.New(router.Config{
		Topics: cfg.Topics(), Streams: reg, ConsumerGroup: cfg.TopicPrefix + "-router",
		MaxRetries: 5, RetryInitialInterval: 10 * time.Millisecond,
	}, sub, pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-r.Running()

	for i, stream := range []string{"flaky", "boom", "ok"} {
		payload := fmt.Sprintf(`{"stream_id":%q,"events":[{"event_id":"e%d","received_at":"2026-01-01T00:00:00Z","data":%d}]}`, stream, i, i)
		m := message.NewMessage(watermill.NewUUID(), []byte(payload))
		m.Metadata.Set(pubsub.KeyMetadata, stream)
		if err := pub.Publish(cfg.Topics().Events, m); err != nil {
			t.Fatal(err)
		}
	}

	var got []string
	for _, m := range readAll(t, cfg, cfg.Topics().Results, 2) {
		var b rtstream.ResultBatch
		if err := json.Unmarshal(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b.StreamID+"/"+b.Results[0].EventID)
	}
	if want := []string{"flaky/e0", "ok/e2"}; !slices.Equal(got, want) {
		t.Fatalf("results %v; want %v", got, want)
	}
	poisoned := readAll(t, cfg, cfg.Topics().Poison, 1)
	if !strings.Contains(string(poisoned[0].Value), `"stream_id":"boom"`) {
		t.Fatalf("poison record %s; want the boom record", poisoned[0].Value)
	}
	reason := ""
	for _, h := range poisoned[0].Headers {
		if string(h.Key) == "reason_poisoned" {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "processor blew up") {
		t.Fatalf("poison reason %q; want the panic", reason)
	}
	if n := reg.count("flaky"); n != reg.failures+1 {
		t.Errorf("flaky looked up %d times; want %d (retried until it succeeded)", n, reg.failures+1)
	}
	if n := reg.count("boom"); n != 1 {
		t.Errorf("boom looked up %d times; a panic must not be retried", n)
	}
}
