package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
)

// replayFeed is a feed that is replaying until caughtUp is closed.
type replayFeed struct {
	rtstream.Feed
	caughtUp chan struct{}
}

func (f replayFeed) CaughtUp() <-chan struct{} { return f.caughtUp }

// TestReplaySlots: at most ReplayWriters connections write replayed results
// at once; a live feed never waits; a waiting writer gives up with its
// context.
func TestReplaySlots(t *testing.T) {
	s := &server{}
	s.replaying = make(chan struct{}, 1)
	replaying := replayFeed{caughtUp: make(chan struct{})}
	live := replayFeed{caughtUp: make(chan struct{})}
	close(live.caughtUp)

	release, ok := s.replaySlot(context.Background(), replaying)
	if !ok {
		t.Fatal("the first replaying writer got no slot")
	}
	if _, ok := s.replaySlot(context.Background(), live); !ok {
		t.Fatal("a live feed waited for a replay slot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, ok := s.replaySlot(ctx, replaying); ok {
		t.Fatal("a second replaying writer got a slot while the only one was taken")
	}
	got := make(chan bool)
	go func() {
		r, ok := s.replaySlot(context.Background(), replaying)
		if ok {
			r()
		}
		got <- ok
	}()
	release()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiting writer did not get the released slot")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the released slot never reached the waiting writer")
	}
}
