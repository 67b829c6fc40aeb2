package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
	"github.com/rtstream/rtstream/router"
)

// The crashmarks phase answers the crash-loop issue's cost target: the
// router's crash guard may cost at most 5% of the router's throughput. It
// runs in this process, no server: it writes a backlog of single-event
// records to the events topic of a prefix of its own, then lets a router
// drain the backlog, in a fresh consumer group each round, in the Thue–Morse
// order with the guard (ON) and without (OFF). A round's throughput is
// records ÷ the time from its first result published to its last, so the
// consumer group's join does not count, the guard's claims do. A last round
// measures a careful pass (every partition's mark left "running" by a process
// that died): a figure to know, without a target.
const (
	targetCrashMarksCost = 0.05
	crashMarksRecords    = 20000
	crashMarksRounds     = 8
)

// CrashMarksResult is the crashmarks phase.
type CrashMarksResult struct {
	Records int64 `json:"records"`
	// Rounds are records/s in round order, ON first.
	Rounds     []CrashMarksRound `json:"rounds"`
	OnPerSec   float64           `json:"on_records_per_sec"`
	OffPerSec  float64           `json:"off_records_per_sec"`
	Cost       float64           `json:"cost"`
	Target     float64           `json:"target"`
	CarefulSec float64           `json:"careful_records_per_sec"`
}

// CrashMarksRound is one drain.
type CrashMarksRound struct {
	Guard      string  `json:"guard"` // on, off, careful
	Seconds    float64 `json:"seconds"`
	RecordsSec float64 `json:"records_per_sec"`
}

func runCrashMarksPhase(ctx context.Context, o options, kc *kafkaObserver, rep *Report) error {
	cfg := pubsub.Config{Brokers: o.Brokers, TopicPrefix: fmt.Sprintf("rtbench-marks-%d", time.Now().UnixNano()), Partitions: 12}
	if err := pubsub.EnsureTopics(ctx, cfg); err != nil {
		return err
	}
	if !o.Keep {
		defer func() {
			for _, suffix := range []string{".events", ".results", ".streams", ".poison", ".marks"} {
				kc.deleteTopic(cfg.TopicPrefix + suffix)
			}
		}()
	}
	progress("[crashmarks] writing %s single-event records to %s", fmtInt(crashMarksRecords), cfg.Topics().Events)
	if err := writeBacklog(cfg, crashMarksRecords); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	marks, err := pubsub.OpenMarks(cfg)
	if err != nil {
		return err
	}
	defer marks.Close()
	res := &CrashMarksResult{Records: crashMarksRecords, Target: targetCrashMarksCost}
	rep.CrashMarks = res
	// Warm up (page cache, connections, the broker's JIT), uncounted.
	if _, err := drain(ctx, cfg, marks, "off", cfg.TopicPrefix+"-warm"); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	var on, off []float64
	for i := range crashMarksRounds + 1 {
		guard := "off"
		if i == crashMarksRounds {
			guard = "careful"
			if err := leaveRunningMarks(ctx, marks, cfg.Partitions); err != nil {
				return err
			}
		} else if thueMorseOn(i) {
			guard = "on"
		}
		d, err := drain(ctx, cfg, marks, guard, fmt.Sprintf("%s-r%d", cfg.TopicPrefix, i))
		if err != nil {
			return fmt.Errorf("round %d (%s): %w", i+1, guard, err)
		}
		r := CrashMarksRound{Guard: guard, Seconds: d.Seconds(), RecordsSec: float64(crashMarksRecords-1) / d.Seconds()}
		res.Rounds = append(res.Rounds, r)
		progress("[crashmarks] round %d, guard %s: %s records/s", i+1, guard, fmtInt(int64(r.RecordsSec)))
		switch guard {
		case "on":
			on = append(on, r.RecordsSec)
		case "off":
			off = append(off, r.RecordsSec)
		default:
			res.CarefulSec = r.RecordsSec
		}
	}
	res.OnPerSec, res.OffPerSec = mean(on), mean(off)
	res.Cost = res.OffPerSec/res.OnPerSec - 1
	progress("[crashmarks] guard ON %s records/s, OFF %s records/s: cost %+.1f%% of the router's throughput (target <= %.0f%%); a careful pass runs %s records/s",
		fmtInt(int64(res.OnPerSec)), fmtInt(int64(res.OffPerSec)), res.Cost*100, targetCrashMarksCost*100, fmtInt(int64(res.CarefulSec)))
	return nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}

// writeBacklog writes n records of one ~100-byte event each over 64 streams.
func writeBacklog(cfg pubsub.Config, n int) error {
	pub, err := pubsub.NewPublisher(cfg, 0, 1, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	const batch = 1000
	for i := 0; i < n; i += batch {
		msgs := make([]*message.Message, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			stream := fmt.Sprintf("rtbench-marks-%02d", j%64)
			b, _ := json.Marshal(record.EventBatch{StreamID: stream, Events: []rtstream.Event{{
				ID: watermill.NewULID(), ReceivedAt: time.Now().UTC(), Data: json.RawMessage(fmt.Sprintf(`{"seq":%d,"pad":"0123456789012345678901234567890123456789"}`, j)),
			}}})
			m := message.NewMessage(watermill.NewULID(), b)
			m.Metadata.Set(pubsub.KeyMetadata, stream)
			msgs = append(msgs, m)
		}
		if err := pub.Publish(cfg.Topics().Events, msgs...); err != nil {
			return err
		}
	}
	return nil
}

// leaveRunningMarks makes every partition look left by a process that died.
func leaveRunningMarks(ctx context.Context, marks *pubsub.Marks, partitions int32) error {
	for p := range partitions {
		if err := marks.Put(ctx, p, []byte(`{"state":"running","owner":"rtbench-dead-process"}`)); err != nil {
			return err
		}
	}
	return nil
}

// drain runs a router in consumer group group until it has published a
// result for every record of the backlog, and returns the time from its first
// result to its last.
func drain(ctx context.Context, cfg pubsub.Config, marks *pubsub.Marks, guard, group string) (time.Duration, error) {
	quiet := watermill.NewSlogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	sub, err := pubsub.NewSubscriber(cfg, group, quiet)
	if err != nil {
		return 0, err
	}
	pub, err := pubsub.NewPublisher(cfg, 0, 4, nil)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	counted := &countingPublisher{Publisher: pub, topic: cfg.Topics().Results, want: crashMarksRecords, done: make(chan struct{})}
	var g *router.CrashGuard
	if guard != "off" {
		g = router.NewCrashGuard(marks, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}
	rt, err := router.New(router.Config{Topics: cfg.Topics(), ConsumerGroup: group, CrashGuard: g}, sub, counted, quiet)
	if err != nil {
		return 0, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	select {
	case <-counted.done:
	case err := <-done:
		return 0, fmt.Errorf("router stopped: %w", err)
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("%d of %d results after 5 minutes", counted.n.Load(), crashMarksRecords)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	stop()
	<-done
	if g != nil {
		if err := g.Release(context.WithoutCancel(ctx)); err != nil {
			return 0, err
		}
	}
	return time.Duration(counted.last.Load() - counted.first.Load()), nil
}

// countingPublisher notes when the first and the want-th result were
// published.
type countingPublisher struct {
	message.Publisher
	topic       string
	want        int64
	n           atomic.Int64
	first, last atomic.Int64 // unix nanoseconds
	once        sync.Once
	done        chan struct{}
}

func (c *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := c.Publisher.Publish(topic, msgs...); err != nil || topic != c.topic {
		return err
	}
	now := time.Now().UnixNano()
	c.first.CompareAndSwap(0, now)
	if c.n.Add(int64(len(msgs))) >= c.want {
		c.once.Do(func() {
			c.last.Store(now)
			close(c.done)
		})
	}
	return nil
}
