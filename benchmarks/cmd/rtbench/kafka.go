package main

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// saramaConfig is the producer configuration the brief fixes for the
// baseline, and the one the server uses for its own producer: acks=all,
// idempotent, one open request per connection. Comparing against anything
// looser would flatter the raw producer.
func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "rtbench"
	c.Metadata.AllowAutoTopicCreation = false
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Partitioner = sarama.NewHashPartitioner
	return c
}

// kafkaObserver is the benchmark's own view of the broker: it creates the
// baseline topic and, from outside the server, reads how far the server's
// router consumer group has got, so phases can start on an idle pipeline.
type kafkaObserver struct {
	brokers []string
	client  sarama.Client
	admin   sarama.ClusterAdmin
}

func newKafkaObserver(brokers []string) (*kafkaObserver, error) {
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &kafkaObserver{brokers: brokers, client: client, admin: admin}, nil
}

// Close closes the admin, which closes the client it was made from.
func (k *kafkaObserver) Close() { _ = k.admin.Close() }

// createTopic creates a fresh topic and waits until every partition has a
// leader, so the first produce does not measure metadata retries.
func (k *kafkaObserver) createTopic(ctx context.Context, name string, partitions int32) error {
	err := k.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	for {
		err := k.client.RefreshMetadata(name)
		if err == nil {
			var parts []int32
			if parts, err = k.client.Partitions(name); err == nil && len(parts) != int(partitions) {
				err = fmt.Errorf("%d of %d partitions", len(parts), partitions)
			}
			for _, p := range parts {
				if err == nil {
					_, err = k.client.Leader(name, p)
				}
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leaders: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deleteTopic removes a topic the benchmark made; failure only leaves litter.
func (k *kafkaObserver) deleteTopic(name string) {
	if err := k.admin.DeleteTopic(name); err != nil {
		progress("note: could not delete topic %s: %v", name, err)
	}
}

// routerWatch reads the lag of the server's router consumer group on the
// events topic. The group commits about once a second, so the figure is
// coarse; it is used only to wait for an idle pipeline between phases.
type routerWatch struct {
	kc    *kafkaObserver
	group string
	topic string
}

// lag returns records in the events topic not yet committed by the router.
func (r routerWatch) lag() (int64, error) {
	parts, err := r.kc.client.Partitions(r.topic)
	if err != nil {
		return 0, err
	}
	resp, err := r.kc.admin.ListConsumerGroupOffsets(r.group, map[string][]int32{r.topic: parts})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range parts {
		end, err := r.kc.client.GetOffset(r.topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		committed := int64(0)
		if b := resp.GetBlock(r.topic, p); b != nil && b.Offset >= 0 {
			committed = b.Offset
		}
		if end > committed {
			lag += end - committed
		}
	}
	return lag, nil
}

// waitIdle waits until the router has committed everything in the events
// topic, or until max. It reports how long that took and the lag it found.
func (r routerWatch) waitIdle(ctx context.Context, max time.Duration) RouterDrain {
	start := time.Now()
	d := RouterDrain{}
	first, lastPrint := true, time.Time{}
	for {
		lag, err := r.lag()
		if err != nil {
			d.Error = err.Error()
			progress("[router] cannot read the router's lag: %v", err)
			return d
		}
		if first {
			d.InitialLag, first = lag, false
		}
		if lag == 0 {
			d.Seconds = time.Since(start).Seconds()
			if d.InitialLag > 0 {
				progress("[router] backlog of %d records drained in %.1fs", d.InitialLag, d.Seconds)
			}
			return d
		}
		if time.Since(lastPrint) >= 2*time.Second {
			progress("[router] waiting for the router to catch up: %d records behind", lag)
			lastPrint = time.Now()
		}
		if time.Since(start) > max || ctx.Err() != nil {
			d.Seconds = time.Since(start).Seconds()
			d.Error = fmt.Sprintf("still %d records behind after %s", lag, max)
			progress("[router] %s; going on", d.Error)
			return d
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
