package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/observability"
)

// FollowerGroup is the consumer-lag label of the per-instance results
// follower, which has no consumer group.
const FollowerGroup = "fanout"

// MonitorLag sets the consumer-lag gauges every interval until ctx is done:
// the router's group on the events topic (from its committed offsets) and
// this instance's results follower (from what it has consumed). Lag is read
// from Kafka's offsets, not from anything the router says of itself.
func MonitorLag(ctx context.Context, cfg Config, group string, follower *Results, m *observability.Metrics, log *slog.Logger, interval time.Duration) error {
	if m == nil {
		return nil
	}
	cfg.setDefaults()
	client, err := sarama.NewClient(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return fmt.Errorf("pubsub: lag client: %w", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("pubsub: lag admin: %w", err)
	}
	t := cfg.Topics()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := routerLag(client, admin, group, t.Events, m); err != nil {
			log.Debug("consumer lag", "err", err)
		}
		for p, lag := range follower.Lag() {
			m.Lag(FollowerGroup, t.Results, p, lag)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func routerLag(client sarama.Client, admin sarama.ClusterAdmin, group, topic string, m *observability.Metrics) error {
	parts, err := client.Partitions(topic)
	if err != nil {
		return err
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return err
	}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		start := int64(0)
		if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			start = b.Offset
		} else if oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest); err == nil {
			start = oldest // nothing committed: the group would start at the oldest
		}
		m.Lag(group, topic, p, max(end-start, 0))
	}
	return nil
}
