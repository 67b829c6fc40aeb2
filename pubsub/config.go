package pubsub

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// Defaults for Config fields left zero.
const (
	DefaultTopicPrefix    = "rtstream"
	DefaultPartitions     = 12
	DefaultReplication    = 1
	DefaultMaxRecordBytes = 8 << 20
	DefaultPublishTimeout = 10 * time.Second
	// DefaultLinger is how long the producers gather records before a
	// produce request. Measured on 2 cores (decision 0024): 250 µs cut the
	// server CPU per single-event POST by 10-30% and the POST→SSE p99 and
	// max at 5,000 events/s, for ~1.2 ms more at the median; 1 ms saved
	// more CPU but cost 3-4.5 ms at the median.
	DefaultLinger = 250 * time.Microsecond
	// DefaultSessionTimeout is how long the router's consumer group waits
	// for a silent member before its partitions move to the others: the
	// least a broker accepts unless its group.min.session.timeout.ms is
	// lowered (decision 0027).
	DefaultSessionTimeout = 6 * time.Second
	// DefaultHeartbeatInterval is how often a member tells the group it
	// lives, and so how soon it learns that a rebalance began.
	DefaultHeartbeatInterval = time.Second
)

// Config says where Kafka is and how rtstream's topics are laid out.
type Config struct {
	// Brokers are the bootstrap servers. Required.
	Brokers []string
	// TopicPrefix names the topics: <prefix>.events, .results, .streams,
	// .poison, .marks.
	// Default "rtstream".
	TopicPrefix string
	// Partitions of the events and results topics. Default 12.
	Partitions int32
	// Replication factor of every topic. Default 1.
	Replication int16
	// MaxRecordBytes is the largest record the producer sends and the topics
	// accept. A whole send request travels as one record. Default 8 MiB.
	MaxRecordBytes int
	// ClientID identifies this instance to the brokers. Default "rtstream".
	ClientID string
	// Linger is how long the producers wait for more records before a
	// produce request (Kafka's linger.ms): fewer, larger requests, fewer
	// system calls. Default 250 µs; negative sends each record at once.
	Linger time.Duration
	// SessionTimeout: a member of the router's group silent this long is
	// taken for dead, and its partitions move. Default 6 s.
	SessionTimeout time.Duration
	// HeartbeatInterval of the group's members; at most a third of
	// SessionTimeout. Default 1 s.
	HeartbeatInterval time.Duration
	// InstanceID makes this instance a static member of the router's group
	// (KIP-345): restarted with the same id within SessionTimeout it gets
	// its partitions back without a rebalance, but one that stops is
	// waited for SessionTimeout even on a clean stop. Unique per
	// instance; empty (the default) is a dynamic member.
	InstanceID string
	// TLS, when set, encrypts every connection to the brokers (LoadTLS).
	TLS *tls.Config
	// SASL authenticates every connection to the brokers.
	SASL SASL
}

func (c *Config) setDefaults() {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replication == 0 {
		c.Replication = DefaultReplication
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.ClientID == "" {
		c.ClientID = "rtstream"
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = min(DefaultHeartbeatInterval, c.SessionTimeout/3)
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("pubsub: no Kafka brokers")
	}
	if c.Partitions < 1 {
		return fmt.Errorf("pubsub: partitions %d < 1", c.Partitions)
	}
	if c.Replication < 1 {
		return fmt.Errorf("pubsub: replication %d < 1", c.Replication)
	}
	if err := c.SASL.validate(); err != nil {
		return err
	}
	if c.HeartbeatInterval*3 > c.SessionTimeout {
		return fmt.Errorf("pubsub: heartbeat interval %s is over a third of the session timeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.InstanceID != "" {
		if err := c.SaramaConfig().Validate(); err != nil {
			return fmt.Errorf("pubsub: group instance id %q: %w", c.InstanceID, err)
		}
	}
	return nil
}

// Topics are the names of rtstream's topics.
type Topics struct {
	Events, Results, Streams, Poison string
	// Marks holds the router's crash marks, one per events partition.
	Marks string
}

// Topics derives the topic names from the prefix.
func (c Config) Topics() Topics {
	c.setDefaults()
	p := c.TopicPrefix
	return Topics{Events: p + ".events", Results: p + ".results", Streams: p + ".streams", Poison: p + ".poison", Marks: p + ".marks"}
}

// SaramaConfig is the one client configuration every producer and consumer of
// rtstream starts from. The producer settings are the no-loss ones: a record is
// acknowledged only once every in-sync replica has it, and idempotence with one
// open request per connection keeps retries from duplicating or reordering.
// Consumers start from the oldest offset so that a new group skips nothing.
func (c Config) SaramaConfig() *sarama.Config {
	c.setDefaults()
	sc := sarama.NewConfig()
	// Kafka 4 rejects protocol levels below 2.1; 3.6 is what both Kafka 4 and
	// the embedded broker speak well.
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = c.ClientID
	sc.Metadata.AllowAutoTopicCreation = false

	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.MaxMessageBytes = c.MaxRecordBytes
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.Producer.Flush.MaxMessages = 1000
	if c.Linger > 0 {
		// Without a frequency Sarama sends whatever is buffered as soon as
		// the connection is free: one request per record under light load.
		sc.Producer.Flush.Frequency = c.Linger
	}

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Fetch.Max = int32(c.MaxRecordBytes) * 2
	sc.Consumer.Group.Session.Timeout = c.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = c.HeartbeatInterval
	sc.Consumer.Group.InstanceId = c.InstanceID
	c.SASL.apply(sc, c.TLS)
	return sc
}
