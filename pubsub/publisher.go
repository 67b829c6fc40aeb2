package pubsub

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/record"
)

// KeyMetadata is the message metadata field whose value becomes the Kafka key.
// Every record of one stream carries the stream id there, so the stream's
// records share a partition and keep their order.
const KeyMetadata = "stream_id"

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("pubsub: publisher closed")

// Publisher is a Watermill message.Publisher over Sarama's async producer.
//
// watermill-kafka's own publisher sends one record at a time through the sync
// producer, so concurrent callers each wait a full round trip. Here every
// caller's records go into one async producer, which batches whatever is
// pending into one request per broker; Publish still returns only when Kafka
// has acknowledged (acks=all) every record it was given, or with an error.
type Publisher struct {
	// producers each have their own connection and in-flight request; a
	// key always goes to the same one, which keeps its records in order.
	producers []sarama.AsyncProducer
	marshal   kafka.Marshaler
	timeout   time.Duration
	metrics   *observability.Metrics

	mu     sync.RWMutex // guards closed against sends into a closed input
	closed bool
	drain  sync.WaitGroup
}

// call tracks the acknowledgements of one Publish.
type call struct {
	remaining atomic.Int64
	errOnce   sync.Once
	err       error
	done      chan struct{}
}

func (c *call) finish(err error) {
	if err != nil {
		c.errOnce.Do(func() { c.err = err })
	}
	if c.remaining.Add(-1) == 0 {
		close(c.done)
	}
}

// NewPublisher connects producers async producers (default 1) with cfg's
// no-loss settings. Sarama allows an idempotent producer one request in flight
// per broker, so a publisher that many goroutines wait on (the router: one
// per partition) gets more throughput from more producers. publishTimeout
// bounds how long Publish waits for acknowledgements (default 10 s).
func NewPublisher(cfg Config, publishTimeout time.Duration, producers int, m *observability.Metrics) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if publishTimeout <= 0 {
		publishTimeout = DefaultPublishTimeout
	}
	if producers <= 0 {
		producers = 1
	}
	p := &Publisher{
		marshal: kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
			return m.Metadata.Get(KeyMetadata), nil
		}),
		timeout: publishTimeout,
		metrics: m,
	}
	for range producers {
		producer, err := sarama.NewAsyncProducer(cfg.Brokers, cfg.SaramaConfig())
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("pubsub: start producer: %w", err)
		}
		p.producers = append(p.producers, producer)
		p.drain.Add(2)
		go func() {
			defer p.drain.Done()
			for m := range producer.Successes() {
				m.Metadata.(*call).finish(nil)
			}
		}()
		go func() {
			defer p.drain.Done()
			for e := range producer.Errors() {
				e.Msg.Metadata.(*call).finish(e.Err)
			}
		}()
	}
	return p, nil
}

// producerFor picks the producer of a key.
func (p *Publisher) producerFor(key string) sarama.AsyncProducer {
	if len(p.producers) == 1 {
		return p.producers[0]
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return p.producers[h.Sum32()%uint32(len(p.producers))]
}

// Publish sends msgs to topic and waits until Kafka acknowledged all of them.
// The wait ends early when the first message's context is done. On error some
// of the messages may still have been written: delivery is at-least-once.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	err := p.publish(topic, msgs)
	p.metrics.Published(topic, len(msgs), time.Since(start), err)
	return err
}

func (p *Publisher) publish(topic string, msgs []*message.Message) error {
	ctx := msgs[0].Context()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	c := &call{done: make(chan struct{})}
	c.remaining.Store(int64(len(msgs)))
	records := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		r, err := p.marshal.Marshal(topic, m)
		if err != nil {
			return fmt.Errorf("pubsub: marshal %s: %w", m.UUID, err)
		}
		stampFormat(r)
		r.Metadata = c
		records[i] = r
	}

	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrPublisherClosed
	}
	for i, r := range records {
		select {
		case p.producerFor(msgs[i].Metadata.Get(KeyMetadata)).Input() <- r:
		case <-ctx.Done():
			// The records not handed over will never be acknowledged.
			for range records[i:] {
				c.finish(ctx.Err())
			}
			p.mu.RUnlock()
			return fmt.Errorf("pubsub: publish to %s: %w", topic, ctx.Err())
		}
	}
	p.mu.RUnlock()

	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("pubsub: publish to %s: %w", topic, c.err)
		}
		return nil
	case <-ctx.Done():
		// The records are with the producer, which keeps retrying them:
		// they may yet be stored.
		return fmt.Errorf("pubsub: publish to %s: waiting for acks: %w: %w", topic, rtstream.ErrUnconfirmed, ctx.Err())
	}
}

// The version header's name and value, shared by every record: Sarama only
// reads a header's bytes, when it encodes the record.
var (
	formatKey   = []byte(record.HeaderFormat)
	formatValue = []byte(record.FormatVersion)
)

// stampFormat marks r as a record of rtstream's format, the version this
// build writes (docs/records.md), so that other consumers of the topics can
// tell which format a record's value follows. Every producer of rtstream's
// records calls it on what it sends: the publisher (events, results, dead
// letters), the registry and the crash marks. A header the record already
// has is replaced, not added to: a record the PoisonQueue republishes keeps
// the headers it was consumed with, and one header per name is what readers
// that keep the first or the last agree on.
func stampFormat(r *sarama.ProducerMessage) {
	for i := range r.Headers {
		if string(r.Headers[i].Key) == record.HeaderFormat {
			r.Headers[i].Value = formatValue
			return
		}
	}
	r.Headers = append(r.Headers, sarama.RecordHeader{Key: formatKey, Value: formatValue})
}

// Close flushes what is buffered, waits for its acknowledgements and stops the
// producer. Publish calls that are still waiting get their answers first.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	for _, producer := range p.producers {
		producer.AsyncClose()
	}
	p.drain.Wait()
	return nil
}

var _ message.Publisher = (*Publisher)(nil)
