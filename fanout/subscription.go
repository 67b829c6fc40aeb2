package fanout

import (
	"context"
	"sync"
	"sync/atomic"

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

// chanSlots is the room of a subscription's channel: what an idle
// subscriber holds. Records beyond it wait in the subscription's queue,
// which exists only while a burst lasts (issue 13, memory per connection).
const chanSlots = 4

func (h *Hub) newSubscription(streamID string) *Subscription {
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscription{
		hub: h, streamID: streamID, ctx: ctx, cancel: cancel,
		c: make(chan []rtstream.Delivery, min(chanSlots, h.cfg.Buffer)), caughtUp: make(chan struct{}), done: make(chan struct{}),
	}
}

// Subscription is one subscriber's feed of a stream's results.
type Subscription struct {
	hub      *Hub
	streamID string
	ctx      context.Context // canceled when the subscription ends
	cancel   context.CancelFunc
	c        chan []rtstream.Delivery
	// queue holds, oldest first, the live records that found c full; C
	// moves them into c as it empties. queued is its length, read without
	// the lock on every C.
	qmu      sync.Mutex
	queue    [][]rtstream.Delivery
	queued   atomic.Int32
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
// shared between subscribers: read them, never change them. Call C for
// every receive: it refills the channel from the queue of a burst.
func (s *Subscription) C() <-chan []rtstream.Delivery {
	if s.queued.Load() > 0 {
		s.refill()
	}
	return s.c
}

// refill moves queued records into c while it has room.
func (s *Subscription) refill() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	n := 0
	for n < len(s.queue) && len(s.c) < cap(s.c) {
		s.c <- s.queue[n] // only refill and offer send, under qmu: never blocks
		s.queue[n] = nil
		n++
	}
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil // the burst is over: give its memory back
	}
	s.queued.Store(int32(len(s.queue)))
}

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
		if !s.enqueue(rec.ds) {
			s.hub.detach(s)
			s.end(ErrSlow)
			s.hub.cfg.OnSlow()
		}
	case s.overflow:
	case len(s.pend) < s.hub.cfg.Buffer:
		s.pend = append(s.pend, rec)
	default:
		s.overflow, s.pend = true, nil
	}
}

// enqueue puts ds in c, or behind the records queued before it; false when
// Buffer records are pending already (the subscriber is too slow).
func (s *Subscription) enqueue(ds []rtstream.Delivery) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 && len(s.c) < cap(s.c) {
		s.c <- ds
		return true
	}
	if len(s.c)+len(s.queue) >= s.hub.cfg.Buffer {
		return false
	}
	s.queue = append(s.queue, ds)
	s.queued.Store(int32(len(s.queue)))
	return true
}
