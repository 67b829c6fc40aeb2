// Package testenv gates tests on the real components they drive: a Kafka
// broker, a Redis, installed tools. On a developer's machine a missing one
// skips the test; under CI (CI set, as .ci/run does) it fails it, because
// there a skipped test would be counted as a passing one.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Missing stops t for want of what why names: a skip, or under CI a failure.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI must not skip)")
	}
	t.Skip(why)
}

// KafkaBrokers is RTSTREAM_TEST_KAFKA_BROKERS, the real broker's addresses
// (comma-separated), or Missing.
func KafkaBrokers(t testing.TB) string {
	t.Helper()
	b := os.Getenv("RTSTREAM_TEST_KAFKA_BROKERS")
	if b == "" {
		Missing(t, "needs a real Kafka: run `make test` (it starts one with scripts/kafka.sh), "+
			"or start one yourself and set RTSTREAM_TEST_KAFKA_BROKERS=127.0.0.1:9092")
	}
	return b
}

// RedisURL is RTSTREAM_TEST_REDIS_URL, a real Redis, or Missing.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("RTSTREAM_TEST_REDIS_URL")
	if u == "" {
		Missing(t, "needs a real Redis: run `scripts/redis.sh start` and set "+
			"RTSTREAM_TEST_REDIS_URL=$(scripts/redis.sh url)")
	}
	return u
}

// Command is the path of the program name on PATH, or Missing; install says
// how to get it (the project's script), so that the skip, or CI's failure,
// tells what to run.
func Command(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not on PATH: run "+install)
	}
	return path
}
