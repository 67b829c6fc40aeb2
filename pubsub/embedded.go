package pubsub

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker for development: one node,
// no replication. It speaks the same protocol as Kafka, so the rest of rtstream
// uses the same Sarama code path against it.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts the development broker on a free loopback port. With a
// non-empty dataDir its log is kept on disk there and reloaded on the next start.
func StartEmbedded(dataDir string) (*Embedded, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("rtstream-embedded"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(DefaultMaxRecordBytes + 64<<10)}),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: start embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("pubsub: embedded broker has no listener")
	}
	return &Embedded{cluster: c, addr: addrs[0]}, nil
}

// Addr is the broker's bootstrap address.
func (e *Embedded) Addr() string { return e.addr }

// Close stops the broker and, with a data dir, flushes its state to disk.
func (e *Embedded) Close() { e.cluster.Close() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pubsub: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
