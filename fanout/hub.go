// Package fanout hands the results this instance reads from Kafka to the
// subscribers of each stream, and resumes subscribers after a cursor with no
// gap and no duplicate: from a bounded in-memory history of recent results
// when it holds the cursor, otherwise from Kafka (through a Source), and then
// from the live feed. The hub follows the Source itself, so the rule that
// makes a resume exact lives here, in one place: the live position moves
// under the hub's lock, in the same step as the record is delivered or
// skipped, and a resume reads its Kafka stretch up to the position it saw
// under that lock while its subscription was attached.
//
// The files: hub.go (the hub, its history, delivery and stream ends),
// subscription.go (one subscriber's feed), resume.go (catching up from a
// cursor).
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
	"io"
	"log/slog"
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

// Source is the results topic: the hub follows it live, and reads it back
// for resumes the history cannot serve (pubsub.Results).
type Source interface {
	// Follow calls fn with every record written from now on, in order within
	// a partition, and returns the offset it starts at in each partition.
	// The key of a results record is its stream id.
	Follow(fn func(pos record.Position, key string, value []byte, tr record.Trace)) (map[int32]int64, error)
	// Partition is the results partition that holds streamID's records.
	Partition(streamID string) (int32, error)
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
	// OnLive, if not nil, is told the received_at of every results record
	// the live feed decodes (its first result's), for the latency budget.
	OnLive func(receivedAt time.Time)
	// OnInvalidUTF8, if not nil, is told how many results of a live record
	// held bytes that are not UTF-8 (replaced by U+FFFD when decoded).
	OnInvalidUTF8 func(n int)
	// Source is followed from Start on, and serves resumes the history
	// cannot; without one, such a resume fails with rtstream.ErrUnavailable.
	Source Source
	// Exists reports, from memory, whether a stream still exists. The hub
	// asks it after attaching a subscription: a delete applied between the
	// caller's lookup and the attach called End before there was anything
	// to end, and the feed would otherwise stay open with nothing but
	// heartbeats. The registry forgets a stream before it calls End, so the
	// check after the attach closes that gap. Nil: every stream exists.
	Exists func(streamID string) bool
	// Logger notes records that cannot be read. Default: discard.
	Logger *slog.Logger
	// HistoryBytes bounds the memory of all streams' recent results; the
	// least recently used stream's history goes first.
	HistoryBytes int64
	// HistoryRecords bounds one stream's history, in result records.
	HistoryRecords int
	// IdleStreams bounds how many streams without a subscriber keep their
	// history (and stay followed).
	IdleStreams int
	// Trace, if not nil, continues the trace of a live record that carries
	// one (tr) and is about to reach subscribers here: it returns what the
	// transports mark their socket writes with, or nil when the trace is
	// not sampled.
	Trace func(tr record.Trace, streamID string, pos record.Position, results, subscribers int) rtstream.DeliveryTrace
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
	if c.OnInvalidUTF8 == nil {
		c.OnInvalidUTF8 = func(int) {}
	}
	if c.OnLive == nil {
		c.OnLive = func(time.Time) {}
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
	if c.Exists == nil {
		c.Exists = func(string) bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Hub is the per-instance fan-out of results to subscribers.
type Hub struct {
	cfg Config

	mu      sync.Mutex
	closed  bool
	next    map[int32]int64 // per results partition, the next offset of the live feed
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

// New makes a hub; it follows its Source from Start on.
func New(cfg Config) *Hub {
	cfg.setDefaults()
	return &Hub{cfg: cfg, next: make(map[int32]int64), streams: make(map[string]*stream)}
}

// Start follows the Source until it is closed. Call it once, before the
// first subscription.
func (h *Hub) Start() error {
	if h.cfg.Source == nil {
		return errors.New("fanout: no source to follow")
	}
	starts, err := h.cfg.Source.Follow(h.take)
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, off := range starts {
		h.next[p] = max(h.next[p], off)
	}
	return nil
}

// take is the live feed: every record of the results topic, in order within
// its partition. A record of a stream nobody watches here moves the position
// and is not decoded; the others are decoded outside the lock and delivered.
// Either way the position moves in the same locked step as the delivery, so
// a resume that attaches in between gets the record from the live side.
func (h *Hub) take(pos record.Position, key string, value []byte, tr record.Trace) {
	h.mu.Lock()
	if _, watched := h.streams[key]; !watched && key != "" {
		h.moved(pos)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	var b record.ResultBatch
	if err := record.DecodeResultBatch(value, &b); err != nil {
		h.cfg.Logger.Error("results: skipping unreadable record", "partition", pos.Partition, "offset", pos.Offset, "err", err)
		h.mu.Lock()
		h.moved(pos)
		h.mu.Unlock()
		return
	}
	if len(b.Results) > 0 {
		h.cfg.OnLive(b.Results[0].ReceivedAt)
	}
	if b.Replaced > 0 {
		h.cfg.OnInvalidUTF8(b.Replaced)
	}
	b.Trace = tr
	h.Deliver(pos, b)
}

// moved notes that the live feed is past pos; h.mu must be held.
func (h *Hub) moved(pos record.Position) {
	h.next[pos.Partition] = max(h.next[pos.Partition], pos.Offset+1)
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

// Watched reports whether streamID's records are delivered here: it has a
// subscriber, or had one recently and keeps a history.
func (h *Hub) Watched(streamID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.streams[streamID]
	return ok
}

// Deliver hands one results record, read at pos, to its stream's history and
// subscribers, and moves the live position past it. It never blocks: a subscriber whose buffer is full is ended
// with ErrSlow.
func (h *Hub) Deliver(pos record.Position, b record.ResultBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.moved(pos)
	st, ok := h.streams[b.StreamID]
	if !ok {
		return // no longer watched
	}
	if st.hasLast && st.last.Partition == b.Source.Partition && b.Source.Offset <= st.last.Offset {
		return // the router processed this source record before
	}
	st.last, st.hasLast = b.Source, true
	rec := held{pos: pos, src: b.Source, ds: make([]rtstream.Delivery, len(b.Results)), size: 64}
	var tr rtstream.DeliveryTrace
	if h.cfg.Trace != nil && b.Trace.Parent != "" && len(st.subs) > 0 && len(b.Results) > 0 {
		tr = h.cfg.Trace(b.Trace, b.StreamID, pos, len(b.Results), len(st.subs))
	}
	for i, r := range b.Results {
		rec.ds[i] = rtstream.Delivery{Cursor: rtstream.Cursor{Partition: pos.Partition, Offset: pos.Offset, Index: i}, Result: r, Trace: tr}
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
	h.end(streamID)
}

// end is End with h.mu held.
func (h *Hub) end(streamID string) {
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
