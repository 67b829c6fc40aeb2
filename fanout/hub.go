// Package fanout hands the results this instance reads from Kafka to the
// subscribers of each stream, and resumes subscribers after a cursor with no
// gap and no duplicate: from a bounded in-memory history of recent results
// when it holds the cursor, otherwise from Kafka (through a Source), and then
// from the live feed.
//
// Every subscriber has a bounded buffer; one that falls behind is
// disconnected (it resumes with its cursor) so that it never slows the hub,
// the other subscribers or the pipeline.
package fanout

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
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

// Defaults of Config.
const (
	DefaultBuffer         = 256      // result records pending per subscriber
	DefaultHistoryBytes   = 64 << 20 // all streams' history together
	DefaultHistoryRecords = 1024     // result records kept per stream
	DefaultIdleStreams    = 10000    // streams kept (with history) without a subscriber
)

// Source is where a resume reads what the history does not hold: the results
// topic in Kafka, behind the live feed that calls Deliver.
type Source interface {
	// Partition is the results partition that holds streamID's records.
	Partition(streamID string) (int32, error)
	// Next is the offset of the next record of partition the live feed will
	// hand to Deliver: every record before it was handed over (or skipped
	// as unwatched) already. It is read under the hub's lock, so it must be
	// cheap.
	Next(partition int32) int64
	// HighWaterMark is the offset the next record written to partition gets.
	HighWaterMark(ctx context.Context, partition int32) (int64, error)
	// Read calls fn, in order, for every record of streamID in partition
	// with from <= offset < to.
	Read(ctx context.Context, streamID string, partition int32, from, to int64, fn func(record.Position, record.ResultBatch) error) error
}

// Config sets a hub's bounds. Zero fields take the defaults.
type Config struct {
	// Buffer is how many result records a subscriber may have pending.
	Buffer int
	// OnSlow, if not nil, is called for every subscriber ended with ErrSlow.
	OnSlow func()
	// OnResume, if not nil, is called for every resume with where its replay
	// starts: "history" or "kafka".
	OnResume func(source string)
	// Source serves resumes the history cannot; without one, such a resume
	// fails with rtstream.ErrUnavailable.
	Source Source
	// HistoryBytes bounds the memory of all streams' recent results; the
	// least recently used stream's history goes first.
	HistoryBytes int64
	// HistoryRecords bounds one stream's history, in result records.
	HistoryRecords int
	// IdleStreams bounds how many streams without a subscriber keep their
	// history (and stay followed).
	IdleStreams int
}

func (c *Config) setDefaults() {
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	if c.OnSlow == nil {
		c.OnSlow = func() {}
	}
	if c.OnResume == nil {
		c.OnResume = func(string) {}
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.HistoryRecords <= 0 {
		c.HistoryRecords = DefaultHistoryRecords
	}
	if c.IdleStreams <= 0 {
		c.IdleStreams = DefaultIdleStreams
	}
}

// Hub is the per-instance fan-out of results to subscribers.
type Hub struct {
	cfg Config

	mu      sync.Mutex
	closed  bool
	source  Source
	streams map[string]*stream
	lru     list.List // of *stream, most recently used first
	bytes   int64     // history held, all streams
	idle    int       // streams without a subscriber
}

// stream is what the hub knows of one stream. A stream present in the map is
// watched: the live feed hands its records here, so that its history is
// complete after its first record.
type stream struct {
	id   string
	subs map[*Subscription]struct{}
	// last is the newest source record whose results were delivered: a
	// results record for an older source is a redelivery and is dropped.
	last    record.Position
	hasLast bool
	hist    []held // every record of the stream after hist[0], in order
	bytes   int64
	elem    *list.Element
}

// held is one results record as subscribers receive it.
type held struct {
	pos  record.Position // in the results topic
	src  record.Position // the events record it was made from
	ds   []rtstream.Delivery
	size int64
}

// New makes a hub.
func New(cfg Config) *Hub {
	cfg.setDefaults()
	return &Hub{cfg: cfg, source: cfg.Source, streams: make(map[string]*stream)}
}

// SetSource sets where resumes beyond the history read. It exists because the
// source (the live feed's follower) is built after the hub it feeds.
func (h *Hub) SetSource(src Source) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.source = src
}

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
	return s
}

// Resume starts a feed of streamID's results from a point: the results after
// from.After, or every result with from.Earliest, then the live ones, with
// no gap and no duplicate in between. The zero From is Subscribe. A cursor
// that cannot belong to the stream is an error wrapping rtstream.ErrInvalid;
// Kafka not answering is one wrapping rtstream.ErrUnavailable.
func (h *Hub) Resume(ctx context.Context, streamID string, from rtstream.From) (*Subscription, error) {
	if !from.Earliest && from.After == nil {
		return h.Subscribe(streamID), nil
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
	src := h.source
	st := h.stream(streamID)
	h.attach(st, s)
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
	} else {
		// The history does not hold the cursor: read Kafka, from the cursor's
		// own record (its source tells later redeliveries apart) or from the
		// partition's start.
		if src == nil {
			s.Close()
			return nil, fmt.Errorf("fanout: resuming %s needs Kafka, and no source is set: %w", streamID, rtstream.ErrUnavailable)
		}
		part, err := src.Partition(streamID)
		if err != nil {
			s.Close()
			return nil, err
		}
		cu.part, cu.kafka = part, true
		if c := from.After; c != nil {
			if c.Partition != part {
				s.Close()
				return nil, fmt.Errorf("cursor %s is not a cursor of stream %s: %w", c, streamID, rtstream.ErrInvalid)
			}
			cu.next = c.Offset
			if c.Offset >= src.Next(part) {
				hwm, err := src.HighWaterMark(ctx, part)
				if err != nil {
					s.Close()
					return nil, fmt.Errorf("fanout: %w: %w", rtstream.ErrUnavailable, err)
				}
				if c.Offset >= hwm {
					s.Close()
					return nil, fmt.Errorf("cursor %s is past the end of stream %s: %w", c, streamID, rtstream.ErrInvalid)
				}
			}
		}
	}
	if cu.kafka {
		h.cfg.OnResume("kafka")
	} else {
		h.cfg.OnResume("history")
	}
	go cu.run()
	return s, nil
}

func (h *Hub) newSubscription(streamID string) *Subscription {
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscription{
		hub: h, streamID: streamID, ctx: ctx, cancel: cancel,
		c: make(chan []rtstream.Delivery, h.cfg.Buffer), caughtUp: make(chan struct{}), done: make(chan struct{}),
	}
}

// stream returns streamID's entry, making it (watched from now on) when
// missing; h.mu must be held.
func (h *Hub) stream(id string) *stream {
	st, ok := h.streams[id]
	if !ok {
		st = &stream{id: id, subs: make(map[*Subscription]struct{})}
		st.elem = h.lru.PushFront(st)
		h.streams[id] = st
		h.idle++
		h.trimIdle()
	}
	return st
}

// attach adds s to st; h.mu must be held.
func (h *Hub) attach(st *stream, s *Subscription) {
	if len(st.subs) == 0 {
		h.idle--
	}
	st.subs[s] = struct{}{}
	h.lru.MoveToFront(st.elem)
}

// detach removes s from its stream; h.mu must be held.
func (h *Hub) detach(s *Subscription) {
	st, ok := h.streams[s.streamID]
	if !ok {
		return
	}
	if _, ok := st.subs[s]; !ok {
		return
	}
	delete(st.subs, s)
	if len(st.subs) == 0 {
		h.idle++
		h.trimIdle()
	}
}

// drop forgets a stream and its history; h.mu must be held.
func (h *Hub) drop(st *stream) {
	if len(st.subs) == 0 {
		h.idle--
	}
	h.bytes -= st.bytes
	h.lru.Remove(st.elem)
	delete(h.streams, st.id)
}

// trimIdle drops the least recently used streams without subscribers while
// there are too many; h.mu must be held.
func (h *Hub) trimIdle() {
	for e := h.lru.Back(); e != nil && h.idle > h.cfg.IdleStreams; {
		st := e.Value.(*stream)
		e = e.Prev()
		if len(st.subs) == 0 {
			h.drop(st)
		}
	}
}

// trimBytes empties the histories of the least recently used streams while
// all of them hold too much; h.mu must be held.
func (h *Hub) trimBytes() {
	for e := h.lru.Back(); e != nil && h.bytes > h.cfg.HistoryBytes; e = e.Prev() {
		st := e.Value.(*stream)
		h.bytes -= st.bytes
		st.hist, st.bytes = nil, 0
	}
}

// Watched reports whether streamID's records should be handed to Deliver:
// it has a subscriber here, or had one recently and keeps a history.
func (h *Hub) Watched(streamID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.streams[streamID]
	return ok
}

// Deliver hands one results record, read at pos, to its stream's history and
// subscribers. It never blocks: a subscriber whose buffer is full is ended
// with ErrSlow.
func (h *Hub) Deliver(pos record.Position, b record.ResultBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.streams[b.StreamID]
	if !ok {
		return // no longer watched
	}
	if st.hasLast && st.last.Partition == b.Source.Partition && b.Source.Offset <= st.last.Offset {
		return // the router processed this source record before
	}
	st.last, st.hasLast = b.Source, true
	rec := held{pos: pos, src: b.Source, ds: make([]rtstream.Delivery, len(b.Results)), size: 64}
	for i, r := range b.Results {
		rec.ds[i] = rtstream.Delivery{Cursor: rtstream.Cursor{Partition: pos.Partition, Offset: pos.Offset, Index: i}, Result: r}
		rec.size += int64(len(r.Data)+len(r.EventID)+len(r.StreamID)) + 96
	}
	// Records without results (all filtered out) are kept too: a cursor is
	// never one of them, but they carry the source offset forward.
	if len(st.hist) >= h.cfg.HistoryRecords {
		st.bytes -= st.hist[0].size
		h.bytes -= st.hist[0].size
		st.hist[0] = held{}
		st.hist = st.hist[1:]
	}
	st.hist = append(st.hist, rec)
	st.bytes += rec.size
	h.bytes += rec.size
	h.lru.MoveToFront(st.elem)
	if len(rec.ds) > 0 {
		for s := range st.subs {
			s.offer(rec)
		}
	}
	h.trimBytes()
}

// End closes every subscription of a deleted stream with ErrEnded.
func (h *Hub) End(streamID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.streams[streamID]; ok {
		if len(st.subs) > 0 {
			for s := range st.subs {
				s.end(ErrEnded)
			}
			clear(st.subs)
			h.idle++ // now idle; drop counts it out
		}
		h.drop(st)
	}
}

// Close ends every subscription with ErrClosed and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, st := range h.streams {
		for s := range st.subs {
			s.end(ErrClosed)
		}
	}
	clear(h.streams)
	h.lru.Init()
	h.bytes, h.idle = 0, 0
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
	return cu.src.Next(c.Partition) <= c.Offset
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
	to := cu.src.Next(cu.part)
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
