package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// checker is the client-side delivery checker: it is told which events the
// API acknowledged (in the order each sender had them acknowledged) and which
// results each subscriber received, and it reports per subscriber and stream
// the results lost (acknowledged, never received), duplicated (received more
// than once) and reordered (received out of one sender's order). Results of
// events that were never acknowledged (a send whose answer was lost) are
// counted apart: they may or may not arrive.
type checker struct {
	mu    sync.Mutex
	acked map[string][]string            // stream → acknowledged event ids, in no particular order across senders
	order map[string]ackPos              // event id → its sender and place
	seqs  map[[2]string]int              // stream, sender → next place
	got   map[string]map[string][]string // subscriber → stream → event ids in order received
	where map[string][]string            // subscriber/event id → the cursors it came with (when told)
}

type ackPos struct {
	stream string
	sender string
	seq    int
}

func newChecker() *checker {
	return &checker{acked: map[string][]string{}, order: map[string]ackPos{}, seqs: map[[2]string]int{}, got: map[string]map[string][]string{}, where: map[string][]string{}}
}

// ack records events the API acknowledged to sender, in their order.
func (c *checker) ack(stream, sender string, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.seqs[[2]string{stream, sender}]
	c.seqs[[2]string{stream, sender}] = next + len(ids)
	for i, id := range ids {
		c.order[id] = ackPos{stream: stream, sender: sender, seq: next + i}
	}
	c.acked[stream] = append(c.acked[stream], ids...)
}

// receivedAt is received with the result's cursor, which the report then
// shows for duplicates: the same cursor twice is a delivery bug, two cursors
// are two results records made from one event.
func (c *checker) receivedAt(subscriber, stream, eventID, cursor string) {
	c.mu.Lock()
	k := subscriber + "/" + eventID
	c.where[k] = append(c.where[k], cursor)
	c.mu.Unlock()
	c.received(subscriber, stream, eventID)
}

// received records a result that subscriber got.
func (c *checker) received(subscriber, stream, eventID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.got[subscriber]
	if m == nil {
		m = map[string][]string{}
		c.got[subscriber] = m
	}
	m[stream] = append(m[stream], eventID)
}

// missing is how many acknowledged events of stream subscriber has not
// received yet.
func (c *checker) missing(subscriber, stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool)
	for _, id := range c.got[subscriber][stream] {
		seen[id] = true
	}
	n := 0
	for _, id := range c.acked[stream] {
		if !seen[id] {
			n++
		}
	}
	return n
}

// verdict is what the checker found for one subscriber of one stream.
type verdict struct {
	Acked, Received                 int
	Lost, Duplicated, Reordered     int
	Unacked                         int
	LostIDs, DupIDs, ReorderedPairs []string // a few examples
}

// add counts o's figures into v (not its examples).
func (v *verdict) add(o verdict) {
	v.Acked += o.Acked
	v.Received += o.Received
	v.Lost += o.Lost
	v.Duplicated += o.Duplicated
	v.Reordered += o.Reordered
	v.Unacked += o.Unacked
}

func (v verdict) ok() bool { return v.Lost == 0 && v.Duplicated == 0 && v.Reordered == 0 }

func (v verdict) String() string {
	s := fmt.Sprintf("acked %d, received %d: %d lost, %d duplicated, %d reordered, %d unacknowledged",
		v.Acked, v.Received, v.Lost, v.Duplicated, v.Reordered, v.Unacked)
	if len(v.LostIDs) > 0 {
		s += "; lost e.g. " + strings.Join(v.LostIDs, ",")
	}
	if len(v.DupIDs) > 0 {
		s += "; duplicated e.g. " + strings.Join(v.DupIDs, ",")
	}
	if len(v.ReorderedPairs) > 0 {
		s += "; reordered e.g. " + strings.Join(v.ReorderedPairs, ",")
	}
	return s
}

// check judges what subscriber received of stream.
func (c *checker) check(subscriber, stream string) verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	const examples = 5
	got := c.got[subscriber][stream]
	v := verdict{Acked: len(c.acked[stream]), Received: len(got)}
	count := make(map[string]int, len(got))
	last := make(map[string]ackPos) // sender → the latest of its events received
	for _, id := range got {
		count[id]++
		if count[id] == 2 {
			v.Duplicated++
			if len(v.DupIDs) < examples {
				ex := id
				if w := c.where[subscriber+"/"+id]; len(w) > 0 {
					ex += " at " + strings.Join(w, " and ")
				}
				v.DupIDs = append(v.DupIDs, ex)
			}
		}
		if count[id] > 1 {
			continue
		}
		p, ok := c.order[id]
		if !ok || p.stream != stream {
			v.Unacked++
			continue
		}
		if prev, ok := last[p.sender]; ok && p.seq < prev.seq {
			v.Reordered++
			if len(v.ReorderedPairs) < examples {
				v.ReorderedPairs = append(v.ReorderedPairs, fmt.Sprintf("%s#%d after #%d", p.sender, p.seq, prev.seq))
			}
			continue
		}
		last[p.sender] = p
	}
	for _, id := range c.acked[stream] {
		if count[id] == 0 {
			v.Lost++
			if len(v.LostIDs) < examples {
				v.LostIDs = append(v.LostIDs, id)
			}
		}
	}
	return v
}

// report checks every subscriber of every stream, logs the verdicts and
// fails the test on any loss, duplicate or reordering.
func (c *checker) report(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	var keys [][2]string
	for sub, m := range c.got {
		for stream := range m {
			keys = append(keys, [2]string{sub, stream})
		}
	}
	c.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	var total verdict
	for _, k := range keys {
		v := c.check(k[0], k[1])
		total.add(v)
		if !v.ok() {
			t.Errorf("subscriber %s of %s: %s", k[0], k[1], v)
		}
	}
	t.Logf("checker: %d subscriptions: %s", len(keys), total)
}

func TestCheckerFindsWhatWentWrong(t *testing.T) {
	c := newChecker()
	c.ack("s", "p", []string{"a", "b", "c", "d"})
	c.ack("s", "q", []string{"x"})
	for _, id := range []string{"a", "c", "b", "c", "x", "zz"} {
		c.received("sub", "s", id)
	}
	v := c.check("sub", "s")
	want := verdict{Acked: 5, Received: 6, Lost: 1, Duplicated: 1, Reordered: 1, Unacked: 1}
	if v.Acked != want.Acked || v.Received != want.Received || v.Lost != want.Lost || v.Duplicated != want.Duplicated ||
		v.Reordered != want.Reordered || v.Unacked != want.Unacked {
		t.Fatalf("got %s; want %s", v, want)
	}
	if v.LostIDs[0] != "d" || v.DupIDs[0] != "c" {
		t.Fatalf("examples: %s", v)
	}
	c.received("ok", "s", "a")
	for _, id := range []string{"x", "b", "c", "d"} {
		c.received("ok", "s", id)
	}
	if v := c.check("ok", "s"); !v.ok() {
		t.Fatalf("a faithful subscriber judged %s", v)
	}
}
