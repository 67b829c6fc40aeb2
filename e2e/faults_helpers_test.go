package e2e

import (
	"context"
	"fmt"
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
	sendLoad
	bases     []string        // servers; senders and subscribers move to the next one on a failure
	ids       []string        // stream ids
	subCtx    context.Context // ends the subscribers
	stopSubs  context.CancelFunc
	subWG     sync.WaitGroup
	subs      []string // subscriber names, for the catch-up wait
	subStream []string // the stream of each subscriber
	churn     []int    // the connections each subscriber drops of its own accord
	connects  []atomic.Int64
}

// startFaultLoad starts sendersPerStream senders on every stream and
// subsPerStream resuming subscribers on every stream. Subscribers resume
// churn or churn+1 times of their own accord (so resumes also happen while
// nothing breaks, and with two servers half of them end up on each); a
// failed connection makes them resume on the next server.
func startFaultLoad(t *testing.T, bases, ids []string, sendersPerStream, subsPerStream, churn int, hangBound time.Duration) *faultLoad {
	l := &faultLoad{sendLoad: newSendLoad(t, newChecker(), hangBound, false), bases: bases, ids: ids}
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
			l.sendWG.Go(func() { l.sender(bases, i, id, snd, uint64(snd)+101) })
		}
	}
	return l
}

// slowest is the send attempt with the longest answer of those that began
// in [from, to), and how many there were.
func (l *faultLoad) slowest(from, to time.Time) (sendAnswer, int) {
	s := l.answersIn(from, to)
	return s.slowest, s.accepted + s.refused + s.none
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
