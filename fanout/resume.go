package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// Feed is Resume as the API's rtstream.Feed.
func (h *Hub) Feed(ctx context.Context, streamID string, from rtstream.From) (rtstream.Feed, error) {
	s, err := h.Resume(ctx, streamID, from)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Resume starts a feed of streamID's results from a point: the results after
// from.After, or every result with from.Earliest, then the live ones, with
// no gap and no duplicate in between. The zero From is Subscribe. A cursor
// that cannot belong to the stream is an error wrapping rtstream.ErrInvalid;
// Kafka not answering is one wrapping rtstream.ErrUnavailable.
func (h *Hub) Resume(ctx context.Context, streamID string, from rtstream.From) (*Subscription, error) {
	if !from.Earliest && from.After == nil {
		s := h.Subscribe(streamID)
		if errors.Is(s.Err(), ErrEnded) {
			return nil, fmt.Errorf("stream %q: %w", streamID, rtstream.ErrNotFound)
		}
		return s, nil
	}
	s := h.newSubscription(streamID)
	cu := catchUp{s: s, lastOff: -1}
	if c := from.After; c != nil {
		cu.cursor, cu.lastOff = c, c.Offset-1
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.end(ErrClosed)
		return s, nil
	}
	src := h.cfg.Source
	st := h.stream(streamID)
	h.attach(st, s)
	if !h.cfg.Exists(streamID) {
		h.end(streamID)
		h.mu.Unlock()
		return nil, fmt.Errorf("stream %q: %w", streamID, rtstream.ErrNotFound)
	}
	if c := from.After; c != nil {
		for i := range st.hist {
			if r := &st.hist[i]; r.pos.Partition == c.Partition && r.pos.Offset == c.Offset {
				cu.backlog = append([]held(nil), st.hist[i:]...)
				break
			}
		}
	}
	h.mu.Unlock()
	cu.src = src
	if cu.backlog != nil {
		cu.part = from.After.Partition // for a Kafka read should the parked records overflow
	} else if err := h.planKafkaRead(ctx, &cu, from.After); err != nil {
		s.Close()
		return nil, err
	}
	if cu.kafka {
		h.cfg.OnResume("kafka")
	} else {
		h.cfg.OnResume("history")
	}
	go cu.run()
	return s, nil
}

// planKafkaRead sets cu to read Kafka, from the cursor's own record (its
// source tells later redeliveries apart) or from the partition's start: the
// history does not hold the cursor. A cursor of another partition, or past
// the partition's end, is refused.
func (h *Hub) planKafkaRead(ctx context.Context, cu *catchUp, c *rtstream.Cursor) error {
	id := cu.s.streamID
	if cu.src == nil {
		return fmt.Errorf("fanout: resuming %s needs Kafka, and no source is set: %w", id, rtstream.ErrUnavailable)
	}
	part, err := cu.src.Partition(id)
	if err != nil {
		return err
	}
	cu.part, cu.kafka = part, true
	if c == nil {
		return nil
	}
	if c.Partition != part {
		return fmt.Errorf("cursor %s is not a cursor of stream %s: %w", c, id, rtstream.ErrInvalid)
	}
	cu.next = c.Offset
	h.mu.Lock()
	live := h.next[part]
	h.mu.Unlock()
	if c.Offset < live {
		return nil
	}
	hwm, err := cu.src.HighWaterMark(ctx, part)
	if err != nil {
		return fmt.Errorf("fanout: %w: %w", rtstream.ErrUnavailable, err)
	}
	if c.Offset >= hwm {
		return fmt.Errorf("cursor %s is past the end of stream %s: %w", c, id, rtstream.ErrInvalid)
	}
	return nil
}

// catchUp is the replay of one resuming subscription, run on its own
// goroutine until the subscription is live or ends.
type catchUp struct {
	s       *Subscription
	cursor  *rtstream.Cursor // nil: from the earliest result
	backlog []held           // from the history, starting with the cursor's record
	src     Source
	part    int32
	kafka   bool  // read Kafka from next before merging what the hub parked
	next    int64 // next offset to read from Kafka
	lastOff int64 // offset of the newest record handed over (or skipped)
	lastSrc record.Position
	hasSrc  bool
}

func (cu *catchUp) run() {
	s := cu.s
	for _, rec := range cu.backlog {
		if !cu.hand(rec) {
			return
		}
	}
	cu.backlog = nil
	for {
		if cu.kafka {
			if err := cu.readKafka(); err != nil {
				if s.ctx.Err() == nil {
					s.fail(err)
				}
				return
			}
		}
		s.hub.mu.Lock()
		if s.overflow {
			// The live records parked meanwhile were too many: forget them
			// and read them from Kafka instead.
			s.overflow = false
			cu.kafka = true
			s.hub.mu.Unlock()
			continue
		}
		pend := s.pend
		s.pend = nil
		if len(pend) == 0 && cu.behindCursor() {
			// The cursor came from an instance whose follower is ahead of
			// ours: the live feed must not start before the cursor's own
			// record went past, or it would hand that record over whole.
			s.hub.mu.Unlock()
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if len(pend) == 0 {
			// From now on the hub's own dedupe guards s: teach it the
			// newest source the replay saw, or a redelivery of it that
			// the hub never saw the original of would pass as new.
			if st, ok := s.hub.streams[s.streamID]; ok && cu.hasSrc &&
				(!st.hasLast || st.last.Partition == cu.lastSrc.Partition && st.last.Offset < cu.lastSrc.Offset) {
				st.last, st.hasLast = cu.lastSrc, true
			}
			s.live = true
			close(s.caughtUp)
			s.hub.mu.Unlock()
			return
		}
		s.hub.mu.Unlock()
		for _, rec := range pend {
			if !cu.hand(rec) {
				return
			}
		}
	}
}

// behindCursor reports whether this instance's live feed has yet to pass
// the cursor's record; s.hub.mu must be held.
func (cu *catchUp) behindCursor() bool {
	c := cu.cursor
	if c == nil || cu.lastOff >= c.Offset || cu.src == nil {
		return false
	}
	return cu.s.hub.next[c.Partition] <= c.Offset
}

// readKafka reads from cu.next up to where the live feed takes over; the
// target is taken under the hub's lock, at the moment from which the hub
// parks every live record for s.
func (cu *catchUp) readKafka() error {
	s := cu.s
	if cu.src == nil {
		return fmt.Errorf("fanout: replay of %s needs Kafka, and no source is set: %w", s.streamID, rtstream.ErrUnavailable)
	}
	s.hub.mu.Lock()
	s.pend = nil
	to := s.hub.next[cu.part]
	s.hub.mu.Unlock()
	if cu.next < cu.lastOff+1 {
		cu.next = cu.lastOff + 1
	}
	if cu.cursor != nil && cu.lastOff < cu.cursor.Offset {
		cu.next = cu.cursor.Offset // the cursor's own record names its source
	}
	if cu.next >= to {
		cu.kafka = false
		return nil
	}
	err := cu.src.Read(s.ctx, s.streamID, cu.part, cu.next, to, func(pos record.Position, b record.ResultBatch) error {
		rec := held{pos: pos, src: b.Source, ds: make([]rtstream.Delivery, len(b.Results))}
		for i, r := range b.Results {
			rec.ds[i] = rtstream.Delivery{Cursor: rtstream.Cursor{Partition: pos.Partition, Offset: pos.Offset, Index: i}, Result: r}
		}
		if !cu.hand(rec) {
			return s.ctx.Err()
		}
		return nil
	})
	if err != nil {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		return fmt.Errorf("fanout: replaying %s: %w: %w", s.streamID, rtstream.ErrUnavailable, err)
	}
	cu.next, cu.kafka = to, false
	return nil
}

// hand gives rec to the subscriber unless it was handed over before (the
// same offset, or a redelivery of an older source), dropping the results up
// to the cursor in the cursor's own record. It blocks while the subscriber's
// buffer is full, and reports false when the subscription ended.
func (cu *catchUp) hand(rec held) bool {
	if rec.pos.Offset <= cu.lastOff {
		return true
	}
	if cu.cursor != nil && rec.pos.Offset < cu.cursor.Offset {
		return true
	}
	cu.lastOff = rec.pos.Offset
	if cu.hasSrc && rec.src.Partition == cu.lastSrc.Partition && rec.src.Offset <= cu.lastSrc.Offset {
		return true
	}
	cu.lastSrc, cu.hasSrc = rec.src, true
	ds := rec.ds
	if c := cu.cursor; c != nil && rec.pos.Offset == c.Offset {
		if c.Index+1 >= len(ds) {
			return true
		}
		ds = ds[c.Index+1:]
	}
	if len(ds) == 0 {
		return true
	}
	select {
	case cu.s.c <- ds:
		return true
	case <-cu.s.ctx.Done():
		return false
	}
}
