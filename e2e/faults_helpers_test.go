package e2e

import (
	"fmt"
	"strings"
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
// resume with their cursor (faultTraffic). Every send's answer time is
// kept, so that a test can bound the answers given while Kafka was away.
type faultLoad struct {
	faultTraffic
	bases []string // servers; senders and subscribers move to the next one on a failure
	ids   []string // stream ids
}

// startFaultLoad starts sendersPerStream senders on every stream and
// subsPerStream resuming subscribers on every stream. Subscribers resume
// churn or churn+1 times of their own accord (so resumes also happen while
// nothing breaks, and with two servers half of them end up on each); a
// failed connection makes them resume on the next server.
func startFaultLoad(t *testing.T, bases, ids []string, sendersPerStream, subsPerStream, churn int, hangBound time.Duration) *faultLoad {
	l := &faultLoad{faultTraffic: newFaultTraffic(t, hangBound, false), bases: bases, ids: ids}
	for i, id := range ids {
		for k := range subsPerStream {
			l.addSub(fmt.Sprintf("sub-%d-%d", i, k), id, churn+len(l.subs)%2)
		}
	}
	l.follow(bases)
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
