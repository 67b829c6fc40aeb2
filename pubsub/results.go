package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/record"
)

// ResultsFollower consumes every partition of the results topic for this
// instance alone: no consumer group, nothing committed, starting at the newest
// offset. Each instance sees every result once, however many clients it
// serves.
type ResultsFollower struct {
	client   sarama.Client
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	wg       sync.WaitGroup
	running  atomic.Int32   // partitions still being followed
	next     []atomic.Int64 // per partition index: the next offset to read
	parts    []int32
	index    map[int32]int // partition → index in parts
}

// Fanout is where the follower hands results records.
type Fanout interface {
	// Watched reports whether anyone here subscribes to the stream; records
	// of other streams are skipped without being decoded.
	Watched(streamID string) bool
	// Deliver is called for every watched record, in order within a
	// partition, from one goroutine per partition.
	Deliver(record.Position, record.ResultBatch)
}

// FollowResults starts the follower.
func FollowResults(cfg Config, log *slog.Logger, to Fanout) (*ResultsFollower, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	topic := cfg.Topics().Results
	client, err := sarama.NewClient(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("pubsub: results client: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: results consumer: %w", err)
	}
	parts, err := consumer.Partitions(topic)
	if err != nil {
		consumer.Close()
		client.Close()
		return nil, fmt.Errorf("pubsub: results partitions: %w", err)
	}
	f := &ResultsFollower{client: client, consumer: consumer, parts: parts, next: make([]atomic.Int64, len(parts)), index: make(map[int32]int, len(parts))}
	for i, p := range parts {
		f.index[p] = i
		// Start at an offset known here rather than "newest", so that Next
		// is exact from the first moment: a resume reads Kafka up to it.
		start, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pubsub: end of %s/%d: %w", topic, p, err)
		}
		f.next[i].Store(start)
		pc, err := consumer.ConsumePartition(topic, p, start)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pubsub: follow %s/%d: %w", topic, p, err)
		}
		f.pcs = append(f.pcs, pc)
		f.wg.Add(2)
		f.running.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.running.Add(-1)
			for m := range pc.Messages() {
				// Next moves before the record is offered: a resume that
				// reads Next and finds the stream watched gets it from one
				// side or both, never from neither.
				f.next[i].Store(m.Offset + 1)
				// The key is the stream id.
				if len(m.Key) > 0 && !to.Watched(string(m.Key)) {
					continue
				}
				var b record.ResultBatch
				if err := record.DecodeResultBatch(m.Value, &b); err != nil {
					log.Error("results: skipping unreadable record", "partition", m.Partition, "offset", m.Offset, "err", err)
					continue
				}
				to.Deliver(record.Position{Partition: m.Partition, Offset: m.Offset}, b)
			}
		}()
		go func() {
			defer f.wg.Done()
			for e := range pc.Errors() {
				log.Warn("results: consume error", "partition", e.Partition, "err", e.Err)
			}
		}()
	}
	return f, nil
}

// Lag is, per partition, how many records the follower has yet to read, as
// of the last fetch.
func (f *ResultsFollower) Lag() map[int32]int64 {
	out := make(map[int32]int64, len(f.pcs))
	for i, pc := range f.pcs {
		next := f.next[i].Load()
		hwm := pc.HighWaterMarkOffset()
		if hwm < next {
			next = hwm // no fetch answered yet
		}
		out[f.parts[i]] = hwm - next
	}
	return out
}

// Next is the offset of the next record of partition the follower will hand
// over: every record before it was offered (or skipped as unwatched).
func (f *ResultsFollower) Next(partition int32) int64 {
	i, ok := f.index[partition]
	if !ok {
		return 0
	}
	return f.next[i].Load()
}

// Check reports whether every partition is still followed.
func (f *ResultsFollower) Check(context.Context) error {
	if n, want := int(f.running.Load()), len(f.pcs); n != want {
		return fmt.Errorf("following %d of %d results partitions", n, want)
	}
	return nil
}

// Close stops every partition consumer and waits for the deliveries under way.
func (f *ResultsFollower) Close() error {
	var errs []error
	for _, pc := range f.pcs {
		pc.AsyncClose()
	}
	f.wg.Wait()
	errs = append(errs, f.consumer.Close(), f.client.Close())
	return errors.Join(errs...)
}
