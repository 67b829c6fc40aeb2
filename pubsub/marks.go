package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
)

// Marks is the router's crash-mark store: one small value per partition of
// the events topic, kept in the compacted marks topic, whose partition p holds
// the marks of events partition p. Only the instance that consumes events
// partition p writes to marks partition p, so the last record of a marks
// partition is that partition's current mark. What a mark means belongs to
// the router; here it is bytes.
type Marks struct {
	topic, events string
	client        sarama.Client
	producer      sarama.SyncProducer
}

// OpenMarks connects the store. The marks topic must exist (EnsureTopics) with
// at least as many partitions as the events topic.
func OpenMarks(cfg Config) (*Marks, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc := cfg.SaramaConfig()
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("pubsub: marks client: %w", err)
	}
	t := cfg.Topics()
	m := &Marks{topic: t.Marks, events: t.Events, client: client}
	if err := m.checkPartitions(); err != nil {
		client.Close()
		return nil, err
	}
	if m.producer, err = sarama.NewSyncProducerFromClient(client); err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: marks producer: %w", err)
	}
	return m, nil
}

func (m *Marks) checkPartitions() error {
	events, err := m.client.Partitions(m.events)
	if err != nil {
		return fmt.Errorf("pubsub: partitions of %s: %w", m.events, err)
	}
	marks, err := m.client.Partitions(m.topic)
	if err != nil {
		return fmt.Errorf("pubsub: partitions of %s: %w", m.topic, err)
	}
	if len(marks) < len(events) {
		return fmt.Errorf("pubsub: %s has %d partitions, fewer than the %d of %s: add partitions to it",
			m.topic, len(marks), len(events), m.events)
	}
	return nil
}

// Last returns the current mark of events partition p, nil when it has none.
func (m *Marks) Last(ctx context.Context, p int32) ([]byte, error) {
	end, err := m.client.GetOffset(m.topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("pubsub: end of %s/%d: %w", m.topic, p, err)
	}
	if end == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := m.fetch(p, end-1)
	if err != nil {
		// A moved leader shows as an error here; the caller retries.
		_ = m.client.RefreshMetadata(m.topic)
		return nil, fmt.Errorf("pubsub: read %s/%d: %w", m.topic, p, err)
	}
	return v, nil
}

// fetch reads the record at offset with one Fetch request to the leader: a
// partition consumer would cost its batching and closing delays (0.6 s
// measured), and every partition's first record waits for this read.
func (m *Marks) fetch(p int32, offset int64) ([]byte, error) {
	leader, err := m.client.Leader(m.topic, p)
	if err != nil {
		return nil, err
	}
	const maxBytes = 1 << 20
	// Version 11 is what Sarama's consumer sends at the protocol version
	// SaramaConfig sets; without a fetch session, ID 0 and epoch -1.
	req := &sarama.FetchRequest{Version: 11, MaxWaitTime: 100, MinBytes: 1, MaxBytes: maxBytes,
		Isolation: sarama.ReadUncommitted, SessionID: 0, SessionEpoch: -1}
	req.AddBlock(m.topic, p, offset, maxBytes, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		return nil, err
	}
	block := resp.GetBlock(m.topic, p)
	if block == nil {
		return nil, errors.New("no answer for the partition")
	}
	if block.Err != sarama.ErrNoError {
		return nil, block.Err
	}
	for _, set := range block.RecordsSet {
		if set.RecordBatch == nil {
			continue
		}
		for _, r := range set.RecordBatch.Records {
			if set.RecordBatch.FirstOffset+r.OffsetDelta == offset {
				return r.Value, nil
			}
		}
	}
	return nil, fmt.Errorf("no record at offset %d", offset)
}

// Put makes mark the current mark of events partition p once the brokers
// have acknowledged it.
func (m *Marks) Put(ctx context.Context, p int32, mark []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := &sarama.ProducerMessage{
		Topic:     m.topic,
		Partition: p,
		Key:       sarama.StringEncoder(strconv.Itoa(int(p))),
		Value:     sarama.ByteEncoder(mark),
	}
	stampFormat(msg)
	_, _, err := m.producer.SendMessage(msg)
	if err != nil {
		return fmt.Errorf("pubsub: write mark %s/%d: %w", m.topic, p, err)
	}
	return nil
}

// End is the events partition's high-water mark: the offset the next event
// record written to it will get.
func (m *Marks) End(ctx context.Context, p int32) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	end, err := m.client.GetOffset(m.events, p, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("pubsub: end of %s/%d: %w", m.events, p, err)
	}
	return end, nil
}

// Close releases the connections.
func (m *Marks) Close() error {
	return errors.Join(m.producer.Close(), m.client.Close())
}
