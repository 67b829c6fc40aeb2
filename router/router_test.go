package router_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/internal/testenv"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
	"github.com/rtstream/rtstream/router"
)

func TestProcessIsPassthrough(t *testing.T) {
	in := record.EventBatch{StreamID: "s", Events: []rtstream.Event{
		{ID: "e1", ReceivedAt: time.Unix(1, 0).UTC(), Data: json.RawMessage(`{"t":1}`)},
		{ID: "e2", ReceivedAt: time.Unix(2, 0).UTC(), Data: json.RawMessage(`[2]`)},
	}}
	payload, _ := json.Marshal(in)
	out, err := router.Process(message.NewMessage("m", payload))
	if err != nil || len(out) != 1 {
		t.Fatalf("Process = %v, %v", out, err)
	}
	if k := out[0].Metadata.Get(pubsub.KeyMetadata); k != "s" {
		t.Fatalf("result key %q; want the stream id", k)
	}
	var b record.ResultBatch
	if err := json.Unmarshal(out[0].Payload, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Results) != 2 || b.Results[1].EventID != "e2" || string(b.Results[1].Data) != `[2]` ||
		!b.Results[0].ReceivedAt.Equal(in.Events[0].ReceivedAt) || b.Results[0].ProcessedAt.IsZero() || b.Results[0].StreamID != "s" {
		t.Fatalf("results %+v", b)
	}
}

func TestProcessRejectsUnreadableRecordsPermanently(t *testing.T) {
	for _, payload := range []string{`not json`, `{"stream_id":"bad id","events":[]}`} {
		_, err := router.Process(message.NewMessage("m", []byte(payload)))
		if !router.IsPermanent(err) {
			t.Errorf("Process(%q) error %v is not permanent", payload, err)
		}
	}
}

// TestRouterOnKafka runs the router against the real broker: a good record
// becomes a results record that names its source, an unreadable one goes to
// the poison topic with its reason, and the router carries on.
func TestRouterOnKafka(t *testing.T) {
	cfg, pub := startRouter(t, "test-router-", 2, router.Config{})
	send := func(payload string) {
		m := message.NewMessage(watermill.NewUUID(), []byte(payload))
		m.Metadata.Set(pubsub.KeyMetadata, "s")
		if err := pub.Publish(cfg.Topics().Events, m); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"stream_id":"s","events":[{"event_id":"e1","received_at":"2026-01-01T00:00:00Z","data":1}]}`)
	send(`garbage`)
	send(`{"stream_id":"s","events":[{"event_id":"e2","received_at":"2026-01-01T00:00:00Z","data":2}]}`)

	results := readAll(t, cfg, cfg.Topics().Results, 2)
	var ids []string
	for _, m := range results {
		var b record.ResultBatch
		if err := json.Unmarshal(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.Results[0].EventID)
		if b.Source.Offset < 0 || b.StreamID != "s" {
			t.Errorf("result batch %+v lacks its source", b)
		}
	}
	if strings.Join(ids, ",") != "e1,e2" {
		t.Fatalf("results %v; want e1,e2 in order", ids)
	}
	poisoned := readAll(t, cfg, cfg.Topics().Poison, 1)
	if string(poisoned[0].Value) != "garbage" {
		t.Fatalf("poison record %q", poisoned[0].Value)
	}
	reason := ""
	for _, h := range poisoned[0].Headers {
		if string(h.Key) == "reason_poisoned" {
			reason = string(h.Value)
		}
	}
	if !strings.Contains(reason, "unreadable event record") {
		t.Fatalf("poison reason %q", reason)
	}
}

// startRouter runs a router on the real broker with fresh topics (deleted
// when the test ends) and returns their configuration and a publisher to
// them. rc's topics and consumer group are filled in. Without a broker the
// test skips, except under CI, which must never skip.
func startRouter(t *testing.T, prefix string, partitions int32, rc router.Config) (pubsub.Config, message.Publisher) {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	cfg := pubsub.Config{Brokers: strings.Split(brokers, ","), TopicPrefix: prefix + watermill.NewShortUUID(), Partitions: partitions}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	if err := pubsub.EnsureTopics(ctx, cfg); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopics(t, cfg) })
	pub, err := pubsub.NewPublisher(cfg, 0, 2, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	sub, err := pubsub.NewSubscriber(cfg, cfg.TopicPrefix+"-router", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rc.Topics, rc.ConsumerGroup = cfg.Topics(), cfg.TopicPrefix+"-router"
	r, err := router.New(rc, sub, pub, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Cleanups run last-in first-out: the router stops before the
	// publisher closes and the topics go.
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-r.Running()
	return cfg, pub
}

// readAll reads n records from topic's partitions, waiting for them.
func readAll(t *testing.T, cfg pubsub.Config, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *sarama.ConsumerMessage, n)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				out <- m
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	for len(got) < n {
		select {
		case m := <-out:
			got = append(got, m)
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: got %d records; want %d", topic, len(got), n)
		}
	}
	return got
}

// deleteTopics removes the test's topics so the shared broker does not fill up.
func deleteTopics(t *testing.T, cfg pubsub.Config) {
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer admin.Close()
	tp := cfg.Topics()
	for _, name := range []string{tp.Events, tp.Results, tp.Streams, tp.Poison} {
		if err := admin.DeleteTopic(name); err != nil {
			t.Logf("cleanup: delete %s: %v", name, err)
		}
	}
}
