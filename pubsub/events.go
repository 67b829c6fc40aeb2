package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/record"
)

// Events writes send requests to the events topic.
type Events struct {
	pub      message.Publisher
	topic    string
	maxBytes int
	tracing  *observability.Tracing
}

// NewEvents sends through pub to cfg's events topic. With tr, each send is a
// span and its record carries the span's context (nil: none).
func NewEvents(cfg Config, pub message.Publisher, tr *observability.Tracing) *Events {
	cfg.setDefaults()
	return &Events{pub: pub, topic: cfg.Topics().Events, maxBytes: cfg.MaxRecordBytes, tracing: tr}
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
	span := trace.SpanFromContext(ctx)
	if e.tracing != nil {
		ctx, span = e.startSend(ctx, streamID, ids)
		defer span.End()
		e.tracing.Inject(ctx, msg.Metadata)
	}
	msg.SetContext(ctx)
	if err := e.pub.Publish(e.topic, msg); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("%w: %w", rtstream.ErrUnavailable, err)
	}
	return ids, nil
}

// startSend starts the span of one send, whose context the record carries:
// a producer span for the record and, where a batch has several events, a
// span for each event under it, so that an event id finds its trace.
func (e *Events) startSend(ctx context.Context, streamID string, ids []string) (context.Context, trace.Span) {
	ctx, span := e.tracing.Start(ctx, "send "+e.topic, trace.SpanKindProducer,
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.destination.name", e.topic),
		attribute.String("rtstream.stream_id", streamID),
		attribute.Int("messaging.batch.message_count", len(ids)))
	if !span.IsRecording() {
		return ctx, span
	}
	if len(ids) == 1 {
		span.SetAttributes(attribute.String("rtstream.event_id", ids[0]))
		return ctx, span
	}
	for _, id := range ids {
		_, ev := e.tracing.Start(ctx, "event", trace.SpanKindInternal, attribute.String("rtstream.event_id", id))
		ev.End()
	}
	return ctx, span
}
