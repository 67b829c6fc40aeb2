package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestTwoInstances runs two servers on one Kafka with the same TOPIC_PREFIX:
// a stream created on A is at once usable on B, events sent to B reach the
// subscribers of both, and a delete on A is at once seen on B and ends both
// feeds.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "multi"))
	a := startServer(t, "A", env)
	b := startServer(t, "B", env)

	st := createStream(t, a.Base+"/v1/streams", "shared")
	onB := b.Base + "/v1/streams/" + st.ID
	// No wait: read-your-writes across instances.
	rep := call(t, http.MethodGet, onB, "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("GET on B right after the create on A: %s, want 200", rep)
	}
	var seen streamObj
	decodeJSON(t, "stream on B", rep.Body, &seen)
	checkStream(t, seen, st.ID, st.Name)
	if !seen.CreatedAt.Equal(st.CreatedAt) {
		t.Errorf("B says created_at %s, A said %s", seen.CreatedAt, st.CreatedAt)
	}
	firstIDs := send(t, onB+"/events", "application/json", []byte(`{"first":"on B"}`), 1)

	feedA := openSSE(t, a.Base+"/v1/streams/"+st.ID+"/results")
	feedB := openSSE(t, onB+"/results")

	var ids []string
	var want []json.RawMessage
	one := []byte(`{"n":0,"via":"B"}`)
	ids = append(ids, send(t, onB+"/events", "application/json", one, 1)...)
	want = append(want, one)
	var batch bytes.Buffer
	batch.WriteString("[")
	for i := 1; i <= 50; i++ {
		ev := fmt.Sprintf(`{"n":%d,"via":"B","kind":"batch"}`, i)
		want = append(want, json.RawMessage(ev))
		if i > 1 {
			batch.WriteString(",")
		}
		batch.WriteString(ev)
	}
	batch.WriteString("]")
	ids = append(ids, send(t, onB+"/events", "application/json", batch.Bytes(), 50)...)
	var lines bytes.Buffer
	for i := 51; i <= 70; i++ {
		ev := fmt.Sprintf(`{"n":%d,"via":"B","kind":"ndjson"}`, i)
		want = append(want, json.RawMessage(ev))
		lines.WriteString(ev + "\n")
	}
	ids = append(ids, send(t, onB+"/events", "application/x-ndjson", lines.Bytes(), 20)...)

	// The first event was sent before the feeds opened, and the feed has no
	// replay: it may or may not be delivered, depending on when it was
	// processed; drop it if it comes first.
	for name, feed := range map[string]*sseConn{"A": feedA, "B": feedB} {
		got := feed.awaitResults(t, len(ids), resultTimeout)
		if got[0].EventID == firstIDs[0] {
			got = append(got[1:], feed.awaitResults(t, 1, resultTimeout)...)
		}
		t.Run("feed on "+name, func(t *testing.T) { checkResults(t, st.ID, got, ids, want) })
	}
	expectNoMoreResults(t, onB+"/events", feedA, feedB)

	// The same definition through B is the existing stream.
	if rep := call(t, http.MethodPut, onB, "application/json", []byte(`{"name":"shared"}`)); rep.Status != http.StatusOK {
		t.Errorf("PUT on B with A's definition: %s, want 200", rep)
	}

	rep = call(t, http.MethodDelete, a.Base+"/v1/streams/"+st.ID, "", nil)
	if rep.Status != http.StatusNoContent {
		t.Fatalf("DELETE on A: %s, want 204", rep)
	}
	checkProblem(t, "send on B right after the delete on A",
		call(t, http.MethodPost, onB+"/events", "application/json", []byte(`{}`)), http.StatusNotFound)
	checkProblem(t, "GET on B right after the delete on A", call(t, http.MethodGet, onB, "", nil), http.StatusNotFound)
	feedA.awaitEnd(t, 30*time.Second)
	feedB.awaitEnd(t, 30*time.Second)
}
