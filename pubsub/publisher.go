package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
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
	producer sarama.AsyncProducer
	marshal  kafka.Marshaler
	timeout  time.Duration

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

// NewPublisher connects an async producer with cfg's no-loss settings.
// publishTimeout bounds how long Publish waits for acknowledgements
// (default 10 s).
func NewPublisher(cfg Config, publishTimeout time.Duration) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if publishTimeout <= 0 {
		publishTimeout = DefaultPublishTimeout
	}
	producer, err := sarama.NewAsyncProducer(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("pubsub: start producer: %w", err)
	}
	p := &Publisher{
		producer: producer,
		marshal: kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
			return m.Metadata.Get(KeyMetadata), nil
		}),
		timeout: publishTimeout,
	}
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
	return p, nil
}

// Publish sends msgs to topic and waits until Kafka acknowledged all of them.
// The wait ends early when the first message's context is done. On error some
// of the messages may still have been written: delivery is at-least-once.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
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
		case p.producer.Input() <- r:
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
		return fmt.Errorf("pubsub: publish to %s: waiting for acks: %w", topic, ctx.Err())
	}
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
	p.producer.AsyncClose()
	p.drain.Wait()
	return nil
}

var _ message.Publisher = (*Publisher)(nil)
