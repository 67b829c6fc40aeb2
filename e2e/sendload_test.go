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
	"strings"
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
	var s sendStats
	for _, a := range within(&l.mu, &l.answers, func(a sendAnswer) time.Time { return a.at }, from, to) {
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

// within is the entries of log, guarded by mu, that began in [from, to);
// at is when an entry began.
func within[T any](mu *sync.Mutex, log *[]T, at func(T) time.Time, from, to time.Time) []T {
	mu.Lock()
	defer mu.Unlock()
	var in []T
	for _, e := range *log {
		if t := at(e); !t.Before(from) && t.Before(to) {
			in = append(in, e)
		}
	}
	return in
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

// faultTraffic is the traffic a fault test keeps on the servers: its
// senders (sendLoad) and resuming SSE subscribers, subscriber j named
// subs[j] on stream subStream[j], dropping churn[j] connections of its own
// accord and resuming on the next server after a failure. What was
// acknowledged and what arrived goes to the checker.
type faultTraffic struct {
	sendLoad
	subCtx    context.Context // ends the subscribers
	stopSubs  context.CancelFunc
	subWG     sync.WaitGroup
	subs      []string // subscriber names, for the catch-up wait
	subStream []string // the stream of each subscriber
	churn     []int    // the connections each subscriber drops of its own accord
	connects  []atomic.Int64
}

func newFaultTraffic(t *testing.T, hangBound time.Duration, hangRetries bool) faultTraffic {
	ctx, stop := context.WithCancel(context.Background())
	return faultTraffic{sendLoad: newSendLoad(t, newChecker(), hangBound, hangRetries), subCtx: ctx, stopSubs: stop}
}

// addSub adds a subscriber, to be started by follow.
func (l *faultTraffic) addSub(name, stream string, churn int) {
	l.subs = append(l.subs, name)
	l.subStream = append(l.subStream, stream)
	l.churn = append(l.churn, churn)
}

// follow starts the subscribers on bases; senders and subscribers are
// stopped when the test ends, also when it stops early.
func (l *faultTraffic) follow(bases []string) {
	l.t.Cleanup(func() {
		l.stopSend()
		l.stopSubs()
		l.sendWG.Wait()
		l.subWG.Wait()
	})
	l.connects = make([]atomic.Int64, len(l.subs))
	for j, name := range l.subs {
		id := l.subStream[j]
		l.subWG.Go(func() {
			follow(l.subCtx, bases, id, j, l.churn[j], &l.connects[j], func(eventID, cursor string) {
				l.chk.receivedAt(name, id, eventID, cursor)
			})
		})
	}
}

// finish stops the senders, waits (up to max) until every subscriber has
// every acknowledged event, waits a moment more so that a duplicate right
// behind the last result is seen too, stops the subscribers and has the
// checker judge. It returns the checker's total.
func (l *faultTraffic) finish(max time.Duration) verdict {
	l.t.Helper()
	l.stopSend()
	l.sendWG.Wait()
	caughtUp := time.Now()
	deadline := caughtUp.Add(max)
	for j, name := range l.subs {
		for l.chk.missing(name, l.subStream[j]) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	l.t.Logf("subscribers caught up %s after the last send", time.Since(caughtUp).Round(time.Millisecond))
	time.Sleep(time.Second)
	l.stopSubs()
	l.subWG.Wait()
	l.chk.report(l.t)
	var total verdict
	for j, name := range l.subs {
		total.add(l.chk.check(name, l.subStream[j]))
	}
	var connects []string
	for j := range l.connects {
		connects = append(connects, strconv.FormatInt(l.connects[j].Load(), 10))
	}
	l.t.Logf("subscriber connections: %s", strings.Join(connects, " "))
	return total
}
