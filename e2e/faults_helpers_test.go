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

	"github.com/IBM/sarama"
)

// kill9 crashes the private broker with SIGKILL (scripts/kafka.sh kill9 reads
// the pid from this broker's own data dir, so it cannot touch another one,
// and takes only that data dir's lock, so no other broker's start holds it up).
func (k *privateKafka) kill9(t *testing.T) {
	t.Helper()
	if err := k.run("kill9", 150*time.Second); err != nil {
		t.Fatalf("kill -9 of the private broker: %v", err)
	}
}

// faultLoad is the load the fault tests put on the servers while something
// breaks: senders that POST batches to several streams and retry what was
// not acknowledged, and subscribers that follow every stream over SSE and
// resume with their cursor. What was acknowledged and what arrived goes to a
// checker; every send's answer time is kept, so that a test can bound the
// answers given while Kafka was away.
type faultLoad struct {
	t     *testing.T
	bases []string // servers; senders and subscribers move to the next one on a failure
	ids   []string // stream ids
	chk   *checker
	// hangBound is how long one send may go unanswered before the test
	// calls it a hang and fails.
	hangBound time.Duration

	acked       atomic.Int64 // events answered 202
	refused     atomic.Int64 // sends answered 503
	lostAnswers atomic.Int64 // sends without an answer (connection refused or reset)

	mu      sync.Mutex
	answers []sendAnswer

	sendCtx   context.Context // ends the senders
	stopSend  context.CancelFunc
	subCtx    context.Context // ends the subscribers
	stopSubs  context.CancelFunc
	sendWG    sync.WaitGroup
	subWG     sync.WaitGroup
	subs      []string // subscriber names, for the catch-up wait
	subStream []string // the stream of each subscriber
	churn     []int    // the connections each subscriber drops of its own accord
	connects  []atomic.Int64
}

// sendAnswer is when one send attempt began, how long its answer took, and
// what it was (0: none, the connection failed).
type sendAnswer struct {
	at      time.Time
	elapsed time.Duration
	status  int
}

// startFaultLoad starts sendersPerStream senders on every stream and
// subsPerStream resuming subscribers on every stream. Subscribers resume
// churn or churn+1 times of their own accord (so resumes also happen while
// nothing breaks, and with two servers half of them end up on each); a
// failed connection makes them resume on the next server.
func startFaultLoad(t *testing.T, bases, ids []string, sendersPerStream, subsPerStream, churn int, hangBound time.Duration) *faultLoad {
	l := &faultLoad{t: t, bases: bases, ids: ids, chk: newChecker(), hangBound: hangBound}
	l.sendCtx, l.stopSend = context.WithCancel(context.Background())
	l.subCtx, l.stopSubs = context.WithCancel(context.Background())
	t.Cleanup(func() { // also when the test stops early
		l.stopSend()
		l.stopSubs()
		l.sendWG.Wait()
		l.subWG.Wait()
	})
	for i, id := range ids {
		for k := range subsPerStream {
			l.subs = append(l.subs, fmt.Sprintf("sub-%d-%d", i, k))
			l.subStream = append(l.subStream, id)
			l.churn = append(l.churn, churn+len(l.churn)%2)
		}
	}
	l.connects = make([]atomic.Int64, len(l.subs))
	for j, name := range l.subs {
		id := l.subStream[j]
		l.subWG.Go(func() {
			follow(l.subCtx, bases, id, j, l.churn[j], &l.connects[j], func(eventID, cursor string) {
				l.chk.receivedAt(name, id, eventID, cursor)
			})
		})
	}
	for i, id := range ids {
		for snd := range sendersPerStream {
			l.sendWG.Go(func() { l.sender(i, id, snd) })
		}
	}
	return l
}

// sender POSTs batches of 1 to 10 events to one stream until the load stops,
// one request at a time, so that its acknowledged events have one order. A
// request that is not acknowledged is sent again (with new event ids: the
// events of an attempt whose answer was lost may or may not be delivered,
// and the checker counts them apart).
func (l *faultLoad) sender(stream int, id string, snd int) {
	rng := rand.New(rand.NewPCG(uint64(stream), uint64(snd)+101))
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
			base := l.bases[attempt%len(l.bases)]
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
// the contract does not allow fails the test.
func (l *faultLoad) sendOnce(url string, body []byte) (ids []string, retry bool) {
	// The senders are stopped by sendCtx between attempts only: an attempt
	// under way runs to its answer, so that every answer is measured.
	ctx, cancel := context.WithTimeout(context.Background(), l.hangBound)
	defer cancel()
	began := time.Now()
	rep, err := tryCall(ctx, http.MethodPost, url, "application/json", body)
	a := sendAnswer{at: began, elapsed: time.Since(began), status: rep.Status}
	l.mu.Lock()
	l.answers = append(l.answers, a)
	l.mu.Unlock()
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		l.t.Errorf("POST %s: no answer within %s: the send hangs", url, l.hangBound)
		return nil, false
	case err != nil:
		// The server is down, or died with the request: its events may
		// have been written.
		l.lostAnswers.Add(1)
		return nil, true
	case rep.Status == http.StatusAccepted:
		var ack accepted
		if err := json.Unmarshal(rep.Body, &ack); err != nil || ack.Accepted != len(ack.EventIDs) || len(ack.EventIDs) == 0 {
			l.t.Errorf("POST %s: a 202 that is not an acknowledgement: %s", url, rep)
			return nil, false
		}
		return ack.EventIDs, false
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

// slowest is the send attempt with the longest answer of those that began
// in [from, to), and how many there were.
func (l *faultLoad) slowest(from, to time.Time) (sendAnswer, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var longest sendAnswer
	n := 0
	for _, a := range l.answers {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		n++
		if a.elapsed > longest.elapsed {
			longest = a
		}
	}
	return longest, n
}

// acksAfter counts the 202 answers to attempts that began at or after from.
func (l *faultLoad) acksAfter(from time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if !a.at.Before(from) && a.status == http.StatusAccepted {
			n++
		}
	}
	return n
}

// waitAcked waits until at least n events were acknowledged, failing the
// test after max.
func (l *faultLoad) waitAcked(n int64, max time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(max)
	for l.acked.Load() < n {
		if time.Now().After(deadline) || l.t.Failed() {
			l.t.Fatalf("only %d of %d events acknowledged within %s", l.acked.Load(), n, max)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSettled waits until every subscriber has dropped all the connections
// it drops of its own accord and opened the one it keeps, failing the test
// after max. A crash before that could be absorbed by a connection the
// subscriber was about to drop anyway, and the crash would then test no
// resume for it.
func (l *faultLoad) waitSettled(max time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(max)
	for j, name := range l.subs {
		for l.connects[j].Load() <= int64(l.churn[j]) {
			if time.Now().After(deadline) || l.t.Failed() {
				l.t.Fatalf("subscriber %s still on its connections %d of %d dropped by itself after %s",
					name, l.connects[j].Load(), l.churn[j], max)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// finish stops the senders, waits until every subscriber has every
// acknowledged event (up to max), lets a moment pass so that a duplicate
// right behind the last result would be seen too, stops the subscribers and
// has the checker judge. It returns the checker's total.
func (l *faultLoad) finish(max time.Duration) verdict {
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
		v := l.chk.check(name, l.subStream[j])
		total.Acked += v.Acked
		total.Received += v.Received
		total.Lost += v.Lost
		total.Duplicated += v.Duplicated
		total.Reordered += v.Reordered
		total.Unacked += v.Unacked
	}
	var connects []string
	for j := range l.connects {
		connects = append(connects, strconv.FormatInt(l.connects[j].Load(), 10))
	}
	l.t.Logf("subscriber connections: %s", strings.Join(connects, " "))
	return total
}

// notResumed names the subscribers that opened fewer than want connections
// beyond the ones they dropped of their own accord.
func (l *faultLoad) notResumed(want int) []string {
	var out []string
	for j, name := range l.subs {
		if n := l.connects[j].Load(); n < int64(1+l.churn[j]+want) {
			out = append(out, fmt.Sprintf("%s (%d connections, %d dropped by itself)", name, n, l.churn[j]))
		}
	}
	return out
}

// recordCounts is how many records the events and results topics of prefix
// hold (the sum of their partitions' end offsets: nothing is deleted during
// a test). Each events record makes one results record (passthrough
// streams), so results beyond events are records the router made twice.
func recordCounts(t *testing.T, brokers, prefix string) (events, results int64, err error) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	client, err := sarama.NewClient(strings.Split(brokers, ","), cfg)
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	count := func(topic string) (int64, error) {
		parts, err := client.Partitions(topic)
		if err != nil {
			return 0, err
		}
		var n int64
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return 0, err
			}
			start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return 0, err
			}
			n += end - start
		}
		return n, nil
	}
	if events, err = count(prefix + ".events"); err != nil {
		return 0, 0, err
	}
	results, err = count(prefix + ".results")
	return events, results, err
}
