package e2e

// Idempotency-Key on sends, against the built server and a real Kafka: a
// retried request gets the first answer back and its events exist once, on
// one instance (in-process store) and across two instances sharing Redis.
//
// Not tested, by design: two instances WITHOUT Redis do not share keys (each
// remembers its own), so a retry that lands on the other instance is sent
// again. docs/decisions/0016-idempotency.md says so; a test would only pin
// down a limitation.

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rtstream/rtstream/internal/testenv"
)

const (
	idemHeader   = "Idempotency-Key"
	replayHeader = "Idempotent-Replayed"
)

// idemSend POSTs body with an Idempotency-Key and returns the whole answer.
func idemSend(t *testing.T, url, contentType string, body []byte, key string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rep, err := request(ctx, http.MethodPost, url, contentType, body, http.Header{idemHeader: {key}})
	if err != nil {
		t.Errorf("POST %s: %v", url, err)
	}
	return rep
}

// idemSendMany sends the same request n times at once, to the URLs in turn.
func idemSendMany(t *testing.T, urls []string, n int, body []byte, key string) []reply {
	t.Helper()
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = idemSend(t, urls[i%len(urls)], "application/json", body, key)
		})
	}
	close(start)
	wg.Wait()
	return replies
}

// sameAccepted checks that every reply is the same 202 accepting n events,
// byte for byte, and returns its event ids. Exactly fresh of them may be
// first answers; the others must say they are replays.
func sameAccepted(t *testing.T, what string, replies []reply, n int) []string {
	t.Helper()
	replayed := 0
	for i, rep := range replies {
		if rep.Status != http.StatusAccepted {
			t.Fatalf("%s: reply %d: %s, want 202", what, i, rep)
		}
		if !bytes.Equal(rep.Body, replies[0].Body) {
			t.Errorf("%s: reply %d differs from reply 0:\n%s\n%s", what, i, rep.Body, replies[0].Body)
		}
		if rep.Header.Get(replayHeader) == "true" {
			replayed++
		}
	}
	if replayed != len(replies)-1 {
		t.Errorf("%s: %d of %d replies say %s, want all but the first", what, replayed, len(replies), replayHeader)
	}
	var a accepted
	decodeJSON(t, what, replies[0].Body, &a)
	if a.Accepted != n || len(a.EventIDs) != n || distinct(a.EventIDs) != n {
		t.Fatalf("%s: %s, want %d distinct events accepted", what, replies[0].Body, n)
	}
	return a.EventIDs
}

// metricValue reads one unlabelled counter from the server's /metrics.
func metricValue(t *testing.T, s *server, name string) float64 {
	t.Helper()
	rep := call(t, http.MethodGet, s.Base+"/metrics", "", nil)
	sc := bufio.NewScanner(bytes.NewReader(rep.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, v)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestIdempotencyRetries: one server (the in-process store). The same request
// sent three times, then five times at once, then again on the seed route,
// is answered the same every time, and each of its events gives exactly one
// result. The same key with another body is refused with 422.
func TestIdempotencyRetries(t *testing.T) {
	t.Parallel()
	s := startServer(t, "idem", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "idem")))
	st := createStream(t, s.Base+"/v1/streams", "idempotency")
	feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")
	eventsURL := s.Base + "/v1/streams/" + st.ID + "/events"

	key1, body1 := "retry-"+randomSuffix(), []byte(`[{"n":1},{"n":2},{"n":3}]`)
	var seq []reply
	for range 3 {
		seq = append(seq, idemSend(t, eventsURL, "application/json", body1, key1))
	}
	ids1 := sameAccepted(t, "three sequential sends", seq, 3)

	key2, body2 := "burst-"+randomSuffix(), []byte(`[{"m":1},{"m":2}]`)
	ids2 := sameAccepted(t, "five concurrent sends", idemSendMany(t, []string{eventsURL}, 5, body2, key2), 2)

	// The seed route is the same handler: the same key there is the same
	// request on the same stream.
	seed := idemSend(t, s.Base+"/stream/"+st.ID+"/send", "application/json", body1, key1)
	sameAccepted(t, "the seed route", []reply{seq[0], seed}, 3)

	other := idemSend(t, eventsURL, "application/json", []byte(`[{"n":1}]`), key1)
	checkProblem(t, "same key, another body", other, http.StatusUnprocessableEntity)
	bad := idemSend(t, eventsURL, "application/json", body1, strings.Repeat("x", 256))
	checkProblem(t, "a key over 255 characters", bad, http.StatusBadRequest)

	want := append(append([]string{}, ids1...), ids2...)
	got := feed.awaitResults(t, len(want), resultTimeout)
	checkResults(t, st.ID, got, want, nil)
	expectNoMoreResults(t, eventsURL, feed)

	if v := metricValue(t, s, "rtstream_idempotent_replays_total"); v != 2+4+1 {
		t.Errorf("rtstream_idempotent_replays_total = %v, want 7", v)
	}
}

// TestIdempotencyAcrossInstances: two servers sharing Redis (REDIS_URL) share
// the keys: a retry on the other instance, and duplicates sent to both at
// once, get the first answer, and the events exist once.
func TestIdempotencyAcrossInstances(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "idem-redis"))
	env["REDIS_URL"] = testenv.RedisURL(t)
	// The keys of this test's prefix need not outlive it in the shared Redis.
	env["IDEMPOTENCY_TTL"] = "10m"
	a := startServer(t, "idem-redis-A", env)
	b := startServer(t, "idem-redis-B", env)

	st := createStream(t, a.Base+"/v1/streams", "idempotency across instances")
	feed := openSSE(t, a.Base+"/v1/streams/"+st.ID+"/results")
	urlA := a.Base + "/v1/streams/" + st.ID + "/events"
	urlB := b.Base + "/v1/streams/" + st.ID + "/events"

	key1, body1 := "cross-"+randomSuffix(), []byte(`{"from":"A"}`)
	first := idemSend(t, urlA, "application/json", body1, key1)
	retry := idemSend(t, urlB, "application/json", body1, key1)
	ids1 := sameAccepted(t, "a retry on the other instance", []reply{first, retry}, 1)

	key2, body2 := "both-"+randomSuffix(), []byte(`[{"k":1},{"k":2}]`)
	ids2 := sameAccepted(t, "six concurrent sends to both instances",
		idemSendMany(t, []string{urlA, urlB}, 6, body2, key2), 2)

	other := idemSend(t, urlB, "application/json", []byte(`{"from":"B"}`), key1)
	checkProblem(t, "same key, another body, on the other instance", other, http.StatusUnprocessableEntity)

	want := append(append([]string{}, ids1...), ids2...)
	got := feed.awaitResults(t, len(want), resultTimeout)
	checkResults(t, st.ID, got, want, nil)
	expectNoMoreResults(t, urlA, feed)

	replays := metricValue(t, a, "rtstream_idempotent_replays_total") + metricValue(t, b, "rtstream_idempotent_replays_total")
	if replays != 1+5 {
		t.Errorf("replays over both instances = %v, want 6", replays)
	}
}
