// Package router is rtstream's processing pipeline: a Watermill router that
// consumes the events topic in a consumer group, turns each record of events
// into a record of results, and publishes it to the results topic.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/pubsub"
)

// ErrPermanent marks a failure that will happen again however often the
// message is retried (unreadable record, panic in processing). Such messages go
// to the poison topic at once; every other error is retried, and a message that
// still fails is redelivered rather than dropped.
var ErrPermanent = errors.New("permanent failure")

// errUnreadable is a record that is not an events record.
var errUnreadable = fmt.Errorf("%w: unreadable event record", ErrPermanent)

// Config configures the router. Topics are required.
type Config struct {
	Topics pubsub.Topics
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
	m := cfg.Metrics
	r.AddHandler(HandlerName, cfg.Topics.Events, sub, cfg.Topics.Results, pub, func(msg *message.Message) ([]*message.Message, error) {
		start := time.Now()
		out, err := Process(msg)
		m.Processed(time.Since(start))
		return out, err
	})
	return r, nil
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

// Process turns one record of events into one record of results: passthrough,
// each result carrying the event's data and its ids and times. The source
// position travels along so that a record processed twice (delivery is
// at-least-once) can be recognised downstream.
func Process(msg *message.Message) ([]*message.Message, error) {
	var in rtstream.EventBatch
	if err := json.Unmarshal(msg.Payload, &in); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	if !rtstream.ValidStreamID(in.StreamID) {
		return nil, fmt.Errorf("%w: no valid stream id", errUnreadable)
	}
	out := rtstream.ResultBatch{
		StreamID: in.StreamID,
		Source:   pubsub.SourcePosition(msg.Context()),
		Results:  make([]rtstream.Result, len(in.Events)),
	}
	now := time.Now().UTC()
	for i, ev := range in.Events {
		out.Results[i] = rtstream.Result{
			StreamID:    in.StreamID,
			EventID:     ev.ID,
			ReceivedAt:  ev.ReceivedAt,
			ProcessedAt: now,
			Data:        ev.Data,
		}
	}
	res := message.NewMessage(watermill.NewULID(), out.AppendJSON(make([]byte, 0, 2*len(msg.Payload))))
	res.Metadata.Set(pubsub.KeyMetadata, in.StreamID)
	res.SetContext(context.WithoutCancel(msg.Context()))
	return []*message.Message{res}, nil
}
