package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream"
)

// Registry is the set of streams, kept in the compacted streams topic: there is
// no other database. Every instance follows the topic into memory. Every read
// and write first catches up with the topic's end, which gives read-your-writes
// across instances: once one instance has answered 201 or 204, the record is in
// Kafka, and any instance asked afterwards reads up to it before answering.
//
// Catching up costs one ListOffsets round trip, shared: callers that arrive
// while one is in flight wait for the next, which starts after they arrived
// (an earlier one might predate the write they must see).
type Registry struct {
	topic    string
	log      *slog.Logger
	onDelete atomic.Pointer[func(id string)]

	// client serves the producer and the end-offset requests; the follower
	// has a client of its own so that its long-polling fetches never hold up
	// a ListOffsets or a produce on the same connection.
	client   sarama.Client
	seeds    []string      // the configured bootstrap addresses, for Ping
	probeCfg sarama.Config // the client's settings, for Ping's own connections
	producer sarama.SyncProducer
	consumer sarama.Consumer
	pc       sarama.PartitionConsumer
	done     chan struct{}

	syncMu   sync.Mutex
	pending  *endCall // the next end-offset request, not yet sent
	inflight bool

	mu      sync.Mutex
	streams map[string]rtstream.Stream
	next    int64         // every record below this offset has been applied
	moved   chan struct{} // closed and replaced whenever next moves
}

// OpenRegistry loads the registry from Kafka and follows it until Close.
func OpenRegistry(ctx context.Context, cfg Config, log *slog.Logger) (*Registry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc := cfg.SaramaConfig()
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("pubsub: registry client: %w", err)
	}
	r := &Registry{
		topic:    cfg.Topics().Streams,
		log:      log,
		client:   client,
		seeds:    cfg.Brokers,
		probeCfg: *sc,
		done:     make(chan struct{}),
		streams:  make(map[string]rtstream.Stream),
		moved:    make(chan struct{}),
	}
	if r.producer, err = sarama.NewSyncProducerFromClient(client); err != nil {
		client.Close()
		return nil, fmt.Errorf("pubsub: registry producer: %w", err)
	}
	if r.consumer, err = sarama.NewConsumer(cfg.Brokers, sc); err != nil {
		r.producer.Close()
		client.Close()
		return nil, fmt.Errorf("pubsub: registry consumer: %w", err)
	}
	if r.pc, err = r.consumer.ConsumePartition(r.topic, 0, sarama.OffsetOldest); err != nil {
		r.consumer.Close()
		r.producer.Close()
		client.Close()
		return nil, fmt.Errorf("pubsub: follow %s: %w", r.topic, err)
	}
	// Compaction may have removed the first records: start from the log start.
	if r.next, err = client.GetOffset(r.topic, 0, sarama.OffsetOldest); err != nil {
		r.pc.Close()
		r.consumer.Close()
		r.producer.Close()
		client.Close()
		return nil, fmt.Errorf("pubsub: registry start offset: %w", err)
	}
	go r.follow()
	if err := r.Sync(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Registry) follow() {
	defer close(r.done)
	msgs, errs := r.pc.Messages(), r.pc.Errors()
	for msgs != nil || errs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			r.apply(m)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.log.Warn("stream registry: consume error", "err", e.Err)
		}
	}
}

func (r *Registry) apply(m *sarama.ConsumerMessage) {
	id := string(m.Key)
	var deleted bool
	r.mu.Lock()
	if m.Value == nil {
		_, deleted = r.streams[id]
		delete(r.streams, id)
	} else {
		var s rtstream.Stream
		if err := json.Unmarshal(m.Value, &s); err != nil || s.ID != id {
			r.log.Error("stream registry: skipping unreadable record", "offset", m.Offset, "err", err)
		} else {
			r.streams[id] = s
		}
	}
	r.next = m.Offset + 1
	close(r.moved)
	r.moved = make(chan struct{})
	r.mu.Unlock()
	if fn := r.onDelete.Load(); deleted && fn != nil {
		(*fn)(id)
	}
}

// waitFor returns once every record below offset has been applied.
func (r *Registry) waitFor(ctx context.Context, offset int64) error {
	for {
		r.mu.Lock()
		next, moved := r.next, r.moved
		r.mu.Unlock()
		if next >= offset {
			return nil
		}
		select {
		case <-moved:
		case <-r.done:
			return fmt.Errorf("pubsub: registry closed: %w", rtstream.ErrUnavailable)
		case <-ctx.Done():
			return fmt.Errorf("pubsub: registry catching up: %w: %w", rtstream.ErrUnavailable, ctx.Err())
		}
	}
}

// endCall is one shared end-offset request.
type endCall struct {
	done chan struct{}
	end  int64
	err  error
}

// Sync returns once the registry has applied every record acknowledged
// before the call.
func (r *Registry) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	c := r.pending
	if c == nil {
		c = &endCall{done: make(chan struct{})}
		r.pending = c
	}
	if !r.inflight {
		r.inflight = true
		go r.fetchEnds()
	}
	r.syncMu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("pubsub: registry end offset: %w: %w", rtstream.ErrUnavailable, ctx.Err())
	}
	if c.err != nil {
		return fmt.Errorf("pubsub: registry end offset: %w: %w", rtstream.ErrUnavailable, c.err)
	}
	return r.waitFor(ctx, c.end)
}

// fetchEnds sends pending end-offset requests one after another until none is
// left.
func (r *Registry) fetchEnds() {
	for {
		r.syncMu.Lock()
		c := r.pending
		r.pending = nil
		if c == nil {
			r.inflight = false
			r.syncMu.Unlock()
			return
		}
		r.syncMu.Unlock()
		c.end, c.err = r.client.GetOffset(r.topic, 0, sarama.OffsetNewest)
		close(c.done)
	}
}

func (r *Registry) lookup(id string) (rtstream.Stream, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.streams[id]
	return s, ok
}

// OnDelete makes fn be called (from the follower) for every stream deleted
// from now on, on this instance or another. The fan-out hub, which asks Has,
// is built after the registry; nothing subscribes before it exists, so the
// deletes before this call concern nobody.
func (r *Registry) OnDelete(fn func(id string)) { r.onDelete.Store(&fn) }

// Has reports whether this instance's copy of the registry holds id, with
// no round trip. A stream deleted is gone from the copy before onDelete is
// called for it.
func (r *Registry) Has(id string) bool {
	_, ok := r.lookup(id)
	return ok
}

// Get returns the stream or rtstream.ErrNotFound, after catching up with the
// topic, so a create or delete acknowledged by any instance is seen.
func (r *Registry) Get(ctx context.Context, id string) (rtstream.Stream, error) {
	if err := r.Sync(ctx); err != nil {
		return rtstream.Stream{}, err
	}
	if s, ok := r.lookup(id); ok {
		return s, nil
	}
	return rtstream.Stream{}, fmt.Errorf("stream %q: %w", id, rtstream.ErrNotFound)
}

// GetCached returns the stream from this instance's copy of the registry,
// without the round trip that makes Get strict: the router asks once per
// record and cannot afford one. A stream not known here may have been created
// on another instance a moment ago, so only then does it fall back to Get.
// The copy may lag the topic by the follower's delay: a stream deleted
// elsewhere can still be returned for that long.
func (r *Registry) GetCached(ctx context.Context, id string) (rtstream.Stream, error) {
	if s, ok := r.lookup(id); ok {
		return s, nil
	}
	return r.Get(ctx, id)
}

// Create stores s. When a stream with s.ID exists, it returns that stream and
// created=false if the definitions match, or rtstream.ErrConflict.
func (r *Registry) Create(ctx context.Context, s rtstream.Stream) (_ rtstream.Stream, created bool, _ error) {
	if err := r.Sync(ctx); err != nil {
		return rtstream.Stream{}, false, err
	}
	if old, ok := r.lookup(s.ID); ok {
		if old.SameDefinition(s) {
			return old, false, nil
		}
		return old, false, fmt.Errorf("stream %q: %w", s.ID, rtstream.ErrConflict)
	}
	value, err := json.Marshal(s)
	if err != nil {
		return rtstream.Stream{}, false, err
	}
	if err := r.write(ctx, s.ID, value); err != nil {
		return rtstream.Stream{}, false, err
	}
	return s, true, nil
}

// Delete writes a tombstone for id, or returns rtstream.ErrNotFound.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if _, err := r.Get(ctx, id); err != nil {
		return err
	}
	return r.write(ctx, id, nil)
}

// List returns up to limit streams of tenant ("": of every tenant) with ids
// after after, in id order.
func (r *Registry) List(ctx context.Context, tenant, after string, limit int) ([]rtstream.Stream, error) {
	if err := r.Sync(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	out := make([]rtstream.Stream, 0, len(r.streams))
	for id, s := range r.streams {
		if id > after && (tenant == "" || s.Owner() == tenant) {
			out = append(out, s)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b rtstream.Stream) int { return strings.Compare(a.ID, b.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (r *Registry) write(ctx context.Context, id string, value []byte) error {
	msg := &sarama.ProducerMessage{Topic: r.topic, Key: sarama.StringEncoder(id)}
	if value != nil {
		msg.Value = sarama.ByteEncoder(value)
	}
	// Tombstones too: every record says its format, though a delete is
	// told by its null value alone.
	stampFormat(msg)
	_, offset, err := r.producer.SendMessage(msg)
	if err != nil {
		return fmt.Errorf("pubsub: registry write: %w: %w", rtstream.ErrUnavailable, err)
	}
	return r.waitFor(ctx, offset+1)
}

// Ping reports whether a broker answers a request within ctx. A broker
// that accepts connections but answers nothing (black-holed by a network
// fault, or a stopped process) is not ready: a dial alone said it was. It
// asks on connections of its own instead of through Sarama's client, whose
// retries outlast any sensible readiness probe and whose requests queue
// behind each other, and asks every address at once: one silent broker
// must not use up the probe's time. It tries the bootstrap addresses too:
// Sarama forgets the brokers it failed to reach and learns them again only
// at its next metadata refresh, which a server kept out of rotation by this
// very check may not get for minutes.
func (r *Registry) Ping(ctx context.Context) error {
	addrs := make([]string, 0, len(r.seeds)+1)
	for _, b := range r.client.Brokers() {
		addrs = append(addrs, b.Addr())
	}
	for _, seed := range r.seeds {
		if !slices.Contains(addrs, seed) {
			addrs = append(addrs, seed)
		}
	}
	if len(addrs) == 0 {
		return errors.New("kafka: no broker known")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan error, len(addrs))
	for _, addr := range addrs {
		go func() {
			if err := r.probe(ctx, addr); err != nil {
				answers <- fmt.Errorf("%s: %w", addr, err)
				return
			}
			answers <- nil
		}()
	}
	var errs []error
	for range addrs {
		err := <-answers
		if err == nil {
			cancel() // the other probes stop at once; wait for them
			for range len(addrs) - len(errs) - 1 {
				<-answers
			}
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("kafka unreachable: %w", errors.Join(errs...))
}

// probeTimeout bounds one probe when ctx has no deadline.
const probeTimeout = 2 * time.Second

// probe connects to addr (with the client's TLS and SASL settings) and asks
// for its API versions, the cheapest request every broker answers.
func (r *Registry) probe(ctx context.Context, addr string) error {
	timeout := probeTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return ctx.Err()
	}
	conf := r.probeCfg
	conf.Net.DialTimeout, conf.Net.ReadTimeout, conf.Net.WriteTimeout = timeout, timeout, timeout
	// Open would ask for the API versions itself, with a timeout of its
	// own: one round trip, the one below, bounded by ctx.
	conf.ApiVersionsRequest = false
	b := sarama.NewBroker(addr)
	if err := b.Open(&conf); err != nil {
		return err
	}
	defer b.Close()
	// ctx ends the probe even between the round trips TLS and SASL add.
	defer context.AfterFunc(ctx, func() { _ = b.Close() })()
	_, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Close stops following and disconnects.
func (r *Registry) Close() error {
	err := errors.Join(r.pc.Close(), r.consumer.Close())
	<-r.done
	return errors.Join(err, r.producer.Close(), r.client.Close())
}

// Owned counts tenant's streams, after catching up with every write
// acknowledged anywhere (the streams quota must see a delete made on another
// instance a moment ago). A stream recorded before tenants is the default
// tenant's.
func (r *Registry) Owned(ctx context.Context, tenant string) (int, error) {
	if err := r.Sync(ctx); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, st := range r.streams {
		if st.Owner() == tenant {
			n++
		}
	}
	return n, nil
}

// OwnedAll counts the streams of every tenant in this instance's copy.
func (r *Registry) OwnedAll() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, st := range r.streams {
		out[st.Owner()]++
	}
	return out
}
