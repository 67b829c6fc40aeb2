package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/coder/websocket"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestNotUTF8RefusedOnEveryPath: bytes that are not UTF-8 are refused with a
// 400 problem naming where they are, on every input path (JSON, batch,
// NDJSON, WebSocket frames, stream names, processor expressions,
// idempotency keys), and a refused batch leaves nothing behind: the next
// result on a feed opened before is the one of a valid send made after.
func TestNotUTF8RefusedOnEveryPath(t *testing.T) {
	t.Parallel()
	s := startServer(t, "A", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "utf8")))
	st := createStream(t, s.Base+"/v1/streams", "utf8")
	events := s.Base + "/v1/streams/" + st.ID + "/events"
	feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")
	ws := openWS(t, wsURL(s.Base, st.ID, ""), nil)

	for _, tc := range []struct {
		name, contentType, body, pointer string
	}{
		{"one event", "application/json", "{\"a\":\"\xff\xfe\"}", "/a"},
		{"batch", "application/json", "[{\"ok\":1},{\"b\":[\"x\",\"\xc3\"]}]", "/1/b/1"},
		{"ndjson", "application/x-ndjson", "{\"ok\":1}\n{\"c\":\"\xed\xa0\x80\"}\n", "/1/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := call(t, http.MethodPost, events, tc.contentType, []byte(tc.body))
			p := checkProblem(t, tc.name, rep, http.StatusBadRequest)
			var fields struct {
				Errors []struct{ Pointer, Detail string } `json:"errors"`
			}
			decodeJSON(t, tc.name, rep.Body, &fields)
			if !strings.Contains(p.Detail, "not valid UTF-8") || len(fields.Errors) != 1 || fields.Errors[0].Pointer != tc.pointer {
				t.Errorf("problem %s: want a detail saying not valid UTF-8 and the pointer %s", rep.Body, tc.pointer)
			}
		})
	}
	ws.sendBad("WebSocket frame", websocket.MessageText, []byte("{\"events\":[{\"ok\":1},{\"d\":\"\xff\"}]}"), http.StatusBadRequest)

	for _, tc := range []struct{ name, body string }{
		{"stream name", "{\"name\":\"caf\xe9\"}"},
		{"processor expression", "{\"processor\":{\"filter\":\"data.x == '\xff'\"}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := checkProblem(t, tc.name, call(t, http.MethodPost, s.Base+"/v1/streams", "application/json", []byte(tc.body)), http.StatusBadRequest)
			if !strings.Contains(p.Detail, "not valid UTF-8") {
				t.Errorf("detail %q: want it to say not valid UTF-8", p.Detail)
			}
		})
	}
	ctx := t.Context()
	rep, err := request(ctx, http.MethodPost, events, "application/json", []byte(`{"ok":1}`), http.Header{"Idempotency-Key": {"k\xff"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := checkProblem(t, "idempotency key", rep, http.StatusBadRequest); !strings.Contains(p.Detail, "UTF-8") {
		t.Errorf("idempotency key: detail %q, want it to name UTF-8", p.Detail)
	}

	// Nothing of the refused sends reached the stream.
	ok := send(t, events, "application/json", []byte(`{"after":"é"}`), 1)
	got := feed.awaitResults(t, 1, resultTimeout)
	if got[0].EventID != ok[0] {
		t.Errorf("first result after the refusals is event %s (%s), want the valid send's %s", got[0].EventID, got[0].Data, ok[0])
	}
	if w := ws.awaitResults(1); w[0].EventID != ok[0] {
		t.Errorf("WebSocket: first result is event %s, want %s", w[0].EventID, ok[0])
	}
}

// TestNotUTF8InKafkaLeavesValid: an events record written to Kafka by
// another producer (or an older version) with bytes that are not UTF-8 is
// delivered with U+FFFD in their place, as valid JSON, and counted.
func TestNotUTF8InKafkaLeavesValid(t *testing.T) {
	t.Parallel()
	brokers := testenv.KafkaBrokers(t)
	prefix := newPrefix(t, "utf8kafka")
	s := startServer(t, "A", kafkaEnv(brokers, prefix))
	st := createStream(t, s.Base+"/v1/streams", "raw")
	feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")

	value := "{\"stream_id\":\"" + st.ID + "\",\"events\":[{\"event_id\":\"raw-1\",\"received_at\":\"" +
		time.Now().UTC().Format(time.RFC3339Nano) + "\",\"data\":{\"name\":\"caf\xe9\",\"ok\":true}}]}"
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(strings.Split(brokers, ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: prefix + ".events", Key: sarama.StringEncoder(st.ID), Value: sarama.StringEncoder(value)}); err != nil {
		t.Fatal(err)
	}
	got := feed.awaitResults(t, 1, resultTimeout)
	if !utf8.Valid(got[0].Data) || !json.Valid(got[0].Data) || !strings.Contains(string(got[0].Data), "caf\uFFFD") {
		t.Errorf("result data %q: want valid UTF-8 JSON with U+FFFD for the byte", got[0].Data)
	}
	if n := metricValue(t, s, `rtstream_invalid_utf8_replaced_total{at="router"}`); n < 1 {
		t.Errorf("rtstream_invalid_utf8_replaced_total{at=\"router\"} = %v, want at least 1", n)
	}
}
