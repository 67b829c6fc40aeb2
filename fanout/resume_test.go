package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/fanout"
	"github.com/rtstream/rtstream/record"
)

// topic is an in-memory results partition standing in for Kafka in these
// unit tests of the hub's seam logic (the Kafka reader has its own
// integration tests against a real broker). append plays the follower: the
// record is in the topic first, then handed to the hub if it watches the
// stream.
type topic struct {
	// gate, when set, holds the first Read (after it took its range) until
	// closed; started is closed when that Read began.
	gate, started chan struct{}

	mu     sync.Mutex
	recs   []record.ResultBatch
	next   int64 // the follower's position
	reads  int
	hub    *fanout.Hub
	follow func(record.Position, string, []byte, record.Trace)
}

func (tp *topic) Partition(string) (int32, error) { return 0, nil }

func (tp *topic) Follow(fn func(record.Position, string, []byte, record.Trace)) (map[int32]int64, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.follow = fn
	return map[int32]int64{0: tp.next}, nil
}

// newHub makes a hub on tp and starts it.
func newHub(t *testing.T, tp *topic, cfg fanout.Config) *fanout.Hub {
	t.Helper()
	cfg.Source = tp
	h := fanout.New(cfg)
	tp.hub = h
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (tp *topic) HighWaterMark(context.Context, int32) (int64, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return int64(len(tp.recs)), nil
}

func (tp *topic) Read(ctx context.Context, stream string, _ int32, from, to int64, fn func(record.Position, record.ResultBatch) error) error {
	tp.mu.Lock()
	tp.reads++
	recs := tp.recs[from:to]
	first := tp.reads == 1
	tp.mu.Unlock()
	if first && tp.gate != nil {
		close(tp.started)
		<-tp.gate
	}
	for i, b := range recs {
		if b.StreamID != stream {
			continue
		}
		if err := fn(record.Position{Offset: from + int64(i)}, b); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// append writes a record and lets the follower hand it to the hub.
func (tp *topic) append(b record.ResultBatch) {
	tp.mu.Lock()
	off := int64(len(tp.recs))
	tp.recs = append(tp.recs, b)
	tp.next = off + 1
	follow := tp.follow
	tp.mu.Unlock()
	follow(record.Position{Offset: off}, b.StreamID, b.AppendJSON(nil), record.Trace{})
}

// collect reads n results from s, failing after a while.
func collect(t *testing.T, s *fanout.Subscription, n int) []rtstream.Delivery {
	t.Helper()
	var got []rtstream.Delivery
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case ds := <-s.C():
			got = append(got, ds...)
		case <-s.Done():
			t.Fatalf("subscription ended after %d of %d results: %v", len(got), n, s.Err())
		case <-timeout:
			t.Fatalf("got %d of %d results", len(got), n)
		}
	}
	return got
}

func eventIDs(ds []rtstream.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Result.EventID
	}
	return out
}

// numbered is a results record of stream a with results e<src>.0 ... .
func numbered(src int64, n int) record.ResultBatch {
	b := record.ResultBatch{StreamID: "a", Source: record.Position{Offset: src}}
	for i := 0; i < n; i++ {
		b.Results = append(b.Results, rtstream.Result{StreamID: "a", EventID: fmt.Sprintf("e%d.%d", src, i)})
	}
	return b
}

func TestResumeAfterCursor(t *testing.T) {
	for _, tc := range []struct {
		name string
		// watchEarly: a subscriber watched the stream from the start, so the
		// history holds the cursor; otherwise the resume reads the topic.
		watchEarly bool
		history    int
	}{
		{name: "from history", watchEarly: true, history: 100},
		{name: "from the topic", watchEarly: false, history: 100},
		{name: "history too short", watchEarly: true, history: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := &topic{}
			h := newHub(t, tp, fanout.Config{HistoryRecords: tc.history})
			if tc.watchEarly {
				defer h.Subscribe("a").Close()
			}
			tp.append(numbered(0, 2))
			tp.append(record.ResultBatch{StreamID: "b", Source: record.Position{Offset: 1}, Results: []rtstream.Result{{EventID: "other"}}})
			tp.append(numbered(2, 3))
			tp.append(numbered(2, 3)) // a redelivery of source 2: dropped
			tp.append(numbered(3, 1))

			// After the second result of the record at offset 2.
			s, err := h.Resume(t.Context(), "a", rtstream.From{After: &rtstream.Cursor{Offset: 2, Index: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := eventIDs(collect(t, s, 2))
			select {
			case <-s.CaughtUp():
			case <-time.After(5 * time.Second):
				t.Fatal("never caught up")
			}
			tp.append(numbered(4, 1)) // live
			got = append(got, eventIDs(collect(t, s, 1))...)
			want := []string{"e2.2", "e3.0", "e4.0"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			wantReads := 1
			if tc.watchEarly && tc.history > 1 {
				wantReads = 0
			}
			if tp.reads != wantReads {
				t.Fatalf("%d topic reads, want %d", tp.reads, wantReads)
			}
		})
	}
}

func TestResumeFromEarliestThenLiveWithoutGapUnderLoad(t *testing.T) {
	tp := &topic{gate: make(chan struct{}), started: make(chan struct{})}
	h := newHub(t, tp, fanout.Config{Buffer: 16})
	for i := int64(0); i < 50; i++ {
		tp.append(numbered(i, 1))
	}
	s, err := h.Resume(t.Context(), "a", rtstream.From{Earliest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Live records arrive while the replay reads: more than the buffer, so
	// the parked ones overflow and the catch-up must go back to the topic
	// for them.
	<-tp.started
	for i := int64(50); i < 300; i++ {
		tp.append(numbered(i, 1))
	}
	close(tp.gate)
	got := collect(t, s, 300)
	for i, d := range got {
		if want := fmt.Sprintf("e%d.0", i); d.Result.EventID != want {
			t.Fatalf("result %d is %s, want %s (gap, duplicate or reorder)", i, d.Result.EventID, want)
		}
	}
	if tp.reads < 2 {
		t.Fatalf("%d topic reads: the parked records never overflowed, the test tested nothing", tp.reads)
	}
}

func TestResumeRefusesForeignAndFutureCursors(t *testing.T) {
	tp := &topic{}
	h := newHub(t, tp, fanout.Config{})
	tp.append(numbered(0, 1))
	for _, c := range []rtstream.Cursor{{Partition: 3, Offset: 0}, {Offset: 99}} {
		if _, err := h.Resume(t.Context(), "a", rtstream.From{After: &c}); !errors.Is(err, rtstream.ErrInvalid) {
			t.Errorf("cursor %s: err = %v, want ErrInvalid", c, err)
		}
	}
}

func TestDeleteEndsResumingSubscriber(t *testing.T) {
	tp := &topic{}
	h := newHub(t, tp, fanout.Config{})
	tp.append(numbered(0, 1))
	s, err := h.Resume(t.Context(), "a", rtstream.From{Earliest: true})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, s, 1)
	h.End("a")
	select {
	case <-s.Done():
		if !errors.Is(s.Err(), rtstream.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", s.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not ended")
	}
}

func TestResumeWithCursorAheadOfThisInstance(t *testing.T) {
	// Another instance handed out a cursor into a record this instance's
	// follower has not read yet: the resume must wait for that record and
	// skip its results up to the cursor, not pass it on whole.
	tp := &topic{}
	h := newHub(t, tp, fanout.Config{})
	tp.append(numbered(0, 1))
	tp.mu.Lock()
	tp.recs = append(tp.recs, numbered(1, 3)) // written, not yet followed
	tp.mu.Unlock()

	s, err := h.Resume(t.Context(), "a", rtstream.From{After: &rtstream.Cursor{Offset: 1, Index: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(50 * time.Millisecond) // let the catch-up find nothing to read
	tp.mu.Lock()
	tp.next = 2
	tp.mu.Unlock()
	h.Deliver(record.Position{Offset: 1}, numbered(1, 3))
	tp.append(numbered(2, 1))
	got := eventIDs(collect(t, s, 2))
	if want := []string{"e1.2", "e2.0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
