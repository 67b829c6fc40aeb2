package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// baselineKeys and baselineValueBytes shape the raw producer's records like
// the server's traffic: many keys spread over every partition, small values.
const (
	baselineKeys       = 100
	baselineValueBytes = 100
	baselinePartitions = 12
)

// runBaseline produces to a fresh topic with a raw Sarama AsyncProducer, with
// the same no-loss settings as the server, as fast as the producer takes
// records, for d. Its acknowledged records per second are the ceiling that
// batch ingest through the server is compared with: the server cannot get a
// record into Kafka faster than the client library it uses.
func runBaseline(ctx context.Context, kc *kafkaObserver, d time.Duration) (*BaselineResult, error) {
	topic := fmt.Sprintf("rtbench-baseline-%d", time.Now().Unix())
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := kc.createTopic(setupCtx, topic, baselinePartitions)
	cancel()
	if err != nil {
		return nil, err
	}
	defer kc.deleteTopic(topic)

	producer, err := sarama.NewAsyncProducer(kc.brokers, saramaConfig())
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}

	keys, values := baselineRecords()

	var (
		acked, failed atomic.Int64
		firstErr      atomic.Value
		wg            sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range producer.Successes() {
			acked.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range producer.Errors() {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, e.Err.Error())
		}
	}()

	stopProgress := everySecond("baseline", func(elapsed time.Duration, last int64) (int64, string) {
		n := acked.Load()
		return n, fmt.Sprintf("%s acked, %s records/s", fmtInt(n), fmtInt(n-last))
	})
	start := time.Now()
	timer := time.NewTimer(d)
	var sent int64
feed:
	for i := 0; ; i++ {
		msg := &sarama.ProducerMessage{Topic: topic, Key: keys[i%baselineKeys], Value: values[i%len(values)]}
		select {
		case producer.Input() <- msg:
			sent++
		case <-timer.C:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	inWindow := acked.Load()
	elapsed := time.Since(start)
	stopProgress()
	producer.AsyncClose()
	wg.Wait()

	res := &BaselineResult{
		Topic:        topic,
		Seconds:      elapsed.Seconds(),
		Sent:         sent,
		Acked:        acked.Load(),
		Failed:       failed.Load(),
		EventsPerSec: float64(inWindow) / elapsed.Seconds(),
	}
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	progress("[baseline] %s records/s acknowledged (%s sent, %s acked, %d failed)",
		fmtInt(int64(res.EventsPerSec)), fmtInt(sent), fmtInt(res.Acked), res.Failed)
	if res.Failed > 0 {
		return res, fmt.Errorf("%d records failed, first: %s", res.Failed, res.FirstError)
	}
	return res, nil
}

// baselineRecords are the keys and the ~100-byte random values the
// baseline's records cycle through.
func baselineRecords() (keys, values []sarama.Encoder) {
	keys = make([]sarama.Encoder, baselineKeys)
	for i := range keys {
		keys[i] = sarama.StringEncoder("key-" + strconv.Itoa(i))
	}
	values = make([]sarama.Encoder, 256)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range values {
		v := make([]byte, baselineValueBytes)
		for j := range v {
			v[j] = alphabet[rand.IntN(len(alphabet))]
		}
		values[i] = sarama.ByteEncoder(v)
	}
	return keys, values
}

// everySecond prints a progress line for phase once a second until the
// returned stop is called. line gets the elapsed time and the counter it
// returned last time, and returns the new counter and the text.
func everySecond(phase string, line func(elapsed time.Duration, last int64) (int64, string)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				el := time.Since(start)
				var text string
				last, text = line(el, last)
				progress("[%s] %2.0fs %s", phase, el.Seconds(), text)
			}
		}
	}()
	return func() { close(done); <-finished }
}
