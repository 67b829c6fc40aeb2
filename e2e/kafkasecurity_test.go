package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestKafkaTLSAndSASL: the server reaches Kafka with SASL SCRAM-SHA-512
// (Strimzi's "scram-sha-512" authentication), SASL PLAIN, and mutual TLS
// (Strimzi's "tls" authentication), and serves every part of a stream's
// life over each: create, send, results over SSE. Wrong credentials stop
// the start with a non-zero exit and an error that says what failed. The
// broker is a private one of scripts/kafka.sh with a SASL_PLAINTEXT
// listener and a TLS listener that requires client certificates.
func TestKafkaTLSAndSASL(t *testing.T) {
	t.Parallel()
	testenv.KafkaBrokers(t) // a machine with a real Kafka has what scripts/kafka.sh needs; CI must not skip
	_, saslPort, _ := strings.Cut(freeAddr(t), ":")
	_, tlsPort, _ := strings.Cut(freeAddr(t), ":")
	kafka := startPrivateKafka(t, "KAFKA_SASL_PORT="+saslPort, "KAFKA_TLS_PORT="+tlsPort)
	createScramUser(t, kafka.addr(), "rtstream-scram", "scram-secret")
	certs := filepath.Join(kafka.dir, "tls")
	sasl := func(mech, user, pass string) map[string]string {
		return map[string]string{"KAFKA_BROKERS": "127.0.0.1:" + saslPort, "KAFKA_SASL_MECHANISM": mech, "KAFKA_SASL_USERNAME": user, "KAFKA_SASL_PASSWORD": pass}
	}
	mtls := map[string]string{"KAFKA_BROKERS": "127.0.0.1:" + tlsPort, "KAFKA_TLS_CA_FILE": filepath.Join(certs, "ca.crt"),
		"KAFKA_TLS_CERT_FILE": filepath.Join(certs, "client.crt"), "KAFKA_TLS_KEY_FILE": filepath.Join(certs, "client.key")}

	for i, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"SCRAM-SHA-512", sasl("SCRAM-SHA-512", "rtstream-scram", "scram-secret")},
		{"PLAIN", sasl("PLAIN", "rtstream", "rtstream-secret")},
		{"mutual TLS", mtls},
	} {
		env := maps.Clone(tc.env)
		env["TOPIC_PREFIX"] = fmt.Sprintf("sec%d", i)
		s := startServer(t, fmt.Sprintf("kafka-security-%d", i), env)
		st := createStream(t, s.Base+"/v1/streams", "security")
		feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")
		ids := send(t, s.Base+"/v1/streams/"+st.ID+"/events", "application/json", []byte(`[{"n":1},{"n":2}]`), 2)
		got := feed.awaitResults(t, 2, 30*time.Second)
		if got[0].EventID != ids[0] || got[1].EventID != ids[1] {
			t.Errorf("%s: results %v, want events %v", tc.name, got, ids)
		}
		rep := call(t, http.MethodGet, s.Base+"/readyz", "", nil)
		if rep.Status != http.StatusOK {
			t.Errorf("%s: /readyz %s", tc.name, rep)
		}
		t.Logf("%s: stream created, 2 events sent and delivered over SSE, /readyz 200", tc.name)
	}

	noCert := maps.Clone(mtls)
	delete(noCert, "KAFKA_TLS_CERT_FILE")
	delete(noCert, "KAFKA_TLS_KEY_FILE")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a wrong SCRAM password", sasl("SCRAM-SHA-512", "rtstream-scram", "wrong"), "SASL"},
		{"an unknown mechanism", sasl("GSSAPI", "x", "y"), "SASL mechanism"},
		{"TLS without the CA", map[string]string{"KAFKA_BROKERS": "127.0.0.1:" + tlsPort, "KAFKA_TLS": "true"}, "certificate"},
		{"TLS without a client certificate", noCert, "kafka"},
		{"TLS with the embedded broker", map[string]string{"KAFKA_TLS": "true"}, "need KAFKA_BROKERS"},
	} {
		out, err := runUntilExit(t, tc.env, 90*time.Second)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%s: %v; want a non-zero exit\n%s", tc.name, err, out)
			continue
		}
		if !strings.Contains(strings.ToLower(out), strings.ToLower(tc.want)) {
			t.Errorf("%s: the start's output does not say %q:\n%s", tc.name, tc.want, out)
		}
	}
}

// runUntilExit runs the server with env until it exits (it must within
// max) and returns its output.
func runUntilExit(t *testing.T, env map[string]string, max time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), max)
	defer cancel()
	cmd := exec.CommandContext(ctx, rtstreamBin)
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+freeAddr(t), "DATA_DIR="+t.TempDir(), "API_KEYS="+apiKey, "KAFKA_BROKERS=", "LOG_FORMAT=text")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("still running after %s:\n%s", max, out)
	}
	return string(out), err
}

// createScramUser adds a SCRAM-SHA-512 user through the broker's plain
// listener, as Strimzi's user operator does for a KafkaUser.
func createScramUser(t *testing.T, addr, user, password string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	salt := make([]byte, 16)
	rand.Read(salt)
	res, err := admin.UpsertUserScramCredentials([]sarama.AlterUserScramCredentialsUpsert{{
		Name: user, Mechanism: sarama.SCRAM_MECHANISM_SHA_512, Iterations: 8192, Salt: salt, Password: []byte(password)}})
	if err != nil {
		t.Fatalf("creating the SCRAM user: %v", err)
	}
	for _, r := range res {
		if r.ErrorCode != sarama.ErrNoError {
			t.Fatalf("creating the SCRAM user: %v %v", r.ErrorCode, r.ErrorMessage)
		}
	}
}
