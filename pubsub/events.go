package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// Events writes send requests to the events topic.
type Events struct {
	pub      message.Publisher
	topic    string
	maxBytes int
}

// NewEvents sends through pub to cfg's events topic.
func NewEvents(cfg Config, pub message.Publisher) *Events {
	cfg.setDefaults()
	return &Events{pub: pub, topic: cfg.Topics().Events, maxBytes: cfg.MaxRecordBytes}
}

func recordSize(data []json.RawMessage) int {
	n := 0
	for _, d := range data {
		n += len(d)
	}
	return n
}

// Send writes the events of one request as one record keyed by the stream, and
// returns their ids once Kafka has acknowledged it. Each event must be valid
// JSON without line breaks; the HTTP layer checks and compacts them. One record per request is
// what makes a request all-or-nothing; one key per stream is what keeps a
// stream's events in order.
func (e *Events) Send(ctx context.Context, streamID string, data []json.RawMessage) ([]string, error) {
	now := time.Now().UTC()
	batch := record.EventBatch{StreamID: streamID, Events: make([]rtstream.Event, len(data))}
	ids := make([]string, len(data))
	for i, d := range data {
		ids[i] = watermill.NewULID()
		batch.Events[i] = rtstream.Event{ID: ids[i], ReceivedAt: now, Data: d}
	}
	payload := batch.AppendJSON(make([]byte, 0, 128*len(data)+recordSize(data)))
	if len(payload) > e.maxBytes {
		return nil, fmt.Errorf("encoded request is %d bytes, over %d: %w", len(payload), e.maxBytes, rtstream.ErrTooLarge)
	}
	msg := message.NewMessage(watermill.NewULID(), payload)
	msg.Metadata.Set(KeyMetadata, streamID)
	msg.SetContext(ctx)
	if err := e.pub.Publish(e.topic, msg); err != nil {
		return nil, fmt.Errorf("%w: %w", rtstream.ErrUnavailable, err)
	}
	return ids, nil
}
