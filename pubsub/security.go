package pubsub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// SASL mechanisms rtstream's Kafka clients speak.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL authenticates each connection to the brokers: Strimzi's
// "scram-sha-512" authentication, or PLAIN (over TLS, since it sends the
// password as it is).
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512; empty:
	// no SASL.
	Mechanism string
	User      string
	Password  string
}

func (s SASL) validate() error {
	switch s.Mechanism {
	case "":
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("pubsub: SASL mechanism %q: want %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if s.User == "" || s.Password == "" {
		return fmt.Errorf("pubsub: SASL %s needs a user and a password", s.Mechanism)
	}
	return nil
}

// apply sets sc's TLS and SASL from tlsCfg and s.
func (s SASL) apply(sc *sarama.Config, tlsCfg *tls.Config) {
	if tlsCfg != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tlsCfg.Clone()
	}
	if s.Mechanism == "" {
		return
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User, sc.Net.SASL.Password = s.User, s.Password
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(s.Mechanism)
	switch s.Mechanism {
	case SASLScramSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SASLScramSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
}

// scramClient is Sarama's SCRAM conversation over xdg-go/scram (Sarama
// leaves the SCRAM implementation to its user).
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// LoadTLS builds the TLS settings of the connections to the brokers from
// PEM files: caFile, the CA that signed the brokers' certificates (empty:
// the system's roots; with Strimzi, the cluster CA's ca.crt), and
// certFile with keyFile, a client certificate for mutual TLS (both or
// neither; with Strimzi, a KafkaUser's user.crt and user.key).
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("pubsub: Kafka CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pubsub: Kafka CA %s: no PEM certificate in it", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("pubsub: a Kafka client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("pubsub: Kafka client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
