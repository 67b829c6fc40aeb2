package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestEmbeddedRoundTrip is the round trip of TestRoundTrip with KAFKA_BROKERS
// unset: the server runs its embedded broker under DATA_DIR/kafka.
func TestEmbeddedRoundTrip(t *testing.T) {
	t.Parallel()
	s := startServer(t, "embedded", map[string]string{"TOPIC_PREFIX": newPrefix(t, "emb")})
	runRoundTrip(t, s.Base, v1Routes)
}

// TestEmbeddedRestartKeepsStreams stops the embedded-broker server with
// SIGTERM and starts it again on the same DATA_DIR: the stream must still be
// there, and a send must still reach a new SSE subscriber, without the results
// of before the restart coming again.
func TestEmbeddedRestartKeepsStreams(t *testing.T) {
	t.Parallel()
	s := startServer(t, "embedded-restart", map[string]string{
		"TOPIC_PREFIX": newPrefix(t, "embr"),
		"DATA_DIR":     t.TempDir(),
	})
	id := "kept-" + randomSuffix()
	streamURL := s.Base + "/v1/streams/" + id
	def := []byte(`{"name":"kept across restarts"}`)

	rep := call(t, http.MethodPut, streamURL, "application/json", def)
	if rep.Status != http.StatusCreated {
		t.Fatalf("PUT %s: %s, want 201", streamURL, rep)
	}
	var before streamObj
	decodeJSON(t, "created stream", rep.Body, &before)
	checkStream(t, before, id, "kept across restarts")

	// One event processed before the restart, to see whether it comes again.
	feed := openSSE(t, streamURL+"/results")
	oldID := send(t, streamURL+"/events", "application/json", []byte(`{"when":"before restart"}`), 1)
	checkResults(t, id, feed.awaitResults(t, 1, resultTimeout), oldID, nil)
	feed.close()

	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	s.restart()

	rep = call(t, http.MethodGet, streamURL, "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("after the restart, GET %s: %s, want 200", streamURL, rep)
	}
	var after streamObj
	decodeJSON(t, "stream after restart", rep.Body, &after)
	checkStream(t, after, id, before.Name)
	if !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("after the restart, created_at %s, want %s", after.CreatedAt, before.CreatedAt)
	}
	if rep := call(t, http.MethodPut, streamURL, "application/json", def); rep.Status != http.StatusOK {
		t.Errorf("after the restart, the same PUT again: %s, want 200", rep)
	}

	feed = openSSE(t, streamURL+"/results")
	newID := send(t, streamURL+"/events", "application/json", []byte(`{"when":"after restart"}`), 1)[0]
	deadline := time.Now().Add(resultTimeout)
	for {
		d, ok := feed.nextResult(t, deadline)
		if !ok {
			t.Fatalf("after the restart, the new event's result did not arrive: %s", feed.reason())
		}
		if d.EventID == newID {
			if !jsonEqual(d.Data, []byte(`{"when":"after restart"}`)) {
				t.Errorf("after the restart, result data %s", d.Data)
			}
			break
		}
		if d.EventID == oldID[0] {
			t.Errorf("after the restart, the result of the event processed before it came again (cursor %s)", d.Cursor)
		} else {
			t.Errorf("after the restart, an unexpected result: event_id %s data %s", d.EventID, d.Data)
		}
	}
}
