package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sendLoad is the senders' half of a fault test's load: senders that POST
// batches of 1 to 10 events, one request at a time (so that the events each
// one has acknowledged have one order), and send again what was not
// acknowledged. Acknowledged events go to the checker; every attempt's
// answer and its time are kept, to be judged per fault.
type sendLoad struct {
	t   *testing.T
	chk *checker
	// hangBound is how long one send may go unanswered before the test
	// calls it a hang and fails. With hangRetries the hang is then
	// retried like a lost answer, so that one hang does not stop the load
	// and hide what comes after it; otherwise its sender stops.
	hangBound   time.Duration
	hangRetries bool

	acked       atomic.Int64 // events answered 202
	refused     atomic.Int64 // sends answered 503
	lostAnswers atomic.Int64 // sends without an answer (connection refused, reset or hung)

	mu      sync.Mutex
	answers []sendAnswer

	sendCtx  context.Context // ends the senders
	stopSend context.CancelFunc
	sendWG   sync.WaitGroup
}

// sendAnswer is when one send attempt began, how long its answer took, and
// what it was (0: none, the connection failed).
type sendAnswer struct {
	at      time.Time
	elapsed time.Duration
	status  int
}

func newSendLoad(t *testing.T, chk *checker, hangBound time.Duration, hangRetries bool) sendLoad {
	ctx, stop := context.WithCancel(context.Background())
	return sendLoad{t: t, chk: chk, hangBound: hangBound, hangRetries: hangRetries, sendCtx: ctx, stopSend: stop}
}

// sender sends to stream id (the stream-th) until the load stops, moving to
// the next of bases after every failed attempt. A request that is not
// acknowledged is sent again with new event ids: the events of an attempt
// whose answer was lost may or may not be delivered, and the checker counts
// them apart.
func (l *sendLoad) sender(bases []string, stream int, id string, snd int, seed uint64) {
	rng := rand.New(rand.NewPCG(uint64(stream), seed))
	name := fmt.Sprintf("sender-%d", snd)
	url := "/v1/streams/" + id + "/events"
	for n, attempt := 0, snd; l.sendCtx.Err() == nil; {
		size := 1 + rng.IntN(10)
		var body bytes.Buffer
		body.WriteByte('[')
		for k := range size {
			if k > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"stream":%d,"sender":%d,"n":%d}`, stream, snd, n+k)
		}
		body.WriteByte(']')
		for l.sendCtx.Err() == nil {
			base := bases[attempt%len(bases)]
			attempt++
			ids, retry := l.sendOnce(base+url, body.Bytes())
			if ids != nil {
				l.chk.ack(id, name, ids)
				l.acked.Add(int64(len(ids)))
				n += size
				break
			}
			if !retry {
				return
			}
			// A retry back-off, not synchronisation: keep the load on
			// through the outage without spinning.
			time.Sleep(time.Duration(100+rng.IntN(100)) * time.Millisecond)
		}
	}
}

// sendOnce makes one send attempt and records its answer. It returns the
// acknowledged event ids, or whether the attempt may be retried; an answer
// the contract does not allow fails the test. An attempt under way runs to
// its answer even when the load stops, so that every answer is measured.
func (l *sendLoad) sendOnce(url string, body []byte) (ids []string, retry bool) {
	ctx, cancel := context.WithTimeout(context.Background(), l.hangBound)
	defer cancel()
	began := time.Now()
	rep, err := tryCall(ctx, http.MethodPost, url, "application/json", body)
	l.mu.Lock()
	l.answers = append(l.answers, sendAnswer{at: began, elapsed: time.Since(began), status: rep.Status})
	l.mu.Unlock()
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		l.t.Errorf("POST %s at %s: no answer within %s: the send hangs", url, began.Format("15:04:05.000"), l.hangBound)
		l.lostAnswers.Add(1)
		return nil, l.hangRetries
	case err != nil:
		// The server is down, or died with the request: its events may
		// have been written.
		l.lostAnswers.Add(1)
		return nil, true
	case rep.Status == http.StatusAccepted:
		var a accepted
		if err := json.Unmarshal(rep.Body, &a); err != nil || a.Accepted != len(a.EventIDs) || len(a.EventIDs) == 0 {
			l.t.Errorf("POST %s: a 202 that is not an acknowledgement: %s", url, rep)
			return nil, false
		}
		return a.EventIDs, false
	case rep.Status == http.StatusServiceUnavailable:
		l.refused.Add(1)
		if ra, err := strconv.Atoi(rep.Header.Get("Retry-After")); err != nil || ra < 1 {
			l.t.Errorf("POST %s: 503 with Retry-After %q, want a number of seconds", url, rep.Header.Get("Retry-After"))
		}
		return nil, true
	default:
		l.t.Errorf("POST %s: %s, want 202 or 503", url, rep)
		return nil, false
	}
}

// sendStats sums up the send attempts begun in one window.
type sendStats struct {
	accepted, refused, none int
	slowest                 sendAnswer
}

func (s sendStats) String() string {
	return fmt.Sprintf("%d answered 202, %d 503, %d none, slowest %s", s.accepted, s.refused, s.none, s.slowest.elapsed.Round(time.Millisecond))
}

// answersIn sums up the attempts begun in [from, to).
func (l *sendLoad) answersIn(from, to time.Time) sendStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s sendStats
	for _, a := range l.answers {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		switch a.status {
		case http.StatusAccepted:
			s.accepted++
		case http.StatusServiceUnavailable:
			s.refused++
		default:
			s.none++
		}
		if a.elapsed > s.slowest.elapsed {
			s.slowest = a
		}
	}
	return s
}

// acksAfter counts the 202 answers to attempts begun at or after from.
func (l *sendLoad) acksAfter(from time.Time) int {
	return l.answersIn(from, time.Now().Add(time.Hour)).accepted
}

// waitAcked waits until at least n events were acknowledged, failing the
// test after max.
func (l *sendLoad) waitAcked(n int64, max time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(max)
	for l.acked.Load() < n {
		if time.Now().After(deadline) || l.t.Failed() {
			l.t.Fatalf("only %d of %d events acknowledged within %s", l.acked.Load(), n, max)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
