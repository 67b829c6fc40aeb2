package pubsub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/record"
)

// ingest copies one source stream's topic into the events topic while it
// runs: a member of the stream's consumer group.
type ingest struct {
	s      *Sources
	stream rtstream.Stream
	group  string
	cancel context.CancelFunc
	done   chan struct{}
}

// startIngest joins st's group in the background.
func (s *Sources) startIngest(ctx context.Context, st rtstream.Stream) *ingest {
	ctx, cancel := context.WithCancel(ctx)
	in := &ingest{s: s, stream: st, group: s.cfg.Kafka.TopicPrefix + ".source." + st.ID, cancel: cancel, done: make(chan struct{})}
	go in.run(ctx)
	return in
}

func (in *ingest) stop() {
	in.cancel()
	<-in.done
}

// run consumes until ctx is done, starting over after a failure.
func (in *ingest) run(ctx context.Context) {
	defer close(in.done)
	sc := in.s.cfg.Kafka.SaramaConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if in.stream.Source.From == rtstream.SourceEarliest {
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	// Committed by hand, after the copy is acknowledged, with the copy's
	// position as metadata (claim reads it back).
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Group.InstanceId = "" // static ids are the router group's
	log := in.s.cfg.Log.With("component", "source", "stream_id", in.stream.ID, "topic", in.stream.Source.Topic)
	for ctx.Err() == nil {
		group, err := sarama.NewConsumerGroup(in.s.cfg.Kafka.Brokers, in.group, sc)
		if err != nil {
			log.Warn("source: cannot join the group; retrying", "err", err)
			sleepCtx(ctx, 2*time.Second)
			continue
		}
		go func() {
			for err := range group.Errors() {
				log.Warn("source: consume error", "err", err)
			}
		}()
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{in.stream.Source.Topic}, in); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					break
				}
				log.Warn("source: consume failed; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
		}
		_ = group.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Setup and Cleanup: nothing to prepare per session.
func (in *ingest) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (in *ingest) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim copies one source partition, a batch of whatever records are
// ready at a time, each batch one events record committed before the next.
func (in *ingest) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c, err := in.claim(sess.Context(), claim.Partition())
	if err != nil {
		return err
	}
	for {
		batch, ok := in.next(sess, claim)
		if !ok {
			return nil
		}
		if err := c.copyBatch(sess, batch); err != nil {
			return err
		}
	}
}

// next waits for a record, then takes whatever else is ready, up to Batch.
func (in *ingest) next(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) ([]*sarama.ConsumerMessage, bool) {
	var batch []*sarama.ConsumerMessage
	select {
	case m, ok := <-claim.Messages():
		if !ok {
			return nil, false
		}
		batch = append(batch, m)
	case <-sess.Context().Done():
		return nil, false
	}
	for len(batch) < in.s.cfg.Batch {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return batch, true
			}
			batch = append(batch, m)
		default:
			return batch, true
		}
	}
	return batch, true
}

// claimed is one source partition being copied.
type claimed struct {
	in        *ingest
	partition int32
	copied    int64  // the highest source offset already in the events topic; -1: none
	meta      string // the events offset of the last copy, kept in the commits
}

// claim finds where the copy of partition really stands. A commit names, as
// metadata, the events offset of the copy it follows; a copy acknowledged
// and then not committed (a crash, a rebalance in between) is after that
// offset, so the stream's events records from there on say which source
// offsets are in the events topic already: those are skipped, and nothing
// is copied twice. With no commit yet, the scan starts at the stream's
// creation.
func (in *ingest) claim(ctx context.Context, partition int32) (*claimed, error) {
	c := &claimed{in: in, partition: partition, copied: -1}
	evPart, err := in.s.eventsPartition(in.stream.ID)
	if err != nil {
		return nil, err
	}
	events := in.s.cfg.Kafka.Topics().Events
	from, meta, err := in.committedMeta(partition)
	if err != nil {
		return nil, err
	}
	if from < 0 {
		if from, err = in.s.client.GetOffset(events, evPart, in.stream.CreatedAt.UnixMilli()); err != nil {
			return nil, fmt.Errorf("source: events offset at the stream's creation: %w", err)
		}
	}
	c.meta = meta
	if from >= 0 {
		if c.copied, err = in.s.scanCopies(ctx, evPart, from, in.stream.ID, partition); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// committedMeta reads the group's commit for partition: the events offset
// after the copy it names (-1 when there is none), and the metadata itself.
func (in *ingest) committedMeta(partition int32) (from int64, meta string, err error) {
	coord, err := in.s.client.Coordinator(in.group)
	if err != nil {
		return -1, "", fmt.Errorf("source: group coordinator: %w", err)
	}
	req := &sarama.OffsetFetchRequest{Version: 5, ConsumerGroup: in.group}
	req.AddPartition(in.stream.Source.Topic, partition)
	resp, err := coord.FetchOffset(req)
	if err != nil {
		return -1, "", fmt.Errorf("source: fetch the group's offsets: %w", err)
	}
	blk := resp.GetBlock(in.stream.Source.Topic, partition)
	if blk == nil || blk.Offset < 0 || blk.Metadata == "" {
		return -1, "", nil
	}
	n, err := strconv.ParseInt(blk.Metadata, 10, 64)
	if err != nil {
		return -1, "", nil // not ours: scan from the creation
	}
	return n + 1, blk.Metadata, nil
}

// copyBatch writes the records of batch that are the stream's and not yet
// copied as one events record, and commits past them.
func (c *claimed) copyBatch(sess sarama.ConsumerGroupSession, batch []*sarama.ConsumerMessage) error {
	in := c.in
	src := in.stream.Source
	eb := record.EventBatch{StreamID: in.stream.ID}
	now := time.Now().UTC()
	for _, m := range batch {
		if m.Offset <= c.copied || (src.Key != "" && string(m.Key) != src.Key) {
			continue
		}
		id := strconv.Itoa(int(m.Partition)) + "-" + strconv.FormatInt(m.Offset, 10)
		data, reason, replaced := sourceData(m, src.Format)
		if replaced {
			in.s.cfg.Metrics.InvalidUTF8(observability.AtSource, 1)
		}
		if reason != "" || len(data) > in.s.cfg.Kafka.MaxRecordBytes/2 {
			if reason == "" {
				reason = "record too large for an event"
			}
			if err := in.s.deadLetter(in.stream.ID, id, reason, m, now); err != nil {
				return err
			}
			continue
		}
		eb.Events = append(eb.Events, rtstream.Event{ID: id, ReceivedAt: now, Data: data})
	}
	last := batch[len(batch)-1]
	if len(eb.Events) > 0 {
		offset, err := in.s.writeEvents(in.stream.ID, eb)
		if err != nil {
			return err
		}
		c.meta = strconv.FormatInt(offset, 10)
	}
	c.copied = max(c.copied, last.Offset)
	sess.MarkOffset(last.Topic, last.Partition, last.Offset+1, c.meta)
	sess.Commit()
	return nil
}

// sourceData is the event a source record becomes: its value in the
// stream's format, key, headers, timestamp and position. reason says why
// the value does not parse in that format; replaced, that bytes of a JSON
// value that are not UTF-8 were replaced by U+FFFD (a text value's too, and
// keys' and headers': they are never forwarded raw).
func sourceData(m *sarama.ConsumerMessage, format string) (_ json.RawMessage, reason string, replaced bool) {
	var value any
	switch format {
	case rtstream.SourceText:
		replaced = !utf8.Valid(m.Value)
		value = strings.ToValidUTF8(string(m.Value), "\uFFFD")
	case rtstream.SourceBytes:
		value = base64.StdEncoding.EncodeToString(m.Value)
	default:
		if !json.Valid(m.Value) {
			return nil, "value is not JSON", false
		}
		var raw json.RawMessage
		raw, replaced = record.ToValidUTF8(m.Value)
		value = raw
	}
	headers := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		headers[strings.ToValidUTF8(string(h.Key), "\uFFFD")] = strings.ToValidUTF8(string(h.Value), "\uFFFD")
	}
	var key *string
	if m.Key != nil {
		k := strings.ToValidUTF8(string(m.Key), "\uFFFD")
		key = &k
	}
	data, err := json.Marshal(struct {
		Value     any               `json:"value"`
		Key       *string           `json:"key"`
		Headers   map[string]string `json:"headers"`
		Timestamp time.Time         `json:"timestamp"`
		Topic     string            `json:"topic"`
		Partition int32             `json:"partition"`
		Offset    int64             `json:"offset"`
	}{value, key, headers, m.Timestamp.UTC(), m.Topic, m.Partition, m.Offset})
	if err != nil {
		return nil, "value does not re-encode: " + err.Error(), false
	}
	return data, "", replaced
}

// eventsPartition is the events partition of a stream's records, as the
// producers' hash partitioner places them.
func (s *Sources) eventsPartition(streamID string) (int32, error) {
	topic := s.cfg.Kafka.Topics().Events
	parts, err := s.client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("source: events partitions: %w", err)
	}
	return sarama.NewHashPartitioner(topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(streamID)}, int32(len(parts)))
}

// scanCopies reads the events partition from offset from to its current end
// and returns the highest offset of source partition p that streamID's
// events records hold (-1: none).
func (s *Sources) scanCopies(ctx context.Context, evPart int32, from int64, streamID string, p int32) (int64, error) {
	topic := s.cfg.Kafka.Topics().Events
	end, err := s.client.GetOffset(topic, evPart, sarama.OffsetNewest)
	if err != nil || from >= end {
		return -1, err
	}
	consumer, err := sarama.NewConsumerFromClient(s.client)
	if err != nil {
		return -1, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, evPart, from)
	if err != nil {
		return -1, fmt.Errorf("source: scan the events partition: %w", err)
	}
	defer pc.Close()
	copied := int64(-1)
	prefix := strconv.Itoa(int(p)) + "-"
	for {
		select {
		case m := <-pc.Messages():
			if string(m.Key) == streamID {
				var eb record.EventBatch
				if record.DecodeEventBatch(m.Value, &eb) == nil {
					for _, ev := range eb.Events {
						if o, ok := strings.CutPrefix(ev.ID, prefix); ok {
							n, _ := strconv.ParseInt(o, 10, 64)
							copied = max(copied, n)
						}
					}
				}
			}
			if m.Offset+1 >= end {
				return copied, nil
			}
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}

// writeEvents writes one events record for streamID and returns its offset.
func (s *Sources) writeEvents(streamID string, eb record.EventBatch) (int64, error) {
	msg := message.NewMessage(watermill.NewULID(), eb.AppendJSON(nil))
	msg.Metadata.Set(KeyMetadata, streamID)
	return s.send(s.cfg.Kafka.Topics().Events, msg)
}

// deadLetter writes a source record that cannot become an event to the
// poison topic, with its reason, as the dead-letters route shows them.
func (s *Sources) deadLetter(streamID, id, reason string, m *sarama.ConsumerMessage, now time.Time) error {
	data, _, _ := sourceData(m, rtstream.SourceBytes)
	dl := NewDeadLetter(streamID, rtstream.DeadLetter{EventID: id, Reason: reason, FailedAt: now, Data: data},
		record.Position{Partition: m.Partition, Offset: m.Offset})
	_, err := s.send(s.cfg.Kafka.Topics().Poison, dl)
	return err
}

// send marshals msg as every rtstream publisher does (its metadata become
// headers, the stream id its key) and waits for the acknowledgement.
func (s *Sources) send(topic string, msg *message.Message) (int64, error) {
	pm, err := kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
		return m.Metadata.Get(KeyMetadata), nil
	}).Marshal(topic, msg)
	if err != nil {
		return 0, err
	}
	stampFormat(pm)
	_, offset, err := s.producer.SendMessage(pm)
	if err != nil {
		return 0, fmt.Errorf("source: write to %s: %w", topic, err)
	}
	return offset, nil
}
