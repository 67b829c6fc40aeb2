package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
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
	reg := &scripted{failures: 3, calls: map[string]int{}}
	// One partition, so that the order of the results across streams is the
	// order the records were sent in.
	cfg, pub := startRouter(t, "test-routermw-", 1, router.Config{
		Streams: reg, MaxRetries: 5, RetryInitialInterval: 10 * time.Millisecond,
	})

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
		var b record.ResultBatch
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
