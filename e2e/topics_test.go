package e2e

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// deleteTopicsWithPrefix removes every topic whose name starts with prefix.
// Failures are logged, not fatal: a leftover topic costs disk, not correctness.
func deleteTopicsWithPrefix(t *testing.T, brokers, prefix string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Logf("cleanup: connecting to delete %s* topics: %v", prefix, err)
		return
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		t.Logf("cleanup: listing topics: %v", err)
		return
	}
	for name := range topics {
		if strings.HasPrefix(name, prefix) {
			if err := admin.DeleteTopic(name); err != nil {
				t.Logf("cleanup: deleting %s: %v", name, err)
			}
		}
	}
}
