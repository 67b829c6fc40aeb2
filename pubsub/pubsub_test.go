package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/internal/testenv"
	"github.com/rtstream/rtstream/pubsub"
)

// testConfig returns a Config on the real broker named by
// RTSTREAM_TEST_KAFKA_BROKERS, with topics of its own.
func testConfig(t *testing.T) pubsub.Config {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	cfg := pubsub.Config{
		Brokers:     strings.Split(brokers, ","),
		TopicPrefix: fmt.Sprintf("test-%s-%s", strings.ToLower(t.Name()), watermill.NewShortUUID()),
		Partitions:  4,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := pubsub.EnsureTopics(ctx, cfg); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	t.Cleanup(func() { deleteTopics(t, cfg) })
	return cfg
}

// deleteTopics removes a test's topics so the shared broker does not fill up.
func deleteTopics(t *testing.T, cfg pubsub.Config) {
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer admin.Close()
	tp := cfg.Topics()
	for _, name := range []string{tp.Events, tp.Results, tp.Streams, tp.Poison, tp.Marks} {
		if err := admin.DeleteTopic(name); err != nil {
			t.Logf("cleanup: delete %s: %v", name, err)
		}
	}
}

func TestEnsureTopicsCreatesTheLayoutOnce(t *testing.T) {
	cfg := testConfig(t)
	// A second call finds the topics and leaves them alone.
	if err := pubsub.EnsureTopics(t.Context(), cfg); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	tp := cfg.Topics()
	metas, err := admin.DescribeTopics([]string{tp.Events, tp.Results, tp.Streams, tp.Poison, tp.Marks})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, m := range metas {
		parts[m.Name] = len(m.Partitions)
	}
	want := map[string]int{tp.Events: 4, tp.Results: 4, tp.Streams: 1, tp.Poison: 4, tp.Marks: 4}
	for name, n := range want {
		if parts[name] != n {
			t.Errorf("%s has %d partitions; want %d", name, parts[name], n)
		}
	}
	for _, topic := range []string{tp.Streams, tp.Marks} {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			t.Fatal(err)
		}
		compact := false
		for _, e := range entries {
			if e.Name == "cleanup.policy" && e.Value == "compact" {
				compact = true
			}
		}
		if !compact {
			t.Errorf("%s is not compacted", topic)
		}
	}
}

func TestPublisherAcknowledgesEveryRecordInOrderPerKey(t *testing.T) {
	cfg := testConfig(t)
	pub, err := pubsub.NewPublisher(cfg, 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	const keys, perKey = 5, 100
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := 0; k < keys; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perKey; i += 10 {
				msgs := make([]*message.Message, 10)
				for j := range msgs {
					msgs[j] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%d", i+j)))
					msgs[j].Metadata.Set(pubsub.KeyMetadata, fmt.Sprintf("key-%d", k))
				}
				if err := pub.Publish(cfg.Topics().Events, msgs...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}

	// Everything acknowledged is in Kafka, in publish order per key.
	consumer, err := sarama.NewConsumer(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string][]string{}
	total := 0
	for p := int32(0); p < 4; p++ {
		pc, err := consumer.ConsumePartition(cfg.Topics().Events, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		hwm := pc.HighWaterMarkOffset()
		for off := int64(0); off < hwm; off++ {
			select {
			case m := <-pc.Messages():
				got[string(m.Key)] = append(got[string(m.Key)], string(m.Value))
				total++
			case <-time.After(10 * time.Second):
				t.Fatalf("partition %d: timed out at offset %d of %d", p, off, hwm)
			}
		}
		pc.Close()
	}
	if total != keys*perKey {
		t.Fatalf("found %d records; want %d", total, keys*perKey)
	}
	for k, vals := range got {
		for i, v := range vals {
			if v != fmt.Sprint(i) {
				t.Fatalf("%s: record %d is %s; order lost", k, i, v)
			}
		}
	}
}

func TestRegistryReadYourWritesAcrossInstances(t *testing.T) {
	cfg := testConfig(t)
	log := slog.New(slog.DiscardHandler)
	a, err := pubsub.OpenRegistry(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	deleted := make(chan string, 1)
	b, err := pubsub.OpenRegistry(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.OnDelete(func(id string) { deleted <- id })

	ctx := t.Context()
	s := rtstream.Stream{ID: "s1", Name: "one", CreatedAt: time.Now().UTC()}
	if _, created, err := a.Create(ctx, s); err != nil || !created {
		t.Fatalf("Create on A: created=%v err=%v", created, err)
	}
	// B has never seen s1: the miss makes it read up to Kafka's end.
	got, err := b.Get(ctx, "s1")
	if err != nil || got.Name != "one" {
		t.Fatalf("Get on B right after Create on A: %+v, %v", got, err)
	}
	if _, created, err := b.Create(ctx, s); err != nil || created {
		t.Fatalf("same definition again: created=%v err=%v; want existing", created, err)
	}
	if _, _, err := b.Create(ctx, rtstream.Stream{ID: "s1", Name: "other"}); !errors.Is(err, rtstream.ErrConflict) {
		t.Fatalf("different definition: err=%v; want ErrConflict", err)
	}
	if _, err := b.Get(ctx, "nope"); !errors.Is(err, rtstream.ErrNotFound) {
		t.Fatalf("Get unknown: %v; want ErrNotFound", err)
	}
	if err := a.Delete(ctx, "s1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := a.Get(ctx, "s1"); !errors.Is(err, rtstream.ErrNotFound) {
		t.Fatalf("Get after Delete on A: %v; want ErrNotFound", err)
	}
	// Get on B catches up first, so the delete is seen at once.
	if _, err := b.Get(ctx, "s1"); !errors.Is(err, rtstream.ErrNotFound) {
		t.Fatalf("Get on B right after Delete on A: %v; want ErrNotFound", err)
	}
	select {
	case id := <-deleted:
		if id != "s1" {
			t.Fatalf("onDelete(%q)", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B never saw the delete")
	}
	if err := a.Delete(ctx, "s1"); !errors.Is(err, rtstream.ErrNotFound) {
		t.Fatalf("second Delete: %v; want ErrNotFound", err)
	}

	// A new instance loads the registry from the topic.
	for _, id := range []string{"c", "a", "b"} {
		if _, _, err := a.Create(ctx, rtstream.Stream{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pubsub.OpenRegistry(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.List(ctx, "", "a", 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "b,c" {
		t.Fatalf("List after a = %v; want [b c]", ids)
	}
}

func TestEventsSendOneRecordPerRequest(t *testing.T) {
	cfg := testConfig(t)
	pub, err := pubsub.NewPublisher(cfg, 0, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ev := pubsub.NewEvents(cfg, pub, nil)
	ids, err := ev.Send(t.Context(), "s", []json.RawMessage{[]byte(`1`), []byte(`{"a":2}`)})
	if err != nil || len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("Send = %v, %v", ids, err)
	}
	big := make([]json.RawMessage, 1)
	big[0] = json.RawMessage(`"` + strings.Repeat("x", pubsub.DefaultMaxRecordBytes) + `"`)
	if _, err := ev.Send(t.Context(), "s", big); !errors.Is(err, rtstream.ErrTooLarge) {
		t.Fatalf("oversized Send: %v; want ErrTooLarge", err)
	}
}
