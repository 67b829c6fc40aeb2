package fanout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/fanout"
	"github.com/rtstream/rtstream/record"
)

func batch(stream string, src int64, n int) record.ResultBatch {
	b := record.ResultBatch{StreamID: stream, Source: record.Position{Partition: 1, Offset: src}}
	for i := 0; i < n; i++ {
		b.Results = append(b.Results, rtstream.Result{StreamID: stream, EventID: string(rune('a' + i))})
	}
	return b
}

func TestDeliverToStreamSubscribersOnly(t *testing.T) {
	h := fanout.New(fanout.Config{Buffer: 4})
	a, b := h.Subscribe("a"), h.Subscribe("b")
	h.Deliver(record.Position{Partition: 2, Offset: 7}, batch("a", 1, 3))
	select {
	case ds := <-a.C():
		if len(ds) != 3 || ds[2].Cursor != (rtstream.Cursor{Partition: 2, Offset: 7, Index: 2}) {
			t.Fatalf("got %+v", ds)
		}
	default:
		t.Fatal("subscriber of a got nothing")
	}
	select {
	case ds := <-b.C():
		t.Fatalf("subscriber of b got %+v", ds)
	default:
	}
}

func TestRedeliveredSourceIsDropped(t *testing.T) {
	h := fanout.New(fanout.Config{Buffer: 8})
	s := h.Subscribe("a")
	h.Deliver(record.Position{Offset: 1}, batch("a", 10, 1))
	h.Deliver(record.Position{Offset: 2}, batch("a", 10, 1)) // the router processed source 10 twice
	h.Deliver(record.Position{Offset: 3}, batch("a", 9, 1))  // older still
	h.Deliver(record.Position{Offset: 4}, batch("a", 11, 1))
	var got []int64
	for len(s.C()) > 0 {
		ds := <-s.C()
		got = append(got, ds[0].Cursor.Offset)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 4 {
		t.Fatalf("delivered result records %v; want [1 4]", got)
	}
}

func TestSlowSubscriberIsDisconnectedWithoutBlocking(t *testing.T) {
	slowCount := 0
	h := fanout.New(fanout.Config{Buffer: 2, OnSlow: func() { slowCount++ }})
	slow, fast := h.Subscribe("a"), h.Subscribe("a")
	for i := int64(0); i < 5; i++ {
		h.Deliver(record.Position{Offset: i}, batch("a", i, 1))
		<-fast.C() // the fast one keeps up
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber still connected")
	}
	if !errors.Is(slow.Err(), fanout.ErrSlow) {
		t.Fatalf("slow.Err() = %v; want ErrSlow", slow.Err())
	}
	if fast.Err() != nil {
		t.Fatalf("fast subscriber ended: %v", fast.Err())
	}
	if slowCount != 1 {
		t.Fatalf("onSlow called %d times; want 1", slowCount)
	}
}

func TestEndAndClose(t *testing.T) {
	h := fanout.New(fanout.Config{Buffer: 1})
	a, b := h.Subscribe("a"), h.Subscribe("b")
	h.End("a")
	<-a.Done()
	if !errors.Is(a.Err(), rtstream.ErrNotFound) {
		t.Fatalf("a.Err() = %v; want one wrapping ErrNotFound", a.Err())
	}
	h.Close()
	<-b.Done()
	if !errors.Is(b.Err(), fanout.ErrClosed) {
		t.Fatalf("b.Err() = %v; want ErrClosed", b.Err())
	}
	if c := h.Subscribe("c"); !errors.Is(c.Err(), fanout.ErrClosed) {
		t.Fatalf("subscribe after close: %v", c.Err())
	}
	a.Close() // closing twice is harmless
}

func TestWatched(t *testing.T) {
	h := fanout.New(fanout.Config{Buffer: 1, IdleStreams: 1})
	if h.Watched("a") {
		t.Fatal("watched before any subscriber")
	}
	s := h.Subscribe("a")
	if !h.Watched("a") || h.Watched("b") {
		t.Fatal("Watched disagrees with the subscriptions")
	}
	s.Close()
	// A stream keeps its history (and stays followed) after its last
	// subscriber left, so that a reconnect resumes from memory ...
	if !h.Watched("a") {
		t.Fatal("not watched right after the last subscriber left")
	}
	// ... until more idle streams than allowed push it out.
	h.Subscribe("b").Close()
	if h.Watched("a") || !h.Watched("b") {
		t.Fatal("the least recently used idle stream was not dropped")
	}
	h.End("b")
	if h.Watched("b") {
		t.Fatal("watched after its stream was deleted")
	}
}

// TestExistsClosesTheDeleteRace: a subscription to a stream deleted between
// the caller's lookup and the attach (so that End came before it) is refused
// as not found, for a live feed and a resume alike; one to a stream that
// still exists is fed until End.
func TestExistsClosesTheDeleteRace(t *testing.T) {
	known := map[string]bool{"kept": true}
	h := fanout.New(fanout.Config{Exists: func(id string) bool { return known[id] }})
	defer h.Close()

	h.End("deleted") // the delete, applied before the attach
	for _, from := range []rtstream.From{{}, {Earliest: true}} {
		if _, err := h.Resume(context.Background(), "deleted", from); !errors.Is(err, rtstream.ErrNotFound) {
			t.Fatalf("subscribing to a deleted stream from %+v: %v, want one wrapping rtstream.ErrNotFound", from, err)
		}
		if h.Watched("deleted") {
			t.Errorf("the refused subscription (from %+v) is still attached to the hub", from)
		}
	}

	feed, err := h.Resume(context.Background(), "kept", rtstream.From{})
	if err != nil {
		t.Fatalf("subscribing to a known stream: %v", err)
	}
	defer feed.Close()
	h.End("kept")
	select {
	case <-feed.Done():
		if !errors.Is(feed.Err(), fanout.ErrEnded) {
			t.Errorf("feed ended with %v, want fanout.ErrEnded", feed.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a delete did not end the feed of a known stream")
	}
}

// TestBurstQueueKeepsOrderAndBound: records beyond the channel's few slots
// wait in the subscription's queue, in order, and reach the subscriber as
// it reads C; more than Buffer pending is too slow.
func TestBurstQueueKeepsOrderAndBound(t *testing.T) {
	h := fanout.New(fanout.Config{Buffer: 16})
	s := h.Subscribe("a")
	for i := int64(1); i <= 10; i++ {
		h.Deliver(record.Position{Offset: i}, batch("a", i, 1))
	}
	for want := int64(1); want <= 10; want++ {
		select {
		case ds := <-s.C():
			if ds[0].Cursor.Offset != want {
				t.Fatalf("got offset %d; want %d", ds[0].Cursor.Offset, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("record %d never came", want)
		}
	}
	for i := int64(11); i <= 27; i++ {
		h.Deliver(record.Position{Offset: i}, batch("a", i, 1))
	}
	select {
	case <-s.Done():
		if !errors.Is(s.Err(), fanout.ErrSlow) {
			t.Fatalf("ended with %v; want ErrSlow", s.Err())
		}
	default:
		t.Fatal("17 records pending over a Buffer of 16 did not end the subscription")
	}
}
