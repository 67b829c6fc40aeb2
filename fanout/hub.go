// Package fanout hands the results this instance reads from Kafka to the
// subscribers of each stream. Every subscriber has a bounded buffer; one that
// falls behind is disconnected (it resumes with its cursor) so that it never
// slows the hub, the other subscribers or the pipeline.
package fanout

import (
	"errors"
	"fmt"
	"sync"

	"github.com/rtstream/rtstream"
)

// Reasons a subscription ends, from Subscription.Err.
var (
	// ErrSlow is returned when the subscriber's buffer was full.
	ErrSlow = fmt.Errorf("fanout: %w", rtstream.ErrTooSlow)
	// ErrEnded is returned when the stream was deleted.
	ErrEnded = fmt.Errorf("fanout: stream deleted: %w", rtstream.ErrNotFound)
	// ErrClosed is returned when the hub shut down.
	ErrClosed = errors.New("fanout: hub closed")
)

// DefaultBuffer is how many result records a subscriber may have pending.
const DefaultBuffer = 256

// Hub is the per-instance fan-out of results to subscribers.
type Hub struct {
	buffer int
	onSlow func()

	mu      sync.Mutex
	closed  bool
	streams map[string]*stream
}

type stream struct {
	subs map[*Subscription]struct{}
	// last is the newest source record whose results were delivered: a
	// results record for an older source is a redelivery and is dropped.
	last    rtstream.Position
	hasLast bool
}

// New makes a hub whose subscribers buffer up to buffer records (default
// DefaultBuffer). onSlow, if not nil, is called for every subscriber ended
// with ErrSlow.
func New(buffer int, onSlow func()) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	if onSlow == nil {
		onSlow = func() {}
	}
	return &Hub{buffer: buffer, onSlow: onSlow, streams: make(map[string]*stream)}
}

// Subscription is one subscriber's feed of a stream's results.
type Subscription struct {
	hub      *Hub
	streamID string
	c        chan []rtstream.Delivery
	done     chan struct{}
	once     sync.Once
	err      error
}

// C delivers the results of one record at a time, in order. The slices are
// shared between subscribers: read them, never change them.
func (s *Subscription) C() <-chan []rtstream.Delivery { return s.c }

// CaughtUp is closed: a live subscription has no replay to wait for.
func (s *Subscription) CaughtUp() <-chan struct{} { return closedChan }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done is closed when the subscription ended; Err says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is nil until Done is closed, then the reason: ErrSlow, ErrEnded,
// ErrClosed, or nil when the subscriber closed it.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	s.hub.remove(s)
	s.hub.mu.Unlock()
	s.end(nil)
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Subscribe starts a feed of streamID's results from now on.
func (h *Hub) Subscribe(streamID string) *Subscription {
	s := &Subscription{hub: h, streamID: streamID, c: make(chan []rtstream.Delivery, h.buffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.end(ErrClosed)
		return s
	}
	st := h.stream(streamID)
	st.subs[s] = struct{}{}
	return s
}

func (h *Hub) stream(id string) *stream {
	st, ok := h.streams[id]
	if !ok {
		st = &stream{subs: make(map[*Subscription]struct{})}
		h.streams[id] = st
	}
	return st
}

// remove drops s; h.mu must be held.
func (h *Hub) remove(s *Subscription) {
	if st, ok := h.streams[s.streamID]; ok {
		delete(st.subs, s)
	}
}

// Watched reports whether streamID has a subscriber here.
func (h *Hub) Watched(streamID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.streams[streamID]
	return ok && len(st.subs) > 0
}

// Deliver hands one results record, read at pos, to its stream's subscribers.
// It never blocks: a subscriber whose buffer is full is ended with ErrSlow.
func (h *Hub) Deliver(pos rtstream.Position, b rtstream.ResultBatch) {
	if len(b.Results) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stream(b.StreamID)
	if st.hasLast && st.last.Partition == b.Source.Partition && b.Source.Offset <= st.last.Offset {
		return // the router processed this source record before
	}
	st.last, st.hasLast = b.Source, true
	if len(st.subs) == 0 {
		return
	}
	ds := make([]rtstream.Delivery, len(b.Results))
	for i, r := range b.Results {
		ds[i] = rtstream.Delivery{Cursor: rtstream.Cursor{Partition: pos.Partition, Offset: pos.Offset, Index: i}, Result: r}
	}
	for s := range st.subs {
		select {
		case s.c <- ds:
		default:
			delete(st.subs, s)
			s.end(ErrSlow)
			h.onSlow()
		}
	}
}

// End closes every subscription of a deleted stream with ErrEnded.
func (h *Hub) End(streamID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.streams[streamID]; ok {
		for s := range st.subs {
			s.end(ErrEnded)
		}
		delete(h.streams, streamID)
	}
}

// Close ends every subscription with ErrClosed and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, st := range h.streams {
		for s := range st.subs {
			s.end(ErrClosed)
		}
		delete(h.streams, id)
	}
}
