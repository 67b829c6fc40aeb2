package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// The poison topic holds two kinds of record, both keyed by stream id so that
// a stream's dead letters share one partition and can be read without
// scanning the others:
//
//   - one event the stream's processor failed on (DeadLetterMetadata set):
//     the payload is a deadLetterRecord;
//   - a whole events record the router could not handle (unreadable, panic),
//     put there by Watermill's PoisonQueue: the payload is the record as it
//     was consumed, its reason in the reason_poisoned header. Every event of
//     it is a dead letter.

// DeadLetterMetadata marks a poison record that holds one failed event.
const DeadLetterMetadata = "rtstream_dead_letter"

// deadLetterRecord is the payload of a one-event poison record.
type deadLetterRecord struct {
	StreamID string          `json:"stream_id"`
	EventID  string          `json:"event_id"`
	Reason   string          `json:"reason"`
	FailedAt time.Time       `json:"failed_at"`
	Data     json.RawMessage `json:"data"`
	Source   record.Position `json:"source"`
}

// NewDeadLetter is the poison record for one event of streamID that failed.
// source is the events record it came from, so that a redelivered record's
// dead letter can be recognised.
func NewDeadLetter(streamID string, dl rtstream.DeadLetter, source record.Position) *message.Message {
	payload, _ := json.Marshal(deadLetterRecord{
		StreamID: streamID, EventID: dl.EventID, Reason: dl.Reason, FailedAt: dl.FailedAt, Data: dl.Data, Source: source,
	})
	m := message.NewMessage(watermill.NewULID(), payload)
	m.Metadata.Set(KeyMetadata, streamID)
	m.Metadata.Set(DeadLetterMetadata, "event")
	return m
}

// Defaults of DeadLetters.
const (
	// DefaultDeadLetterScan is how many records of the partition one read
	// looks at, at most, whatever their stream.
	DefaultDeadLetterScan = 10_000
	// DefaultDeadLetterTimeout bounds one read.
	DefaultDeadLetterTimeout = 10 * time.Second
)

// DeadLetters reads a stream's dead letters from the poison topic.
type DeadLetters struct {
	client  sarama.Client
	topic   string
	maxScan int
	timeout time.Duration
}

// OpenDeadLetters connects a reader of cfg's poison topic.
func OpenDeadLetters(cfg Config) (*DeadLetters, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, cfg.SaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("pubsub: dead letters client: %w", err)
	}
	return &DeadLetters{client: client, topic: cfg.Topics().Poison, maxScan: DefaultDeadLetterScan, timeout: DefaultDeadLetterTimeout}, nil
}

// Close disconnects.
func (d *DeadLetters) Close() error { return d.client.Close() }

// deadLetterCursor is where a read resumes: the record at offset, from its
// index-th dead letter (a whole-record poison holds several).
type deadLetterCursor struct {
	offset int64
	index  int
}

func (c deadLetterCursor) String() string {
	return strconv.FormatInt(c.offset, 10) + "-" + strconv.Itoa(c.index)
}

func parseDeadLetterCursor(s string) (deadLetterCursor, error) {
	o, i, ok := strings.Cut(s, "-")
	off, err1 := strconv.ParseInt(o, 10, 64)
	idx, err2 := strconv.Atoi(i)
	if !ok || err1 != nil || err2 != nil || off < 0 || idx < 0 {
		return deadLetterCursor{}, fmt.Errorf("dead letter cursor %q: %w", s, rtstream.ErrInvalid)
	}
	return deadLetterCursor{offset: off, index: idx}, nil
}

// Read returns up to limit dead letters of streamID after the cursor after
// ("" is the beginning), and the cursor to continue from, "" once the read
// reached the end of the partition as it was when the read began. A read
// looks at no more than DefaultDeadLetterScan records (the partition holds
// other streams' dead letters too); it then returns what it found with a
// cursor, possibly with no dead letters at all.
func (d *DeadLetters) Read(ctx context.Context, streamID, after string, limit int) ([]rtstream.DeadLetter, string, error) {
	var from deadLetterCursor
	if after != "" {
		var err error
		if from, err = parseDeadLetterCursor(after); err != nil {
			return nil, "", err
		}
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("limit %d: %w", limit, rtstream.ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	partition, err := d.partitionOf(streamID)
	if err != nil {
		return nil, "", err
	}
	from, end, err := d.bounds(partition, from)
	if err != nil {
		return nil, "", err
	}
	if from.offset >= end {
		return []rtstream.DeadLetter{}, "", nil
	}
	return d.scan(ctx, streamID, partition, from, end, limit)
}

// bounds moves from past what retention removed and returns the partition's
// end as the read begins.
func (d *DeadLetters) bounds(partition int32, from deadLetterCursor) (deadLetterCursor, int64, error) {
	oldest, err := d.client.GetOffset(d.topic, partition, sarama.OffsetOldest)
	if err != nil {
		return from, 0, fmt.Errorf("pubsub: dead letters start: %w: %w", rtstream.ErrUnavailable, err)
	}
	end, err := d.client.GetOffset(d.topic, partition, sarama.OffsetNewest)
	if err != nil {
		return from, 0, fmt.Errorf("pubsub: dead letters end: %w: %w", rtstream.ErrUnavailable, err)
	}
	if from.offset < oldest {
		// Retention removed the records the cursor points at.
		from = deadLetterCursor{offset: oldest}
	}
	return from, end, nil
}

// scan reads the partition from from up to end, or limit dead letters, or
// DefaultDeadLetterScan records.
func (d *DeadLetters) scan(ctx context.Context, streamID string, partition int32, from deadLetterCursor, end int64, limit int) ([]rtstream.DeadLetter, string, error) {
	// A consumer of its own per read: a sarama.Consumer allows one
	// consumer per partition, and two reads of streams that share a
	// partition may run at once. It shares the client's connections.
	consumer, err := sarama.NewConsumerFromClient(d.client)
	if err != nil {
		return nil, "", fmt.Errorf("pubsub: dead letters consumer: %w", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(d.topic, partition, from.offset)
	if err != nil {
		return nil, "", fmt.Errorf("pubsub: dead letters from %d: %w: %w", from.offset, rtstream.ErrUnavailable, err)
	}
	defer pc.Close()

	out := []rtstream.DeadLetter{}
	// A record redelivered to the router after its dead letters were
	// written writes them again: show each event once per page.
	seen := make(map[string]bool)
	for scanned := 1; ; scanned++ {
		var m *sarama.ConsumerMessage
		select {
		case m = <-pc.Messages():
		case e := <-pc.Errors():
			return nil, "", fmt.Errorf("pubsub: reading dead letters: %w: %w", rtstream.ErrUnavailable, e.Err)
		case <-ctx.Done():
			return nil, "", fmt.Errorf("pubsub: reading dead letters: %w: %w", rtstream.ErrUnavailable, ctx.Err())
		}
		if string(m.Key) == streamID {
			for i, dl := range decodeDeadLetters(m) {
				if m.Offset == from.offset && i < from.index {
					continue
				}
				if len(out) == limit {
					return out, deadLetterCursor{offset: m.Offset, index: i}.String(), nil
				}
				if dl.EventID != "" && seen[dl.EventID] {
					continue
				}
				seen[dl.EventID] = true
				out = append(out, dl)
			}
		}
		if m.Offset+1 >= end {
			return out, "", nil
		}
		if scanned >= d.maxScan {
			return out, deadLetterCursor{offset: m.Offset + 1}.String(), nil
		}
	}
}

// partitionOf is the partition the publisher's hash partitioner gives the
// stream's key.
func (d *DeadLetters) partitionOf(streamID string) (int32, error) {
	parts, err := d.client.Partitions(d.topic)
	if err != nil {
		return 0, fmt.Errorf("pubsub: dead letters partitions: %w: %w", rtstream.ErrUnavailable, err)
	}
	if len(parts) == 0 {
		return 0, fmt.Errorf("pubsub: topic %s has no partitions: %w", d.topic, rtstream.ErrUnavailable)
	}
	p, err := sarama.NewHashPartitioner(d.topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(streamID)}, int32(len(parts)))
	if err != nil {
		return 0, fmt.Errorf("pubsub: dead letters partition: %w", err)
	}
	return p, nil
}

// decodeDeadLetters reads either kind of poison record.
func decodeDeadLetters(m *sarama.ConsumerMessage) []rtstream.DeadLetter {
	headers := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	if headers[DeadLetterMetadata] != "" {
		var r deadLetterRecord
		if err := json.Unmarshal(m.Value, &r); err == nil {
			data, _ := record.ToValidUTF8(r.Data)
			return []rtstream.DeadLetter{{EventID: r.EventID, Reason: r.Reason, FailedAt: r.FailedAt, Data: data}}
		}
	}
	// A whole record from the PoisonQueue middleware.
	reason := headers[middleware.ReasonForPoisonedKey]
	if reason == "" {
		reason = "unknown"
	}
	failedAt := m.Timestamp.UTC()
	// The events' data may alias m.Value, as the fallback below does: a
	// consumed message is not written to.
	var batch record.EventBatch
	if err := record.DecodeEventBatch(m.Value, &batch); err == nil && len(batch.Events) > 0 {
		out := make([]rtstream.DeadLetter, len(batch.Events))
		for i, ev := range batch.Events {
			out[i] = rtstream.DeadLetter{EventID: ev.ID, Reason: reason, FailedAt: failedAt, Data: ev.Data}
		}
		return out
	}
	// Not even an events record: show it as it is, as a JSON string when
	// it is not JSON.
	data, _ := record.ToValidUTF8(m.Value)
	if !json.Valid(data) {
		data, _ = json.Marshal(string(m.Value)) // invalid UTF-8 becomes U+FFFD
	}
	return []rtstream.DeadLetter{{Reason: reason, FailedAt: failedAt, Data: data}}
}
