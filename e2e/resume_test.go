package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// TestResumeAcrossInstances: while 5,000 events flow through 10 streams
// (two concurrent senders each, alternating servers),
// every stream's subscriber disconnects at random 20 times and reconnects
// with its last cursor, alternating between two server processes. The
// checker must find nothing lost, duplicated or reordered.
func TestResumeAcrossInstances(t *testing.T) {
	t.Parallel()
	runResumeChurn(t, "resume", false)
}

// TestResumeThroughRestarts is the same with both servers restarted in the
// middle of it.
func TestResumeThroughRestarts(t *testing.T) {
	t.Parallel()
	runResumeChurn(t, "resume-restart", true)
}

func runResumeChurn(t *testing.T, label string, restart bool) {
	const (
		streams    = 10
		perStream  = 500
		reconnects = 20
	)
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, label))
	servers := []*server{startServer(t, "A", env), startServer(t, "B", env)}
	bases := []string{servers[0].Base, servers[1].Base}
	ids := make([]string, streams)
	for i := range ids {
		ids[i] = createStream(t, bases[i%2]+"/v1/streams", fmt.Sprintf("churn-%d", i)).ID
	}

	chk := newChecker()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()

	var acked atomic.Int64
	var subWG, sendWG sync.WaitGroup
	connects := make([]atomic.Int64, streams)
	for i, id := range ids {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			follow(subCtx, bases, id, i, reconnects, &connects[i], func(eventID, cursor string) {
				chk.receivedAt(fmt.Sprintf("sub-%d", i), id, eventID, cursor)
			})
		}()
	}
	// Two senders per stream, concurrently: each one's events must reach
	// every subscriber in that sender's order.
	const senders = 2
	sendErrs := make(chan error, streams*senders)
	for i, id := range ids {
		for snd := range senders {
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(7+snd)))
				name := fmt.Sprintf("sender-%d", snd)
				for n := 0; n < perStream/senders; {
					size := min(1+rng.IntN(20), perStream/senders-n)
					var body bytes.Buffer
					body.WriteByte('[')
					for k := 0; k < size; k++ {
						if k > 0 {
							body.WriteByte(',')
						}
						fmt.Fprintf(&body, `{"stream":%d,"sender":%d,"n":%d}`, i, snd, n+k)
					}
					body.WriteByte(']')
					got, err := sendRetrying(ctx, bases, n+snd, id, body.Bytes())
					if err != nil {
						sendErrs <- fmt.Errorf("stream %d %s: %w", i, name, err)
						return
					}
					chk.ack(id, name, got)
					acked.Add(int64(len(got)))
					n += size
				}
			}()
		}
	}

	if restart {
		// Both servers go down together in the middle of the flow, then
		// come back: senders and subscribers wait and carry on.
		for acked.Load() < streams*perStream/2 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		for _, s := range servers {
			if err := s.stop(); err != nil {
				t.Errorf("stopping %s: %v", s.name, err)
			}
		}
		t.Logf("both servers stopped after %d acknowledged events", acked.Load())
		for _, s := range servers {
			s.restart()
		}
	}
	sendWG.Wait()
	close(sendErrs)
	for err := range sendErrs {
		t.Fatal(err)
	}
	t.Logf("%d events acknowledged", acked.Load())

	// Every subscriber catches up with everything acknowledged.
	deadline := time.Now().Add(2 * time.Minute)
	for i, id := range ids {
		for (chk.missing(fmt.Sprintf("sub-%d", i), id) > 0 || connects[i].Load() <= reconnects) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A little longer, so that a duplicate right behind the last result
	// would be seen too.
	time.Sleep(500 * time.Millisecond)
	stopSubs()
	subWG.Wait()
	for i := range connects {
		if n := connects[i].Load(); n < reconnects+1 {
			t.Errorf("subscriber %d connected %d times, want at least %d: the churn did not happen", i, n, reconnects+1)
		}
	}
	chk.report(t)

	// Most reconnects were served from memory, and both ways were taken.
	var fromHistory, fromKafka float64
	for _, s := range servers {
		m := scrape(t, s.Base)
		fromHistory += m[`rtstream_resumes_total{source="history"}`]
		fromKafka += m[`rtstream_resumes_total{source="kafka"}`]
	}
	t.Logf("resumes since the last start: %v from history, %v from Kafka", fromHistory, fromKafka)
	if fromHistory+fromKafka == 0 {
		t.Error("rtstream_resumes_total counted no resume")
	}
}

// sendRetrying POSTs one batch, alternating servers by attempt, until one
// acknowledges it. A 503 or a refused connection means nothing was accepted;
// an answer lost on the way (reset, timeout) may leave events accepted
// without their ids: the checker counts those as unacknowledged.
func sendRetrying(ctx context.Context, bases []string, attempt int, streamID string, body []byte) ([]string, error) {
	for try := 0; ; try++ {
		base := bases[(attempt+try)%len(bases)]
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		rep, err := tryCall(rctx, http.MethodPost, base+"/v1/streams/"+streamID+"/events", "application/json", body)
		cancel()
		if err == nil && rep.Status == http.StatusAccepted {
			var a accepted
			if err := json.Unmarshal(rep.Body, &a); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", rep, err)
			}
			return a.EventIDs, nil
		}
		if err == nil && rep.Status != http.StatusServiceUnavailable {
			return nil, fmt.Errorf("send answered %s", rep)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gave up: %w (last: %v %s)", ctx.Err(), err, rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// follow is a subscriber that reconnects: it reads a stream's results over
// SSE from the earliest on, and for its first `churn` connections drops the
// connection after a random number of results or a random time, then
// reconnects to the next server with Last-Event-ID set to the last cursor it
// saw. A failed connection (server down) is retried the same way. It counts
// the connections it opened in connects.
func follow(ctx context.Context, bases []string, streamID string, seed, churn int, connects *atomic.Int64, got func(eventID, cursor string)) {
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	cursor := ""
	n := 0
	for ctx.Err() == nil {
		base := bases[n%len(bases)]
		n++
		connects.Add(1)
		var maxResults int
		var lifetime time.Duration
		if n <= churn {
			maxResults, lifetime = 1+rng.IntN(60), time.Duration(50+rng.IntN(400))*time.Millisecond
		}
		conn := n
		last, err := sseOnce(ctx, base+"/v1/streams/"+streamID+"/results", cursor, maxResults, lifetime, func(eventID, c string) {
			got(eventID, fmt.Sprintf("%s (connection %d after %s)", c, conn, cursor))
		})
		if last != "" {
			cursor = last
		}
		if err != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// sseOnce reads one SSE connection until it has read maxResults results (0:
// no limit), lifetime passed (0: none), the context ended or the connection
// failed. It returns the last cursor it read.
func sseOnce(ctx context.Context, url, after string, maxResults int, lifetime time.Duration, got func(eventID, cursor string)) (string, error) {
	if lifetime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lifetime)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-API-Key", apiKey)
	if after == "" {
		q := req.URL.Query()
		q.Set("from", "earliest")
		req.URL.RawQuery = q.Encode()
	} else {
		req.Header.Set("Last-Event-ID", after)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	br := bufio.NewReader(resp.Body)
	last, id, event, read := "", "", "", 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return last, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: ") && event == "result":
			var r struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal([]byte(line[6:]), &r); err != nil {
				return last, fmt.Errorf("result data %q: %w", line, err)
			}
			got(r.EventID, id)
			last = id
			read++
			if maxResults > 0 && read >= maxResults {
				return last, nil
			}
		case strings.HasPrefix(line, "data: ") && event == "end":
			return last, errors.New("stream ended")
		case line == "":
			id, event = "", ""
		}
	}
}
