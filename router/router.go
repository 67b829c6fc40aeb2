// Package router is rtstream's processing pipeline: a Watermill router that
// consumes the events topic in a consumer group, turns each record of events
// into a record of results with the stream's processor, and publishes it to
// the results topic; an event the processor fails on goes to the poison topic
// as a dead letter.
package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/processor"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
)

// ErrPermanent marks a failure that will happen again however often the
// message is retried (unreadable record, panic in processing). Such messages go
// to the poison topic at once; every other error is retried, and a message that
// still fails is redelivered rather than dropped.
var ErrPermanent = errors.New("permanent failure")

// errUnreadable is a record that is not an events record.
var errUnreadable = fmt.Errorf("%w: unreadable event record", ErrPermanent)

// Streams finds a stream's definition for the router. It is asked once per
// record, so it must answer from memory when it can (pubsub.Registry's
// GetCached does); an error wrapping rtstream.ErrNotFound means the stream no
// longer exists, any other error is retried.
type Streams interface {
	GetCached(ctx context.Context, id string) (rtstream.Stream, error)
}

// Config configures the router. Topics are required.
type Config struct {
	Topics pubsub.Topics
	// Streams gives each record's stream definition; nil processes every
	// stream as a passthrough.
	Streams Streams
	// ConsumerGroup of the router. Default "rtstream-router".
	ConsumerGroup string
	// MaxRetries of a transient failure before the message is nacked and
	// redelivered. Default 5.
	MaxRetries int
	// RetryInitialInterval is the first backoff. Default 100 ms.
	RetryInitialInterval time.Duration
	// ThrottlePerSecond caps messages handled per second; 0 means no cap.
	ThrottlePerSecond int64
	// CloseTimeout bounds how long Close waits for handlers. Default 30 s.
	CloseTimeout time.Duration
	// Metrics records processing times and poisoned records; nil records
	// nothing.
	Metrics *observability.Metrics
	// CrashGuard dead-letters a record that killed the process MaxDeaths
	// times; nil guards nothing.
	CrashGuard *CrashGuard
	// Tracing continues the trace an events record carries: a span for its
	// processing, whose context its results and dead letters carry on. Nil
	// traces nothing.
	Tracing *observability.Tracing
}

func (c *Config) setDefaults() {
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = "rtstream-router"
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.RetryInitialInterval == 0 {
		c.RetryInitialInterval = 100 * time.Millisecond
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 30 * time.Second
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Topics.Events == "" || c.Topics.Results == "" || c.Topics.Poison == "" {
		return errors.New("router: events, results and poison topics are required")
	}
	return nil
}

// HandlerName names the processing handler in logs and metrics.
const HandlerName = "process"

// New builds the router. sub consumes the events topic; pub publishes results
// and poisoned messages. Middleware, outermost first: Throttle (when set),
// PoisonQueue for permanent failures, Retry for the rest, Recoverer.
func New(cfg Config, sub message.Subscriber, pub message.Publisher, logger watermill.LoggerAdapter) (*message.Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, logger)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if cfg.ThrottlePerSecond > 0 {
		r.AddMiddleware(middleware.NewThrottle(cfg.ThrottlePerSecond, time.Second).Middleware)
	}
	poison, err := middleware.PoisonQueueWithFilter(pub, cfg.Topics.Poison, func(err error) bool {
		if !IsPermanent(err) {
			return false
		}
		cfg.Metrics.Poisoned(poisonReason(err))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("router: poison queue: %w", err)
	}
	r.AddMiddleware(
		poison,
		middleware.Retry{
			MaxRetries:      cfg.MaxRetries,
			InitialInterval: cfg.RetryInitialInterval,
			MaxInterval:     5 * time.Second,
			Multiplier:      2,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
			Logger:          logger,
		}.Middleware,
		middleware.Recoverer,
	)
	r.AddHandler(HandlerName, cfg.Topics.Events, sub, cfg.Topics.Results, pub,
		handler(NewPipeline(cfg.Streams, cfg.Metrics), cfg.CrashGuard, pub, cfg.Topics.Poison, cfg.Tracing))
	return r, nil
}

// handler processes one events record: its results are returned for the
// router to publish, its dead letters are published here.
func handler(p *Pipeline, guard *CrashGuard, pub message.Publisher, poisonTopic string, tr *observability.Tracing) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if tr != nil && msg.Metadata.Get(record.HeaderTraceparent) != "" {
			span := startProcess(tr, msg)
			defer span.End()
		}
		process := p.Process
		if guard != nil {
			pos := pubsub.SourcePosition(msg.Context())
			crashed, err := guard.Admit(msg.Context(), pos.Partition, pos.Offset)
			if err != nil {
				return nil, err
			}
			if crashed {
				process = p.crashed
			}
		}
		out, dead, err := process(msg)
		if err != nil {
			return nil, err
		}
		if tr != nil {
			for _, ms := range [][]*message.Message{out, dead} {
				for _, m := range ms {
					tr.Inject(m.Context(), m.Metadata)
				}
			}
		}
		// Dead letters first: if this publish fails the whole record is
		// retried, and its results are made again then. If publishing the
		// results fails after it, the record is redelivered and its dead
		// letters written again; the dead-letters reader shows an event
		// once per page.
		if len(dead) > 0 {
			if err := pub.Publish(poisonTopic, dead...); err != nil {
				return nil, fmt.Errorf("router: publishing %d dead letters: %w", len(dead), err)
			}
		}
		return out, nil
	}
}

// startProcess starts the span of one events record's processing, under the
// send span whose context the record's headers carry, and makes it the
// context of msg: the results and dead letters made from msg inherit it, and
// carry it on in their headers.
func startProcess(tr *observability.Tracing, msg *message.Message) trace.Span {
	pos := pubsub.SourcePosition(msg.Context())
	ctx := tr.Extract(msg.Context(), msg.Metadata)
	ctx, span := tr.Start(ctx, "process", trace.SpanKindConsumer,
		attribute.String("messaging.system", "kafka"),
		attribute.String("rtstream.stream_id", msg.Metadata.Get(pubsub.KeyMetadata)),
		attribute.Int("messaging.kafka.destination.partition", int(pos.Partition)),
		attribute.Int64("messaging.kafka.message.offset", pos.Offset))
	msg.SetContext(ctx)
	return span
}

// poisonReason classifies a permanent failure into the metric's few values.
func poisonReason(err error) string {
	var panicked middleware.RecoveredPanicError
	switch {
	case errors.As(err, &panicked):
		return "panic"
	case errors.Is(err, errUnreadable):
		return "unreadable"
	}
	return "other"
}

// IsPermanent reports whether err will recur on every retry.
func IsPermanent(err error) bool {
	var panicked middleware.RecoveredPanicError
	return errors.Is(err, ErrPermanent) || errors.As(err, &panicked)
}

// Process turns one record of events into one record of results without
// any processor: each result carries the event's data. It is Pipeline.Process
// for a router that knows no streams.
func Process(msg *message.Message) ([]*message.Message, error) {
	out, _, err := NewPipeline(nil, nil).Process(msg)
	return out, err
}

// Pipeline processes events records; it is safe for concurrent use (the
// router runs one handler per partition).
type Pipeline struct {
	streams Streams
	metrics *observability.Metrics
	// programs caches compiled processors: compiling takes far longer than
	// running, and a stream's definition never changes (only delete and
	// create again, which the cache notices).
	programs *processor.Cache
}

// NewPipeline processes with the definitions streams gives (nil: every
// stream is a passthrough) and counts into m (nil: counts nothing).
func NewPipeline(streams Streams, m *observability.Metrics) *Pipeline {
	return &Pipeline{streams: streams, metrics: m, programs: processor.NewCache()}
}

// Process turns one record of events into at most one record of results and
// any number of dead letters. Each result carries its event's ids and times;
// the source position travels along so that a record processed twice
// (delivery is at-least-once) can be recognised downstream. An event the
// filter drops makes nothing; an event the processor fails on (its data does
// not fit the expressions: that would fail on every retry) makes a dead
// letter instead of a result, and the record's other events are unaffected.
// An error is returned only for the whole record: permanent (ErrPermanent)
// when it cannot be read, transient when the stream's definition could not be
// looked up.
func (p *Pipeline) Process(msg *message.Message) (results, dead []*message.Message, err error) {
	start := time.Now()
	var in record.EventBatch
	// The events' data may alias msg.Payload. Nothing writes to a payload,
	// and every result and dead letter is encoded before Process returns.
	if err := record.DecodeEventBatch(msg.Payload, &in); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	p.metrics.InvalidUTF8(observability.AtRouter, in.Replaced)
	if !rtstream.ValidStreamID(in.StreamID) {
		return nil, nil, fmt.Errorf("%w: no valid stream id", errUnreadable)
	}
	if len(in.Events) > 0 {
		p.metrics.AgeAt(observability.AtRouter, in.Events[0].ReceivedAt)
	}
	prog, compileErr, err := p.program(msg.Context(), in.StreamID)
	if err != nil {
		return nil, nil, err
	}
	source := pubsub.SourcePosition(msg.Context())
	out := record.ResultBatch{
		StreamID: in.StreamID,
		Source:   source,
		Results:  make([]rtstream.Result, 0, len(in.Events)),
	}
	now := time.Now().UTC()
	var filtered int
	for _, ev := range in.Events {
		crashHook(ev.Data)
		data, keep, err := prog.Eval(processor.Event{ID: ev.ID, ReceivedAt: ev.ReceivedAt, Data: ev.Data})
		if compileErr != nil {
			err = compileErr
		}
		switch {
		case err != nil:
			m := pubsub.NewDeadLetter(in.StreamID, rtstream.DeadLetter{EventID: ev.ID, Reason: err.Error(), FailedAt: now, Data: ev.Data}, source)
			m.SetContext(context.WithoutCancel(msg.Context()))
			dead = append(dead, m)
		case !keep:
			filtered++
		default:
			out.Results = append(out.Results, rtstream.Result{
				StreamID:    in.StreamID,
				EventID:     ev.ID,
				ReceivedAt:  ev.ReceivedAt,
				ProcessedAt: now,
				Data:        data,
			})
		}
	}
	p.metrics.Processed(time.Since(start))
	p.metrics.ProcessedEvents(len(out.Results), filtered, len(dead))
	if len(out.Results) == 0 {
		// Nothing to deliver: no empty record to write and to fan out.
		return nil, dead, nil
	}
	res := message.NewMessage(watermill.NewULID(), out.AppendJSON(make([]byte, 0, 2*len(msg.Payload))))
	res.Metadata.Set(pubsub.KeyMetadata, in.StreamID)
	res.SetContext(context.WithoutCancel(msg.Context()))
	return []*message.Message{res}, dead, nil
}

// crashed dead-letters every event of a record that killed the process
// MaxDeaths times, without evaluating any.
func (p *Pipeline) crashed(msg *message.Message) (results, dead []*message.Message, err error) {
	var in record.EventBatch
	if err := record.DecodeEventBatch(msg.Payload, &in); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	source := pubsub.SourcePosition(msg.Context())
	now := time.Now().UTC()
	for _, ev := range in.Events {
		m := pubsub.NewDeadLetter(in.StreamID, rtstream.DeadLetter{EventID: ev.ID, Reason: CrashedReason, FailedAt: now, Data: ev.Data}, source)
		m.SetContext(context.WithoutCancel(msg.Context()))
		dead = append(dead, m)
	}
	p.metrics.Poisoned("crashed")
	p.metrics.ProcessedEvents(0, 0, len(dead))
	return nil, dead, nil
}

// program returns the stream's compiled processor (nil: passthrough). A
// definition that does not compile (the API compiles it at creation, so only
// a definition written by another version gets here) is returned as
// compileErr: every event of the stream becomes a dead letter saying so.
func (p *Pipeline) program(ctx context.Context, id string) (prog *processor.Program, compileErr error, err error) {
	if p.streams == nil {
		return nil, nil, nil
	}
	st, err := p.streams.GetCached(ctx, id)
	switch {
	case errors.Is(err, rtstream.ErrNotFound):
		// Deleted since the events were sent: nobody subscribes any more,
		// but the results topic keeps what was sent, as sent.
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("router: stream %s: %w", id, err)
	case st.Processor == nil:
		return nil, nil, nil
	}
	prog, compileErr = p.programs.Get(id, st.Processor.Filter, st.Processor.Map)
	if compileErr != nil {
		compileErr = fmt.Errorf("processor does not compile: %w", compileErr)
	}
	return prog, compileErr, nil
}
