package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/fanout"
)

// TestSubscribeKnown: a subscription to a stream deleted between the
// handler's lookup and the attach (so that hub.End came before it) is
// refused as not found; one to a stream still known is fed.
func TestSubscribeKnown(t *testing.T) {
	hub := fanout.New(fanout.Config{})
	defer hub.Close()
	known := map[string]bool{"kept": true}
	subscribe := subscribeKnown(hub, func(id string) bool { return known[id] })

	hub.End("deleted") // the delete, applied before the attach
	if _, err := subscribe(context.Background(), "deleted", rtstream.From{}); !errors.Is(err, rtstream.ErrNotFound) {
		t.Fatalf("subscribing to a deleted stream: %v, want one wrapping rtstream.ErrNotFound", err)
	}
	if hub.Watched("deleted") {
		t.Errorf("the refused subscription is still attached to the hub")
	}

	feed, err := subscribe(context.Background(), "kept", rtstream.From{})
	if err != nil {
		t.Fatalf("subscribing to a known stream: %v", err)
	}
	defer feed.Close()
	hub.End("kept")
	select {
	case <-feed.Done():
		if !errors.Is(feed.Err(), fanout.ErrEnded) {
			t.Errorf("feed ended with %v, want fanout.ErrEnded", feed.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a delete did not end the feed of a known stream")
	}
}
