package main

import (
	"context"
	"fmt"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/fanout"
	"github.com/rtstream/rtstream/handlers"
)

// subscribeKnown is the handlers' Subscribe: a feed from the hub, given up
// when the stream is gone from known once the feed is attached. The handler
// found the stream before it subscribed; a delete applied in between called
// hub.End before the feed existed, and the feed would then stay open with
// nothing but heartbeats until the client gave up. The registry forgets a
// stream before it calls End, so a check after the attach closes that gap.
func subscribeKnown(hub *fanout.Hub, known func(id string) bool) func(context.Context, string, rtstream.From) (handlers.Feed, error) {
	return func(ctx context.Context, id string, from rtstream.From) (handlers.Feed, error) {
		s, err := hub.Resume(ctx, id, from)
		if err != nil {
			return nil, err
		}
		if !known(id) {
			hub.End(id) // again: it drops the entry the attach made
			s.Close()
			return nil, fmt.Errorf("stream %q: %w", id, rtstream.ErrNotFound)
		}
		return s, nil
	}
}
