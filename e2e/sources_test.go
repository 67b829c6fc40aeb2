package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream/internal/testenv"
)

// sourceData is the data of a source stream's result: the record as the
// source topic held it.
type sourceData struct {
	Value     json.RawMessage   `json:"value"`
	Key       *string           `json:"key"`
	Headers   map[string]string `json:"headers"`
	Timestamp time.Time         `json:"timestamp"`
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
}

// sourceRecord is one record a plain Kafka producer writes to the source.
type sourceRecord struct {
	key, value string
	headers    map[string]string
}

// produce writes records to topic with a plain Sarama producer, in order.
func produce(t *testing.T, brokers, topic string, recs []sourceRecord) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(r.value)}
		if r.key != "" {
			m.Key = sarama.StringEncoder(r.key)
		}
		for k, v := range r.headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
}

// createTopic makes a one-partition topic that rtstream has never seen.
func createTopic(t *testing.T, brokers, topic string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		if a, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), cfg); err == nil {
			_ = a.DeleteTopic(topic)
			a.Close()
		}
	})
}

// TestSourceStreams follows a topic written by a plain Kafka producer: the
// records (keys, headers, one malformed) come over SSE in order, the
// malformed one as a dead letter, a key filter keeps its key only, sends
// are refused, and a client resuming from a middle cursor across a kill -9
// gets exactly the rest, records written while the server was down
// included.
func TestSourceStreams(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "src")
	topic := prefix + "-shop.orders"
	createTopic(t, brokers, topic)
	env := kafkaEnv(brokers, prefix)
	env["SOURCE_TOPICS"] = prefix + "-shop.*"
	s := startServer(t, "A", env)

	first := []sourceRecord{
		{key: "k1", value: `{"order":1}`, headers: map[string]string{"origin": "shop"}},
		{key: "k2", value: `{"order":2}`},
		{key: "k1", value: `{"order":3`}, // malformed: a dead letter
		{value: `{"order":4}`},
		{key: "k1", value: `{"order":5}`},
	}
	produce(t, brokers, topic, first)

	all := createSource(t, s.Base, map[string]any{"topic": topic, "from": "earliest"})
	// The key filter's stream is made with the CLI.
	c := ctl{t: t, bin: buildCLI(t), base: s.Base}
	k1 := strings.TrimSpace(c.mustRun("", "create", "-q", "--source-topic", topic, "--source-key", "k1", "--source-from", "earliest", "orders-k1"))
	feed := openSSE(t, s.Base+"/v1/streams/"+all+"/results?from=earliest")
	got := feed.awaitResults(t, 4, resultTimeout)
	checkSourceResults(t, got, topic, []int64{0, 1, 3, 4}, []string{`{"order":1}`, `{"order":2}`, `{"order":4}`, `{"order":5}`})
	if h := sourceOf(t, got[0]).Headers; h["origin"] != "shop" {
		t.Errorf("headers of the first record: %v, want origin=shop", h)
	}
	if k := sourceOf(t, got[2]).Key; k != nil {
		t.Errorf("a record without a key came with key %q", *k)
	}
	kfeed := openSSE(t, s.Base+"/v1/streams/"+k1+"/results?from=earliest")
	checkSourceResults(t, kfeed.awaitResults(t, 2, resultTimeout), topic, []int64{0, 4}, []string{`{"order":1}`, `{"order":5}`})
	expectDeadLetter(t, s.Base, all, "0-2", "not JSON")

	rep := call(t, http.MethodPost, s.Base+"/v1/streams/"+all+"/events", "application/json", []byte(`{"x":1}`))
	checkProblem(t, "send to a source stream", rep, http.StatusConflict)

	// Kill -9 while a client holds a middle cursor; records written while
	// the server is down come after the restart.
	cursor := got[1].Cursor
	if err := s.kill(); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, topic, []sourceRecord{{key: "k2", value: `{"order":6}`}, {key: "k1", value: `{"order":7}`}})
	s.restart()
	resumed := openSSEWith(t, s.Base+"/v1/streams/"+all+"/results", http.Header{"Last-Event-ID": {cursor}})
	checkSourceResults(t, resumed.awaitResults(t, 4, resultTimeout), topic, []int64{3, 4, 5, 6},
		[]string{`{"order":4}`, `{"order":5}`, `{"order":6}`, `{"order":7}`})
	// Nothing more, not even a copy made twice around the kill: the next
	// result is a sentinel written now.
	produce(t, brokers, topic, []sourceRecord{{value: `{"sentinel":true}`}})
	checkSourceResults(t, resumed.awaitResults(t, 1, resultTimeout), topic, []int64{7}, []string{`{"sentinel":true}`})
}

// TestSourceStreamRefusals: the answers at create for what cannot be
// followed, each leaving nothing behind.
func TestSourceStreamRefusals(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "srcref")
	env := kafkaEnv(brokers, prefix)
	// The second pattern lets the server's own topics through the list:
	// they are refused all the same.
	env["SOURCE_TOPICS"] = prefix + "-ok.*," + prefix + ".*"
	s := startServer(t, "A", env)
	for _, tc := range []struct {
		name   string
		source map[string]any
		status int
		detail string
	}{
		{"topic not allowed", map[string]any{"topic": prefix + "-secret.payroll"}, http.StatusForbidden, "SOURCE_TOPICS"},
		{"own topic", map[string]any{"topic": prefix + ".events"}, http.StatusUnprocessableEntity, "own"},
		{"topic missing", map[string]any{"topic": prefix + "-ok.missing"}, http.StatusUnprocessableEntity, prefix + "-ok.missing"},
		{"bad format", map[string]any{"topic": prefix + "-ok.x", "format": "xml"}, http.StatusBadRequest, "format"},
		{"bad from", map[string]any{"topic": prefix + "-ok.x", "from": "yesterday"}, http.StatusBadRequest, "from"},
		{"no topic", map[string]any{"format": "json"}, http.StatusBadRequest, "topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := mustJSON(t, map[string]any{"name": "src", "source": tc.source})
			p := checkProblem(t, tc.name, call(t, http.MethodPost, s.Base+"/v1/streams", "application/json", body), tc.status)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not name %q", p.Detail, tc.detail)
			}
		})
	}
	rep := call(t, http.MethodGet, s.Base+"/v1/streams", "", nil)
	if rep.Status != http.StatusOK || strings.Contains(string(rep.Body), `"source"`) {
		t.Errorf("after the refusals the list is %s, want no source stream", rep)
	}
}

// createSource creates a source stream and returns its id.
func createSource(t *testing.T, base string, source map[string]any) string {
	t.Helper()
	rep := call(t, http.MethodPost, base+"/v1/streams", "application/json", mustJSON(t, map[string]any{"name": "orders", "source": source}))
	if rep.Status != http.StatusCreated {
		t.Fatalf("create a source stream: %s, want 201", rep)
	}
	var st struct {
		ID     string `json:"id"`
		Source struct{ Topic, Format, From, Key string }
	}
	decodeJSON(t, "source stream", rep.Body, &st)
	if st.Source.Topic != source["topic"] || st.Source.Format != "json" {
		t.Errorf("created source %+v, want topic %v and format json (the default)", st.Source, source["topic"])
	}
	return st.ID
}

func sourceOf(t *testing.T, d delivery) sourceData {
	t.Helper()
	var sd sourceData
	decodeJSON(t, "source result", d.Data, &sd)
	return sd
}

// checkSourceResults checks the results' source offsets and values, in order.
func checkSourceResults(t *testing.T, got []delivery, topic string, offsets []int64, values []string) {
	t.Helper()
	for i, d := range got {
		sd := sourceOf(t, d)
		if sd.Topic != topic || sd.Partition != 0 || sd.Offset != offsets[i] || !jsonEqual(sd.Value, []byte(values[i])) {
			t.Errorf("result %d: %s/%d@%d value %s, want %s/0@%d value %s", i, sd.Topic, sd.Partition, sd.Offset, sd.Value, topic, offsets[i], values[i])
		}
		if want := fmt.Sprintf("0-%d", offsets[i]); d.EventID != want {
			t.Errorf("result %d: event id %s, want %s (the source position)", i, d.EventID, want)
		}
	}
}

// expectDeadLetter waits for the stream's dead letter of eventID.
func expectDeadLetter(t *testing.T, base, id, eventID, reason string) {
	t.Helper()
	deadline := time.Now().Add(resultTimeout)
	for time.Now().Before(deadline) {
		for _, dl := range readDeadLetters(t, base, id, "?limit=100").DeadLetters {
			if dl.EventID == eventID && strings.Contains(dl.Reason, reason) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("no dead letter %s with reason %q for stream %s", eventID, reason, id)
}
