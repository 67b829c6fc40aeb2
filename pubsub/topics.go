package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// EnsureTopics creates rtstream's topics when they are missing. Existing topics
// are left as they are: changing partitions under a running deployment would
// move streams between partitions and break their order.
func EnsureTopics(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return fmt.Errorf("pubsub: connect admin: %w", err)
	}
	defer admin.Close()

	maxBytes := strconv.Itoa(cfg.MaxRecordBytes + 64<<10)
	str := func(s string) *string { return &s }
	t := cfg.Topics()
	want := map[string]*sarama.TopicDetail{
		t.Events:  {NumPartitions: cfg.Partitions, ReplicationFactor: cfg.Replication, ConfigEntries: map[string]*string{"max.message.bytes": str(maxBytes)}},
		t.Results: {NumPartitions: cfg.Partitions, ReplicationFactor: cfg.Replication, ConfigEntries: map[string]*string{"max.message.bytes": str(maxBytes)}},
		// One partition: the registry is read to its end to answer
		// read-your-writes, and one partition makes "the end" one offset.
		t.Streams: {NumPartitions: 1, ReplicationFactor: cfg.Replication, ConfigEntries: map[string]*string{"cleanup.policy": str("compact")}},
		t.Poison:  {NumPartitions: cfg.Partitions, ReplicationFactor: cfg.Replication, ConfigEntries: map[string]*string{"max.message.bytes": str(maxBytes)}},
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("pubsub: list topics: %w", err)
	}
	for name, detail := range want {
		if err := createMissing(admin, existing, name, detail); err != nil {
			return err
		}
	}
	// The marks topic mirrors the events topic's partitions, which an
	// existing deployment may have set to another number than cfg's.
	n, err := partitionCount(ctx, admin, t.Events)
	if err != nil {
		return err
	}
	marks := &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: cfg.Replication,
		ConfigEntries: map[string]*string{"cleanup.policy": str("compact")}}
	if err := createMissing(admin, existing, t.Marks, marks); err != nil {
		return err
	}
	return waitForLeaders(ctx, cfg, t)
}

func createMissing(admin sarama.ClusterAdmin, existing map[string]sarama.TopicDetail, name string, detail *sarama.TopicDetail) error {
	if _, ok := existing[name]; ok {
		return nil
	}
	err := admin.CreateTopic(name, detail, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("pubsub: create topic %s: %w", name, err)
	}
	return nil
}

// partitionCount describes topic until the brokers know it: a topic created
// a moment ago may not be in every broker's metadata yet.
func partitionCount(ctx context.Context, admin sarama.ClusterAdmin, topic string) (int32, error) {
	for {
		md, err := admin.DescribeTopics([]string{topic})
		if err == nil && len(md) == 1 {
			if err = md[0].Err; md[0].Err == sarama.ErrNoError {
				return int32(len(md[0].Partitions)), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("pubsub: describe %s: %w", topic, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitForLeaders returns once every partition of every topic has a leader that
// serves it, so that the first produce or consume after start-up does not fail.
func waitForLeaders(ctx context.Context, cfg Config, t Topics) error {
	client, err := sarama.NewClient(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return fmt.Errorf("pubsub: connect: %w", err)
	}
	defer client.Close()
	for {
		err := client.RefreshMetadata(t.Events, t.Results, t.Streams, t.Poison, t.Marks)
		if err == nil {
			err = allLeaders(client, t.Events, t.Results, t.Streams, t.Poison, t.Marks)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pubsub: topics not ready: %w", errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLeaders(client sarama.Client, topics ...string) error {
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			// A leader in the metadata is not enough on a freshly created
			// topic: ask it for an offset, which only a serving leader answers.
			if _, err := client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return fmt.Errorf("%s/%d: %w", topic, p, err)
			}
		}
	}
	return nil
}
