package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestStalledClientsDoNotDelayOthers runs the same traffic twice through one
// stream while a healthy SSE subscriber measures POST→receive latency: first
// alone, then with a stalled SSE client and a stalled WebSocket client on the
// same stream (both on sockets with tiny receive buffers, never reading).
// Both stalled clients must be disconnected, the healthy one must get every
// result in order both times, and the two latency distributions are
// reported side by side (figures, not a timed assertion: this machine is
// shared).
func TestStalledClientsDoNotDelayOthers(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "stall-lat"))
	env["MAX_BODY_BYTES"] = "2000000"
	s := startServer(t, "stall-lat", env)
	st := createStream(t, s.Base+"/v1/streams", "stall-latency")
	eventsURL := s.Base + st.Links.Events
	healthy := openSSE(t, s.Base+st.Links.Results)
	chk := newChecker()

	alone := runStallTraffic(t, eventsURL, healthy, st.ID, chk, "alone")

	addr := strings.TrimPrefix(s.Base, "http://")
	sse := openStalled(t, addr, st.Links.Results)
	ws := openStalledWS(t, addr, st.Links.Results)
	withStalled := runStallTraffic(t, eventsURL, healthy, st.ID, chk, "with stalled clients")

	sse.drainUntilClosed(t, 60*time.Second)
	if n := len(sse.data); n == 0 {
		t.Error("the stalled SSE client got nothing at all")
	}
	ws.awaitClosed(t, 60*time.Second)
	chk.report(t)
	if got := scrape(t, s.Base)["rtstream_slow_client_disconnects_total"]; got < 1 {
		t.Errorf("rtstream_slow_client_disconnects_total = %v after two stalled clients", got)
	}
	t.Logf("healthy subscriber POST→receive latency, alone: %s", alone)
	t.Logf("healthy subscriber POST→receive latency, with a stalled SSE and WebSocket client: %s", withStalled)
}

type latencies []time.Duration

func (l latencies) String() string {
	s := slices.Clone(l)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s", len(s), q(0.5), q(0.9), q(0.99), s[len(s)-1])
}

// runStallTraffic sends bulk batches (enough to fill a stalled client's
// socket buffers), waits until the healthy subscriber has them, then sends
// paced single events (more than a subscriber's buffer holds, so a stalled
// client overflows it) and returns the healthy subscriber's POST→receive
// latency for those.
func runStallTraffic(t *testing.T, eventsURL string, healthy *sseConn, streamID string, chk *checker, phase string) latencies {
	t.Helper()
	const bulk, perBulk, singles = 30, 1000, 300
	pad := strings.Repeat("x", 420)
	for i := 0; i < bulk; i++ {
		var b bytes.Buffer
		b.WriteByte('[')
		for j := 0; j < perBulk; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"bulk":%d,"n":%d,"pad":"%s"}`, i, j, pad)
		}
		b.WriteByte(']')
		chk.ack(streamID, "sender", send(t, eventsURL, "application/json", b.Bytes(), perBulk))
	}
	for _, d := range healthy.awaitResults(t, bulk*perBulk, resultTimeout) {
		chk.received("healthy", streamID, d.EventID)
	}

	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, singles)
	go func() {
		defer close(arrivals)
		deadline := time.Now().Add(resultTimeout)
		for n := 0; n < singles; n++ {
			f, ok := healthy.nextEvent(deadline)
			if !ok || f.Event != "result" {
				return
			}
			var r result
			if err := json.Unmarshal([]byte(f.Data), &r); err != nil {
				return
			}
			arrivals <- arrival{r.EventID, time.Now()}
		}
	}()
	sentAt := map[string]time.Time{}
	for i := 0; i < singles; i++ {
		start := time.Now()
		ids := send(t, eventsURL, "application/json", fmt.Appendf(nil, `{"single":%d}`, i), 1)
		chk.ack(streamID, "sender", ids)
		sentAt[ids[0]] = start
		time.Sleep(2 * time.Millisecond)
	}
	var lat latencies
	for a := range arrivals {
		chk.received("healthy", streamID, a.id)
		if at, ok := sentAt[a.id]; ok {
			lat = append(lat, a.at.Sub(at))
		}
	}
	if len(lat) != singles {
		t.Fatalf("%s: the healthy subscriber got %d of %d paced results", phase, len(lat), singles)
	}
	return lat
}

// stalledWS is a WebSocket client on a socket with a tiny receive buffer that
// reads nothing until awaitClosed.
type stalledWS struct {
	conn *websocket.Conn
}

func openStalledWS(t *testing.T, addr, resultsPath string) *stalledWS {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return dialSmallReadBuffer(addr, 1024) },
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsPath := strings.TrimSuffix(resultsPath, "/results") + "/ws"
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+wsPath, &websocket.DialOptions{
		HTTPClient: hc,
		HTTPHeader: http.Header{"X-Api-Key": {apiKey}},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket %s: %v (status %d)", wsPath, err, status)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return &stalledWS{conn: c}
}

// awaitClosed reads until the server's close (or a cut connection) and fails
// the test if the connection is still open after limit.
func (w *stalledWS) awaitClosed(t *testing.T, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	frames := 0
	for {
		_, _, err := w.conn.Read(ctx)
		if err == nil {
			frames++
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("the stalled WebSocket was still open %s after it began to read (%d frames read)", limit, frames)
		}
		t.Logf("the stalled WebSocket read %d frames, then: %v (close status %d)", frames, err, websocket.CloseStatus(err))
		return
	}
}
