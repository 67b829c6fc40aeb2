package pubsub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
)

// writeResults produces n results records for each stream, keyed by stream
// id like the router's, and returns each stream's partition.
func writeResults(t *testing.T, cfg pubsub.Config, streams []string, n int) {
	t.Helper()
	sc := cfg.SaramaConfig()
	sc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		for _, s := range streams {
			b := record.ResultBatch{StreamID: s, Source: record.Position{Offset: int64(i)},
				Results: []rtstream.Result{{StreamID: s, EventID: fmt.Sprintf("%s-%d", s, i), Data: json.RawMessage(`{}`)}}}
			v, _ := json.Marshal(b)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: cfg.Topics().Results, Key: sarama.StringEncoder(s), Value: sarama.ByteEncoder(v)})
		}
	}
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func TestResultsReaderSharesOneReadAmongManyReaders(t *testing.T) {
	cfg := testConfig(t)
	streams := []string{"alpha", "beta", "gamma"}
	const perStream = 700
	writeResults(t, cfg, streams, perStream)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reader, err := pubsub.OpenResults(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	starts, err := reader.Follow(func(record.Position, string, []byte, record.Trace) {})
	if err != nil {
		t.Fatal(err)
	}
	part, err := reader.Partition("alpha")
	if err != nil {
		t.Fatal(err)
	}
	end := starts[part]
	if end < perStream {
		t.Fatalf("follower starts at %d in partition %d, want at least %d", end, part, perStream)
	}

	const readers = 50
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []string
			last := int64(-1)
			err := reader.Read(ctx, "alpha", part, 0, end, func(pos record.Position, b record.ResultBatch) error {
				if pos.Offset <= last {
					return fmt.Errorf("offset %d after %d", pos.Offset, last)
				}
				last = pos.Offset
				if b.StreamID != "alpha" {
					return fmt.Errorf("a record of %s", b.StreamID)
				}
				got = append(got, b.Results[0].EventID)
				if i == 0 {
					time.Sleep(time.Millisecond) // one slow reader: detached and continued, not stalling the rest
				}
				return nil
			})
			if err != nil {
				errs <- fmt.Errorf("reader %d: %w", i, err)
				return
			}
			if len(got) != perStream {
				errs <- fmt.Errorf("reader %d got %d records, want %d", i, len(got), perStream)
				return
			}
			for k, id := range got {
				if want := fmt.Sprintf("alpha-%d", k); id != want {
					errs <- fmt.Errorf("reader %d: record %d is %s, want %s", i, k, id, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One read of the partition served them all, apart from the slow one
	// catching up in a few more and a straggler or two.
	if n := reader.SharedReads(); n > 10 {
		t.Errorf("%d partition reads for %d readers: reads are not shared", n, readers)
	} else {
		t.Logf("%d partition reads served %d readers", n, readers)
	}
}
