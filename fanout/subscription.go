package fanout

import (
	"context"
	"sync"

	"github.com/rtstream/rtstream"
)

// Subscribe starts a live feed of streamID's results from now on.
func (h *Hub) Subscribe(streamID string) *Subscription {
	s := h.newSubscription(streamID)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.end(ErrClosed)
		return s
	}
	s.live = true
	close(s.caughtUp)
	h.attach(h.stream(streamID), s)
	h.endIfGone(streamID)
	return s
}

// endIfGone ends streamID's subscriptions when the stream no longer exists
// (see Config.Exists); h.mu must be held.
func (h *Hub) endIfGone(streamID string) {
	if !h.cfg.Exists(streamID) {
		h.end(streamID)
	}
}

func (h *Hub) newSubscription(streamID string) *Subscription {
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscription{
		hub: h, streamID: streamID, ctx: ctx, cancel: cancel,
		c: make(chan []rtstream.Delivery, h.cfg.Buffer), caughtUp: make(chan struct{}), done: make(chan struct{}),
	}
}

// Subscription is one subscriber's feed of a stream's results.
type Subscription struct {
	hub      *Hub
	streamID string
	ctx      context.Context // canceled when the subscription ends
	cancel   context.CancelFunc
	c        chan []rtstream.Delivery
	caughtUp chan struct{}
	done     chan struct{}
	once     sync.Once
	err      error

	// Guarded by hub.mu. Until live, the hub parks deliveries in pend for
	// the catch-up to merge; when pend overflows, the catch-up reads Kafka
	// again instead.
	live     bool
	pend     []held
	overflow bool
}

// C delivers the results of one record at a time, in order. The slices are
// shared between subscribers: read them, never change them.
func (s *Subscription) C() <-chan []rtstream.Delivery { return s.c }

// CaughtUp is closed once the replay was handed to C and C carries the live
// feed.
func (s *Subscription) CaughtUp() <-chan struct{} { return s.caughtUp }

// Done is closed when the subscription ended; Err says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is nil until Done is closed, then the reason: ErrSlow, ErrEnded,
// ErrClosed, a replay failure wrapping rtstream.ErrUnavailable, or nil when
// the subscriber closed it.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() { s.fail(nil) }

// fail ends the subscription with err.
func (s *Subscription) fail(err error) {
	s.hub.mu.Lock()
	s.hub.detach(s)
	s.hub.mu.Unlock()
	s.end(err)
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		s.cancel()
		close(s.done)
	})
}

// offer hands rec to s without blocking; s.hub.mu must be held.
func (s *Subscription) offer(rec held) {
	switch {
	case s.live:
		select {
		case s.c <- rec.ds:
		default:
			s.hub.detach(s)
			s.end(ErrSlow)
			s.hub.cfg.OnSlow()
		}
	case s.overflow:
	case len(s.pend) < cap(s.c):
		s.pend = append(s.pend, rec)
	default:
		s.overflow, s.pend = true, nil
	}
}
