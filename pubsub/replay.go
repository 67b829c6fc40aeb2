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

// ResultsReader reads stretches of the results topic for resuming subscribers.
// Reads of one partition are shared: however many subscribers resume at once,
// one consumer per partition reads forward from the lowest offset wanted and
// hands each record to every reader waiting for it, decoded once.
type ResultsReader struct {
	topic    string
	client   sarama.Client
	consumer sarama.Consumer
	follower *ResultsFollower
	parts    int32
	log      *slog.Logger

	quit chan struct{} // closed by Close: runs stop waiting for records

	started atomic.Int64 // shared reads started, for SharedReads

	mu      sync.Mutex
	closed  bool
	runs    map[int32]*replayRun // the shared read of each partition, while one runs
	waiting map[int32][]*replayReq
	wg      sync.WaitGroup
}

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

// NewResultsReader makes a reader of cfg's results topic. follower is the live
// feed it reads behind: a read never goes past the follower's position.
func NewResultsReader(cfg Config, follower *ResultsFollower, log *slog.Logger) (*ResultsReader, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	topic := cfg.Topics().Results
	sc := cfg.SaramaConfig()
	// A replay reads records that exist (below the follower's position): a
	// fetch never needs to wait for more, and Sarama's default 500 ms wait
	// showed up as the first record of every replay arriving half a second
	// late.
	sc.Consumer.MaxWaitTime = 10 * time.Millisecond
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("pubsub: replay client: %w", err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: results partitions: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: replay consumer: %w", err)
	}
	return &ResultsReader{
		topic: topic, client: client, consumer: consumer, follower: follower, parts: int32(len(parts)), log: log,
		quit: make(chan struct{}), runs: make(map[int32]*replayRun), waiting: make(map[int32][]*replayReq),
	}, nil
}

// Partition is the results partition of streamID: the router writes results
// keyed by stream id with the hash partitioner, like the events.
func (r *ResultsReader) Partition(streamID string) (int32, error) {
	return sarama.NewHashPartitioner(r.topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(streamID)}, r.parts)
}

// Next is the follower's position in partition.
func (r *ResultsReader) Next(partition int32) int64 { return r.follower.Next(partition) }

// HighWaterMark asks the broker for partition's end.
func (r *ResultsReader) HighWaterMark(_ context.Context, partition int32) (int64, error) {
	off, err := r.client.GetOffset(r.topic, partition, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("pubsub: end of %s/%d: %w", r.topic, partition, err)
	}
	return off, nil
}

// Read calls fn, in order, for every record of streamID in partition with
// from <= offset < to. Records below the partition's oldest offset (deleted by
// retention) are skipped. fn may take its time: a reader that falls behind a
// shared read is detached and continues in the next one.
func (r *ResultsReader) Read(ctx context.Context, streamID string, partition int32, from, to int64, fn func(record.Position, record.ResultBatch) error) error {
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
func (r *ResultsReader) SharedReads() int64 { return r.started.Load() }

// enqueue hands req to the partition's running read when that has not passed
// req.from yet, else queues it for the next read, starting one if none runs.
func (r *ResultsReader) enqueue(partition int32, req *replayReq) error {
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
func (r *ResultsReader) abandon(partition int32, req *replayReq) {
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
func (r *ResultsReader) runPartition(partition int32, run *replayRun) {
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
func (r *ResultsReader) readOnce(partition int32, run *replayRun, start int64, active []*replayReq) {
	pc, err := r.consumer.ConsumePartition(r.topic, partition, start)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		r.log.Warn("replay: wanted records are gone (retention); reading from the oldest", "partition", partition, "from", start)
		pc, err = r.consumer.ConsumePartition(r.topic, partition, sarama.OffsetOldest)
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
func (r *ResultsReader) hand(q *replayReq, it replayItem, alone bool) bool {
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
func (r *ResultsReader) finishAll(run *replayRun, active []*replayReq, err error) {
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

// Close stops the reads under way (their readers get an error wrapping
// rtstream.ErrUnavailable) and the reader's consumer.
func (r *ResultsReader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.quit)
	r.mu.Unlock()
	r.wg.Wait()
	return errors.Join(r.consumer.Close(), r.client.Close())
}
