package pubsub_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/pubsub"
)

// TestMarksKeepTheLastMarkPerPartition: each events partition has its own
// mark, the last one put, read back by a store opened later (another
// process), and End follows the events partition.
func TestMarksKeepTheLastMarkPerPartition(t *testing.T) {
	cfg := testConfig(t)
	ctx := t.Context()
	m, err := pubsub.OpenMarks(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, err := m.Last(ctx, 2); err != nil || got != nil {
		t.Fatalf("Last of a partition never marked = %q, %v; want nil", got, err)
	}
	for i := range 3 {
		for p := int32(0); p < 4; p++ {
			if err := m.Put(ctx, p, fmt.Appendf(nil, "p%d-%d", p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	later, err := pubsub.OpenMarks(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	for p := int32(0); p < 4; p++ {
		if got, err := later.Last(ctx, p); err != nil || string(got) != fmt.Sprintf("p%d-2", p) {
			t.Errorf("Last(%d) = %q, %v; want p%d-2", p, got, err, p)
		}
	}

	producer, err := sarama.NewSyncProducer(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	part, off, err := producer.SendMessage(&sarama.ProducerMessage{Topic: cfg.Topics().Events, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := m.End(ctx, part); err != nil || end != off+1 {
		t.Fatalf("End(%d) = %d, %v; want %d", part, end, err, off+1)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Put(canceled, 0, []byte("x")); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
}
