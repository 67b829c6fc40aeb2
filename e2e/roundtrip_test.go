package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// routeSet is where a client creates streams, sends events and reads results.
type routeSet struct {
	create  string
	events  func(id string) string
	results func(id string) string
}

var v1Routes = routeSet{
	create:  "/v1/streams",
	events:  func(id string) string { return "/v1/streams/" + id + "/events" },
	results: func(id string) string { return "/v1/streams/" + id + "/results" },
}

// seedRoutes are the routes of the original design, kept for old clients.
var seedRoutes = routeSet{
	create:  "/stream/start",
	events:  func(id string) string { return "/stream/" + id + "/send" },
	results: func(id string) string { return "/stream/" + id + "/results" },
}

// TestRoundTrip sends one event, a JSON batch of 100 and 100 NDJSON lines to a
// stream on a real Kafka and checks that exactly their 201 results arrive on
// the SSE feed, in order, each once.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := startServer(t, "rt", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "rt")))
	runRoundTrip(t, s.Base, v1Routes)
}

// TestRoundTripSeedRoutes is the same flow through /stream/start,
// /stream/{id}/send and /stream/{id}/results.
func TestRoundTripSeedRoutes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "seed", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "seed")))
	runRoundTrip(t, s.Base, seedRoutes)
}

// runRoundTrip is the whole client flow against one server.
func runRoundTrip(t *testing.T, base string, routes routeSet) {
	st := createStream(t, base+routes.create, "round trip")
	feed := openSSE(t, base+routes.results(st.ID))
	eventsURL := base + routes.events(st.ID)

	single, batch, lines, want := roundTripPayloads()
	var ids []string
	ids = append(ids, send(t, eventsURL, "application/json", single, 1)...)
	ids = append(ids, send(t, eventsURL, "application/json", batch, 100)...)
	ids = append(ids, send(t, eventsURL, "application/x-ndjson", lines, 100)...)
	if distinct(ids) != len(ids) {
		t.Errorf("the 202 answers repeat event ids: %d distinct of %d", distinct(ids), len(ids))
	}

	got := feed.awaitResults(t, len(ids), resultTimeout)
	checkResults(t, st.ID, got, ids, want)
	expectNoMoreResults(t, eventsURL, feed)
	expectHeartbeat(t, feed, 5*time.Second)
}

// roundTripPayloads are one event, a JSON array of 100 events and 100 NDJSON
// lines, of varied JSON types, and the data each result must carry.
func roundTripPayloads() (single, batch, lines []byte, want []json.RawMessage) {
	single = []byte(`{"kind":"single","text":"h\u00e9llo ☃ \"quoted\"\nnext line","nested":{"a":[1,2.5,-3e2,true,null]}}`)
	want = append(want, single)

	var b bytes.Buffer
	b.WriteString("[\n")
	for i := range 100 {
		var ev string
		switch {
		case i == 50:
			ev = `true`
		case i == 99:
			ev = `null`
		case i%10 == 3:
			ev = fmt.Sprint(i)
		case i%10 == 5:
			ev = fmt.Sprintf(`"batch string %d"`, i)
		case i%10 == 7:
			ev = fmt.Sprintf(`[%d, "x", {"y": []}]`, i)
		case i%10 == 9:
			// Line breaks inside an event: an SSE data line must still be one line.
			ev = fmt.Sprintf("{\n  \"n\": %d,\r\n  \"lines\": [\n    \"a\\nb\"\n  ]\n}", i)
		default:
			ev = fmt.Sprintf(`{ "kind": "batch", "n": %d, "big": 12345678901234567890 }`, i)
		}
		want = append(want, json.RawMessage(ev))
		b.WriteString("  " + ev)
		if i < 99 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]")
	batch = b.Bytes()

	var l bytes.Buffer
	for i := range 100 {
		var ev string
		switch {
		case i%10 == 3:
			ev = fmt.Sprintf(`"ndjson string %d"`, i)
		case i == 42:
			ev = `{"deep":{"x":[{"y":42}]}}`
		case i == 77:
			// A CRLF line ending.
			l.WriteString(`{"crlf":true}` + "\r\n")
			want = append(want, json.RawMessage(`{"crlf":true}`))
			continue
		default:
			ev = fmt.Sprintf(`{"kind":"ndjson","n":%d}`, i)
		}
		want = append(want, json.RawMessage(ev))
		l.WriteString(ev + "\n")
	}
	lines = l.Bytes()
	return single, batch, lines, want
}

func distinct(ids []string) int {
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}
