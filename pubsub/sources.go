package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
)

// Defaults of SourcesConfig.
const (
	// DefaultSourcesPoll is how often the registry is looked at for source
	// streams created or deleted (on any instance).
	DefaultSourcesPoll = time.Second
	// DefaultSourceBatch bounds the source records copied into one events
	// record.
	DefaultSourceBatch = 500
)

// SourcesConfig configures Sources. Kafka is required.
type SourcesConfig struct {
	Kafka Config
	// Poll is how often the set of source streams is reconciled.
	Poll time.Duration
	// Batch bounds the records of one events record.
	Batch int
	Log   *slog.Logger
	// Metrics counts the records whose bytes that are not UTF-8 were
	// replaced; nil counts nothing.
	Metrics *observability.Metrics
}

func (c *SourcesConfig) setDefaults() {
	c.Kafka.setDefaults()
	if c.Poll <= 0 {
		c.Poll = DefaultSourcesPoll
	}
	if c.Batch <= 0 {
		c.Batch = DefaultSourceBatch
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Sources copies the records of every source stream's topic into the events
// topic, as events of that stream, so that the router, the fan-out, resume
// and processors treat them like sent events (decision 0033). Each source
// stream is a consumer group of its own ("<prefix>.source.<stream id>")
// that every instance joins: a topic partition is copied by one instance at a
// time, in order, and the copy is exact across crashes and rebalances (see
// ingest.claim).
type Sources struct {
	cfg      SourcesConfig
	registry *Registry
	producer sarama.SyncProducer
	client   sarama.Client // for the topic checks and the copies' scans

	mu      sync.Mutex
	running map[string]*ingest
}

// OpenSources connects; nothing is copied until Run.
func OpenSources(cfg SourcesConfig, registry *Registry) (*Sources, error) {
	cfg.setDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.SaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("pubsub: sources client: %w", err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: sources producer: %w", err)
	}
	return &Sources{cfg: cfg, registry: registry, producer: producer, client: client, running: map[string]*ingest{}}, nil
}

// CheckTopic reports whether topic exists and its partitions can be read
// with the server's credentials: an error wrapping rtstream.ErrInvalid names
// the topic and says why not. rtstream's own topics are refused: following
// them would feed the pipeline its own records.
func (s *Sources) CheckTopic(ctx context.Context, topic string) error {
	t := s.cfg.Kafka.Topics()
	for _, own := range []string{t.Events, t.Results, t.Streams, t.Poison, t.Marks} {
		if topic == own {
			return fmt.Errorf("topic %s is one of this deployment's own: %w", topic, rtstream.ErrInvalid)
		}
	}
	if err := s.client.RefreshMetadata(topic); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("topic %s does not exist: %w", topic, rtstream.ErrInvalid)
		}
		if errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
			return fmt.Errorf("topic %s is not readable with the server's credentials: %w", topic, rtstream.ErrInvalid)
		}
		return fmt.Errorf("topic %s: %w: %w", topic, rtstream.ErrUnavailable, err)
	}
	parts, err := s.client.Partitions(topic)
	if err != nil || len(parts) == 0 {
		return fmt.Errorf("topic %s has no readable partition: %w", topic, rtstream.ErrInvalid)
	}
	// Reading the first partition's bounds proves the right to read it.
	if _, err := s.client.GetOffset(topic, parts[0], sarama.OffsetNewest); err != nil {
		if errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
			return fmt.Errorf("topic %s is not readable with the server's credentials: %w", topic, rtstream.ErrInvalid)
		}
		return fmt.Errorf("topic %s: %w: %w", topic, rtstream.ErrUnavailable, err)
	}
	return ctx.Err()
}

// Run keeps one ingest running per source stream of the registry until ctx
// is done, then stops them all.
func (s *Sources) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			s.stopAll()
			return
		case <-t.C:
		}
	}
}

// reconcile starts the ingests of new source streams and stops those of
// deleted ones.
func (s *Sources) reconcile(ctx context.Context) {
	want := s.registry.sourceStreams()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, in := range s.running {
		if st, ok := want[id]; !ok || !st.SameDefinition(in.stream) {
			in.stop()
			delete(s.running, id)
		}
	}
	for id, st := range want {
		if _, ok := s.running[id]; !ok && ctx.Err() == nil {
			s.running[id] = s.startIngest(ctx, st)
		}
	}
}

func (s *Sources) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, in := range s.running {
		in.stop()
		delete(s.running, id)
	}
}

// Close stops every ingest and disconnects.
func (s *Sources) Close() error {
	s.stopAll()
	return errors.Join(s.producer.Close(), s.client.Close())
}

// sourceStreams is the source streams of this instance's copy of the
// registry.
func (r *Registry) sourceStreams() map[string]rtstream.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]rtstream.Stream{}
	for id, st := range r.streams {
		if st.Source != nil {
			out[id] = st
		}
	}
	return out
}
