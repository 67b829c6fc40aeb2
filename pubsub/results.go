package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/record"
)

// Results is the results topic as the fan-out needs it. It follows every
// partition live for this instance alone (no consumer group, nothing
// committed, from the end at Follow), so each instance sees every result once
// however many clients it serves; and it replays stretches of a partition for
// resuming subscribers, one shared read per partition however many resume
// at once, each record handed to every reader waiting for it, decoded once.
//
// The two sides have clients of their own: a live fetch waits for new
// records (up to 500 ms), and a replay fetch queued behind it on the same
// connection made the first record of every replay half a second late.
type Results struct {
	topic string
	parts []int32
	log   *slog.Logger

	// The live side.
	client   sarama.Client
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	follow   sync.WaitGroup
	running  atomic.Int32   // partitions still being followed
	next     []atomic.Int64 // per partition index: the next offset to read

	// The replay side.
	rclient   sarama.Client
	rconsumer sarama.Consumer
	quit      chan struct{} // closed by Close: runs stop waiting for records
	started   atomic.Int64  // shared reads started, for SharedReads
	mu        sync.Mutex
	closed    bool
	runs      map[int32]*replayRun // the shared read of each partition, while one runs
	waiting   map[int32][]*replayReq
	wg        sync.WaitGroup
}

// OpenResults connects to cfg's results topic; nothing is read until Follow
// or Read.
func OpenResults(cfg Config, log *slog.Logger) (*Results, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Results{topic: cfg.Topics().Results, log: log, quit: make(chan struct{}),
		runs: make(map[int32]*replayRun), waiting: make(map[int32][]*replayReq)}
	var err error
	if r.client, err = sarama.NewClient(cfg.Brokers, cfg.SaramaConfig()); err != nil {
		return nil, fmt.Errorf("pubsub: results client: %w", err)
	}
	if r.parts, err = r.client.Partitions(r.topic); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("pubsub: results partitions: %w", err)
	}
	r.next = make([]atomic.Int64, len(r.parts))
	sc := cfg.SaramaConfig()
	// A replay reads records that exist: a fetch never needs to wait.
	sc.Consumer.MaxWaitTime = 10 * time.Millisecond
	if r.rclient, err = sarama.NewClient(cfg.Brokers, sc); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("pubsub: replay client: %w", err)
	}
	if r.consumer, err = sarama.NewConsumerFromClient(r.client); err == nil {
		r.rconsumer, err = sarama.NewConsumerFromClient(r.rclient)
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("pubsub: results consumer: %w", err)
	}
	return r, nil
}

// Follow reads every partition from its current end, which it returns per
// partition, and calls fn with every record from then on, in order within a
// partition, from one goroutine per partition, until Close. The key of a
// results record is its stream id; tr is its trace context, if any.
func (r *Results) Follow(fn func(pos record.Position, key string, value []byte, tr record.Trace)) (map[int32]int64, error) {
	starts := make(map[int32]int64, len(r.parts))
	for i, p := range r.parts {
		// An offset known here rather than "newest": the caller's position
		// is exact from the first moment.
		start, err := r.client.GetOffset(r.topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("pubsub: end of %s/%d: %w", r.topic, p, err)
		}
		pc, err := r.consumer.ConsumePartition(r.topic, p, start)
		if err != nil {
			return nil, fmt.Errorf("pubsub: follow %s/%d: %w", r.topic, p, err)
		}
		starts[p] = start
		r.next[i].Store(start)
		r.pcs = append(r.pcs, pc)
		r.running.Add(1)
		r.follow.Add(2)
		go func() {
			defer r.follow.Done()
			defer r.running.Add(-1)
			for m := range pc.Messages() {
				r.next[i].Store(m.Offset + 1)
				fn(record.Position{Partition: m.Partition, Offset: m.Offset}, string(m.Key), m.Value, traceOf(m.Headers))
			}
		}()
		go func() {
			defer r.follow.Done()
			for e := range pc.Errors() {
				r.log.Warn("results: consume error", "partition", e.Partition, "err", e.Err)
			}
		}()
	}
	return starts, nil
}

// Lag is, per partition, how many records the live side has yet to read, as
// of the last fetch.
func (r *Results) Lag() map[int32]int64 {
	out := make(map[int32]int64, len(r.pcs))
	for i, pc := range r.pcs {
		next := r.next[i].Load()
		hwm := pc.HighWaterMarkOffset()
		if hwm < next {
			next = hwm // no fetch answered yet
		}
		out[r.parts[i]] = hwm - next
	}
	return out
}

// Check reports whether every partition is still followed.
func (r *Results) Check(context.Context) error {
	if n, want := int(r.running.Load()), len(r.pcs); n != want {
		return fmt.Errorf("following %d of %d results partitions", n, want)
	}
	return nil
}

// Close stops following and replaying, and waits for the calls under way.
func (r *Results) Close() error {
	r.closeReplay()
	for _, pc := range r.pcs {
		pc.AsyncClose()
	}
	r.follow.Wait()
	var errs []error
	if r.consumer != nil {
		errs = append(errs, r.consumer.Close())
	}
	if r.rconsumer != nil {
		errs = append(errs, r.rconsumer.Close())
	}
	errs = append(errs, r.client.Close(), r.rclient.Close())
	return errors.Join(errs...)
}

// replayBuffer is how many records one reader may have pending before it is
// detached from a shared read (it rejoins the next one where it stopped).
const replayBuffer = 256

// replayAloneWait is how long a read with a single reader waits for that
// reader to make room before detaching it. Detaching costs a new partition
// consumer (~100 ms) when it rejoins, and with nobody else on the read a wait
// delays no one: without it a reader that is merely slower than the decoding
// (one-result records to an SSE client) rejoined about twenty times in a
// 10,000-result resume, which took 2-2.6 s instead of 0.4-0.7 s.
const replayAloneWait = time.Second

// replayStall is how long a read waits for the next record before it gives up:
// the records it waits for exist (they are below the follower's position), so
// a wait this long means the broker does not answer.
const replayStall = 30 * time.Second

// replayRun is one shared read of a partition.
type replayRun struct {
	pos    int64        // next offset it reads
	joined []*replayReq // requests that joined since the last record
}

// replayReq is one reader's wish: the records of stream in [from, to).
type replayReq struct {
	stream   string
	from, to int64
	out      chan replayItem
	done     chan struct{} // closed when the run is finished with the request
	next     int64         // where the run stopped for it; to when complete
	err      error
}

type replayItem struct {
	pos   record.Position
	batch *record.ResultBatch // shared between readers: read only
}

// Partition is the results partition of streamID: the router writes results
// keyed by stream id with the hash partitioner, like the events.
func (r *Results) Partition(streamID string) (int32, error) {
	return sarama.NewHashPartitioner(r.topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(streamID)}, int32(len(r.parts)))
}

// HighWaterMark asks the broker for partition's end.
func (r *Results) HighWaterMark(_ context.Context, partition int32) (int64, error) {
	off, err := r.rclient.GetOffset(r.topic, partition, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("pubsub: end of %s/%d: %w", r.topic, partition, err)
	}
	return off, nil
}

// Read calls fn, in order, for every record of streamID in partition with
// from <= offset < to. Records below the partition's oldest offset (deleted by
// retention) are skipped. fn may take its time: a reader that falls behind a
// shared read is detached and continues in the next one.
func (r *Results) Read(ctx context.Context, streamID string, partition int32, from, to int64, fn func(record.Position, record.ResultBatch) error) error {
	for from < to {
		req := &replayReq{stream: streamID, from: from, to: to, out: make(chan replayItem, replayBuffer), done: make(chan struct{})}
		if err := r.enqueue(partition, req); err != nil {
			return err
		}
		finished := false
		for !finished {
			select {
			case it := <-req.out:
				if err := fn(it.pos, *it.batch); err != nil {
					r.abandon(partition, req)
					return err
				}
			case <-req.done:
				// Hand over what was queued before the run let go.
				for len(req.out) > 0 {
					it := <-req.out
					if err := fn(it.pos, *it.batch); err != nil {
						return err
					}
				}
				finished = true
			case <-ctx.Done():
				r.abandon(partition, req)
				return ctx.Err()
			}
		}
		if req.err != nil {
			return req.err
		}
		from = req.next
	}
	return nil
}

// SharedReads is how many partition reads the reader has started: with many
// readers resuming at once it stays far below their number.
func (r *Results) SharedReads() int64 { return r.started.Load() }

// enqueue hands req to the partition's running read when that has not passed
// req.from yet, else queues it for the next read, starting one if none runs.
func (r *Results) enqueue(partition int32, req *replayReq) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("pubsub: results reader closed: %w", rtstream.ErrUnavailable)
	}
	if run, ok := r.runs[partition]; ok {
		if run.pos <= req.from {
			run.joined = append(run.joined, req)
		} else {
			r.waiting[partition] = append(r.waiting[partition], req)
		}
		return nil
	}
	r.waiting[partition] = append(r.waiting[partition], req)
	run := &replayRun{}
	r.runs[partition] = run
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runPartition(partition, run)
	}()
	return nil
}

// abandon tells the run that req's reader left: its channel is no longer read.
func (r *Results) abandon(partition int32, req *replayReq) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiting[partition]
	for i, q := range w {
		if q == req {
			r.waiting[partition] = append(w[:i:i], w[i+1:]...)
			return
		}
	}
	// A running read sees a full channel and detaches it; nothing blocks.
}

// runPartition runs shared reads of partition until nobody waits.
func (r *Results) runPartition(partition int32, run *replayRun) {
	for {
		r.mu.Lock()
		// Requests that joined as the last read was ending wait here too.
		reqs := append(r.waiting[partition], run.joined...)
		run.joined = nil
		delete(r.waiting, partition)
		if len(reqs) == 0 || r.closed {
			for _, q := range reqs {
				finish(q, q.from, fmt.Errorf("pubsub: results reader closed: %w", rtstream.ErrUnavailable))
			}
			delete(r.runs, partition)
			r.mu.Unlock()
			return
		}
		start := reqs[0].from
		for _, q := range reqs[1:] {
			start = min(start, q.from)
		}
		run.pos, run.joined = start, nil
		r.mu.Unlock()
		r.started.Add(1)
		r.readOnce(partition, run, start, reqs)
	}
}

// readOnce reads partition from start until every request is finished.
func (r *Results) readOnce(partition int32, run *replayRun, start int64, active []*replayReq) {
	pc, err := r.rconsumer.ConsumePartition(r.topic, partition, start)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		r.log.Warn("replay: wanted records are gone (retention); reading from the oldest", "partition", partition, "from", start)
		pc, err = r.rconsumer.ConsumePartition(r.topic, partition, sarama.OffsetOldest)
	}
	if err != nil {
		err = fmt.Errorf("pubsub: replay %s/%d: %w: %w", r.topic, partition, rtstream.ErrUnavailable, err)
		r.finishAll(run, active, err)
		return
	}
	defer pc.Close()
	stall := time.NewTimer(replayStall)
	defer stall.Stop()
	for len(active) > 0 {
		var m *sarama.ConsumerMessage
		select {
		case m = <-pc.Messages():
		case e := <-pc.Errors():
			r.log.Warn("replay: consume error", "partition", partition, "err", e.Err)
			continue
		case <-r.quit:
			r.finishAll(run, active, fmt.Errorf("pubsub: results reader closed: %w", rtstream.ErrUnavailable))
			return
		case <-stall.C:
			r.finishAll(run, active, fmt.Errorf("pubsub: replay %s/%d: no record in %s: %w", r.topic, partition, replayStall, rtstream.ErrUnavailable))
			return
		}
		if m == nil {
			r.finishAll(run, active, fmt.Errorf("pubsub: replay %s/%d ended: %w", r.topic, partition, rtstream.ErrUnavailable))
			return
		}
		stall.Reset(replayStall)
		r.mu.Lock()
		active = append(active, run.joined...)
		run.joined = nil
		run.pos = m.Offset + 1
		r.mu.Unlock()

		var batch *record.ResultBatch
		keep := active[:0]
		for _, q := range active {
			switch {
			case m.Offset < q.from:
				keep = append(keep, q)
				continue
			case m.Offset >= q.to:
				finish(q, q.to, nil)
				continue
			}
			if string(m.Key) == q.stream {
				if batch == nil {
					batch = new(record.ResultBatch)
					if err := record.DecodeResultBatch(m.Value, batch); err != nil {
						r.log.Error("replay: skipping unreadable record", "partition", m.Partition, "offset", m.Offset, "err", err)
						batch = &record.ResultBatch{StreamID: q.stream}
					}
				}
				if !r.hand(q, replayItem{pos: record.Position{Partition: m.Partition, Offset: m.Offset}, batch: batch}, len(active) == 1) {
					finish(q, m.Offset, nil) // fell behind: continues from here in a later read
					continue
				}
			}
			if m.Offset+1 >= q.to {
				finish(q, q.to, nil)
				continue
			}
			keep = append(keep, q)
		}
		clear(active[len(keep):])
		active = keep
	}
	// Requests that joined after the last record are served by the next
	// read: runPartition takes them from run.joined.
}

// hand gives it to q's reader unless its buffer is full. A reader alone on the
// read gets up to replayAloneWait to make room; one among others does not
// hold them up at all.
func (r *Results) hand(q *replayReq, it replayItem, alone bool) bool {
	select {
	case q.out <- it:
		return true
	default:
	}
	if !alone {
		return false
	}
	wait := time.NewTimer(replayAloneWait)
	defer wait.Stop()
	select {
	case q.out <- it:
		return true
	case <-wait.C:
		return false
	case <-r.quit:
		return false
	}
}

// finishAll ends every request of a failed read, joined ones included.
func (r *Results) finishAll(run *replayRun, active []*replayReq, err error) {
	r.mu.Lock()
	active = append(active, run.joined...)
	run.joined = nil
	r.mu.Unlock()
	for _, q := range active {
		finish(q, q.from, err)
	}
}

func finish(q *replayReq, next int64, err error) {
	q.next, q.err = next, err
	close(q.done)
}

// closeReplay stops the reads under way: their readers get an error
// wrapping rtstream.ErrUnavailable.
func (r *Results) closeReplay() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.quit)
	r.mu.Unlock()
	r.wg.Wait()
}

// traceOf reads a record's trace context headers.
func traceOf(headers []*sarama.RecordHeader) record.Trace {
	var tr record.Trace
	for _, h := range headers {
		switch string(h.Key) {
		case record.HeaderTraceparent:
			tr.Parent = string(h.Value)
		case record.HeaderTracestate:
			tr.State = string(h.Value)
		}
	}
	return tr
}
