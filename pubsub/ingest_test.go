package pubsub

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/internal/testenv"
	"github.com/rtstream/rtstream/record"
)

func TestSourceData(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, format string
		key, value   []byte
		wantValue    string
		wantKey      string // "null" for none
		reason       string
		replaced     bool
	}{
		{"json", rtstream.SourceJSON, []byte("k"), []byte(`{"a":[1,2]}`), `{"a":[1,2]}`, `"k"`, "", false},
		{"json malformed", rtstream.SourceJSON, nil, []byte(`{"a":`), "", "", "not JSON", false},
		{"json not UTF-8", rtstream.SourceJSON, nil, []byte("\"a\xffb\""), `"a\ufffdb"`, "null", "", true},
		{"text", rtstream.SourceText, nil, []byte("héllo \xff"), `"héllo \ufffd"`, "null", "", true},
		{"bytes", rtstream.SourceBytes, []byte("\xff"), []byte{0, 1, 255}, `"AAH/"`, "\"\uFFFD\"", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &sarama.ConsumerMessage{Topic: "shop", Partition: 2, Offset: 7, Key: tt.key, Value: tt.value, Timestamp: at,
				Headers: []*sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}}}
			data, reason, replaced := sourceData(m, tt.format)
			if replaced != tt.replaced {
				t.Errorf("replaced = %v, want %v", replaced, tt.replaced)
			}
			if tt.reason != "" {
				if !strings.Contains(reason, tt.reason) {
					t.Fatalf("reason %q, want one saying %q", reason, tt.reason)
				}
				return
			}
			var got struct {
				Value, Key json.RawMessage
				Headers    map[string]string
				Timestamp  time.Time
				Topic      string
				Partition  int32
				Offset     int64
			}
			if reason != "" || json.Unmarshal(data, &got) != nil || !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("sourceData = %s, %q", data, reason)
			}
			var want, have any
			_ = json.Unmarshal([]byte(tt.wantValue), &want)
			_ = json.Unmarshal(got.Value, &have)
			if fmt.Sprint(want) != fmt.Sprint(have) || string(got.Key) != tt.wantKey || got.Headers["h"] != "v" ||
				!got.Timestamp.Equal(at) || got.Topic != "shop" || got.Partition != 2 || got.Offset != 7 {
				t.Errorf("sourceData = %s; want value %s, key %s", data, tt.wantValue, tt.wantKey)
			}
		})
	}
}

// TestClaimSkipsCopiesNotCommitted: a copy Kafka acknowledged but whose
// commit never happened (the process died in between) is found by the next
// claim, per source partition, so that it is not copied twice.
func TestClaimSkipsCopiesNotCommitted(t *testing.T) {
	cfg := Config{Brokers: strings.Split(testenv.KafkaBrokers(t), ","), Partitions: 2,
		TopicPrefix: "test-claim-" + strings.ToLower(watermill.NewShortUUID())}
	if err := EnsureTopics(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.SaramaConfig()); err == nil {
			tp := cfg.Topics()
			for _, n := range []string{tp.Events, tp.Results, tp.Streams, tp.Poison, tp.Marks} {
				_ = admin.DeleteTopic(n)
			}
			admin.Close()
		}
	})
	s, err := OpenSources(SourcesConfig{Kafka: cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := rtstream.Stream{ID: "orders", CreatedAt: time.Now().Add(-time.Minute),
		Source: &rtstream.Source{Topic: "shop", Format: rtstream.SourceJSON, From: rtstream.SourceEarliest}}
	in := &ingest{s: s, stream: st, group: cfg.TopicPrefix + ".source.orders"}
	copiedOf := func(p int32) int64 {
		t.Helper()
		c, err := in.claim(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		return c.copied
	}
	if got := copiedOf(0); got != -1 {
		t.Fatalf("before any copy: copied %d, want -1", got)
	}
	ev := func(id string) rtstream.Event {
		return rtstream.Event{ID: id, ReceivedAt: time.Now(), Data: json.RawMessage(`{}`)}
	}
	for _, b := range []record.EventBatch{
		{StreamID: "orders", Events: []rtstream.Event{ev("0-3"), ev("0-4"), ev("1-9")}},
		{StreamID: "other", Events: []rtstream.Event{ev("0-50")}},
		{StreamID: "orders", Events: []rtstream.Event{ev("1-10")}},
	} {
		if _, err := s.writeEvents(b.StreamID, b); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[int32]int64{0: 4, 1: 10, 2: -1} {
		if got := copiedOf(p); got != want {
			t.Errorf("source partition %d: copied %d, want %d", p, got, want)
		}
	}
}
