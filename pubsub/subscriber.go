package pubsub

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"

	"github.com/rtstream/rtstream/record"
)

// NewSubscriber is a watermill-kafka subscriber in consumer group group, with
// cfg's settings: it starts from the oldest offset, so a new group skips
// nothing, and marks an offset only after the router acknowledged the message,
// so an offset is committed only once its message was processed.
func NewSubscriber(cfg Config, group string, logger watermill.LoggerAdapter) (*kafka.Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg.SaramaConfig(),
		ConsumerGroup:         group,
		// Topics are created by EnsureTopics with the right settings.
		DoNotWaitForTopicCreation: true,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscriber for group %s: %w", group, err)
	}
	return sub, nil
}

// SourcePosition is the Kafka position of the message the router is handling,
// from the context watermill-kafka gives it.
func SourcePosition(ctx context.Context) record.Position {
	p, _ := kafka.MessagePartitionFromCtx(ctx)
	o, _ := kafka.MessagePartitionOffsetFromCtx(ctx)
	return record.Position{Partition: p, Offset: o}
}
