package e2e

// These tests drive the server through the Go client package, as a program
// using it would. The client is part of the black box's outside: it speaks
// HTTP only, like the rest of these tests.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream/client"
	"github.com/rtstream/rtstream/internal/testenv"
)

func newAPIClient(t *testing.T, base string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(base, append([]client.Option{client.WithAPIKey(apiKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientRoundTrip: the client creates a stream with a processor, finds
// it, sends to it (once, keyed and replayed), reads the results by
// subscription and by poll, reads a dead letter, and sees the stream's
// deletion end its subscription.
func TestClientRoundTrip(t *testing.T) {
	t.Parallel()
	s := startServer(t, "client", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "client")))
	c := newAPIClient(t, s.Base)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// A processor that does not compile: a 400 pointing at it.
	_, err := c.CreateStream(ctx, "bad", &client.Processor{Filter: "data.temp >"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || len(apiErr.Errors) == 0 || apiErr.Errors[0].Pointer != "/processor/filter" {
		t.Fatalf("a bad filter: %v, want a 400 pointing at /processor/filter", err)
	}

	proc := &client.Processor{Filter: "data.temp > 30", Map: `{"t": data.temp}`}
	st, err := c.CreateStream(ctx, "client-hot", proc)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID == "" || st.Name != "client-hot" || st.Processor == nil || *st.Processor != *proc || st.Links.Results != "/v1/streams/"+st.ID+"/results" {
		t.Fatalf("created %+v", st)
	}
	got, err := c.GetStream(ctx, st.ID)
	if err != nil || got.ID != st.ID || !got.CreatedAt.Equal(st.CreatedAt) {
		t.Fatalf("GetStream: %+v, %v", got, err)
	}
	putID := "client-put-" + randomSuffix()
	if _, created, err := c.PutStream(ctx, putID, "p", nil); err != nil || !created {
		t.Fatalf("PutStream new: created %v, %v", created, err)
	}
	if _, created, err := c.PutStream(ctx, putID, "p", nil); err != nil || created {
		t.Fatalf("PutStream again: created %v, %v", created, err)
	}
	if _, _, err := c.PutStream(ctx, putID, "other", nil); !client.IsConflict(err) {
		t.Fatalf("PutStream with another definition: %v, want 409", err)
	}
	var listed []string
	for st, err := range c.AllStreams(ctx, client.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, st.ID)
	}
	if !slices.Contains(listed, st.ID) || !slices.Contains(listed, putID) {
		t.Fatalf("AllStreams (pages of 1) = %v, want %s and %s in it", listed, st.ID, putID)
	}

	// Sends: one request, a keyed retried batch, and its replay.
	one, err := c.Send(ctx, st.ID, json.RawMessage(`{"temp":31}`), json.RawMessage(`{"temp":5}`))
	if err != nil || one.Accepted != 2 || one.IdempotencyKey != "" {
		t.Fatalf("Send: %+v, %v", one, err)
	}
	batch := []json.RawMessage{json.RawMessage(`{"temp":40}`), json.RawMessage(`{"temp":50}`)}
	keyed, err := c.SendBatch(ctx, st.ID, batch, client.SendOptions{Retry: true})
	if err != nil || keyed.Accepted != 2 || keyed.IdempotencyKey == "" || keyed.Replayed {
		t.Fatalf("SendBatch with Retry: %+v, %v", keyed, err)
	}
	again, err := c.SendBatch(ctx, st.ID, batch, client.SendOptions{IdempotencyKey: keyed.IdempotencyKey})
	if err != nil || !again.Replayed || !slices.Equal(again.EventIDs, keyed.EventIDs) {
		t.Fatalf("the same key again: %+v, %v; want the first answer replayed", again, err)
	}
	// The filter keeps temp > 30: three results, mapped.
	wantIDs := []string{one.EventIDs[0], keyed.EventIDs[0], keyed.EventIDs[1]}
	wantData := []string{`{"t":31}`, `{"t":40}`, `{"t":50}`}

	var results []client.Result
	var final error
	deleted := make(chan error, 1)
	for r, err := range c.Subscribe(ctx, st.ID, client.SubscribeOptions{Earliest: true}) {
		if err != nil {
			final = err
			break
		}
		results = append(results, r)
		if len(results) == len(wantIDs) {
			// Deleting the stream must end this subscription.
			go func() { deleted <- c.DeleteStream(ctx, st.ID) }()
		}
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	if !errors.Is(final, client.ErrStreamDeleted) {
		t.Fatalf("the subscription ended with %v, want ErrStreamDeleted", final)
	}
	if len(results) != len(wantIDs) {
		t.Fatalf("%d results, want %d", len(results), len(wantIDs))
	}
	for i, r := range results {
		if r.EventID != wantIDs[i] || r.StreamID != st.ID || !jsonEqual(r.Data, []byte(wantData[i])) || r.Cursor == "" ||
			r.ReceivedAt.IsZero() || r.ProcessedAt.Before(r.ReceivedAt) {
			t.Errorf("result %d: %+v; want event %s with data %s", i, r, wantIDs[i], wantData[i])
		}
	}
	if _, err := c.GetStream(ctx, st.ID); !client.IsNotFound(err) {
		t.Fatalf("GetStream after delete: %v, want 404", err)
	}
	if _, err := c.Send(ctx, st.ID, json.RawMessage(`1`)); !client.IsNotFound(err) {
		t.Fatalf("Send after delete: %v, want 404", err)
	}

	// Polls and dead letters, on a stream whose map fails on some events.
	dl, err := c.CreateStream(ctx, "client-dl", &client.Processor{Map: "data.a % data.b"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.Send(ctx, dl.ID, json.RawMessage(`{"a":7,"b":4}`), json.RawMessage(`{"a":1,"b":0}`))
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.Poll(ctx, dl.ID, client.PollOptions{Wait: 30 * time.Second})
	if err != nil || len(page.Results) != 1 || page.Results[0].EventID != sent.EventIDs[0] || string(page.Results[0].Data) != "3" || page.Next != page.Results[0].Cursor {
		t.Fatalf("Poll: %+v, %v; want the one result, 3", page, err)
	}
	start := time.Now()
	empty, err := c.Poll(ctx, dl.ID, client.PollOptions{After: page.Next, Wait: time.Second})
	if err != nil || len(empty.Results) != 0 || empty.Next != page.Next || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("a long poll after the last result: %+v, %v after %s; want an empty page after about 1s", empty, err, time.Since(start))
	}
	deadline := time.Now().Add(resultTimeout)
	for {
		letters, err := c.DeadLetters(ctx, dl.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(letters.DeadLetters) > 0 {
			d := letters.DeadLetters[0]
			if d.EventID != sent.EventIDs[1] || d.Reason == "" || !jsonEqual(d.Data, []byte(`{"a":1,"b":0}`)) {
				t.Fatalf("dead letter %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter for the event whose map divides by zero")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClientResumesThroughServerRestart: a client subscriber follows a
// stream while a client sender sends to it with keyed retries; the server
// is stopped and started again on the same address. Both must carry on by
// themselves, and the checker must find nothing lost, duplicated or
// reordered.
func TestClientResumesThroughServerRestart(t *testing.T) {
	t.Parallel()
	env := kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "client-restart"))
	if u := os.Getenv("RTSTREAM_TEST_REDIS_URL"); u != "" {
		// Idempotency-Keys then outlive the restart, so that a retry of a
		// send accepted just before it is answered, not sent again.
		env["REDIS_URL"] = u
	}
	s := startServer(t, "restart", env)
	c := newAPIClient(t, s.Base, client.WithRetryPolicy(client.RetryPolicy{
		MaxAttempts: 200, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	}))
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	st, err := c.CreateStream(ctx, "client-restart", nil)
	if err != nil {
		t.Fatal(err)
	}

	const (
		batches  = 150
		perBatch = 4
		sub      = "client-subscriber"
	)
	chk := newChecker()
	var received, acked, reconnects atomic.Int64
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	var wg sync.WaitGroup
	subErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		o := client.SubscribeOptions{
			Earliest:       true,
			InitialBackoff: 50 * time.Millisecond,
			MaxBackoff:     500 * time.Millisecond,
			OnReconnect: func(err error, wait time.Duration) {
				reconnects.Add(1)
				t.Logf("subscriber: reconnecting in %s after %v", wait, err)
			},
		}
		for r, err := range c.Subscribe(subCtx, st.ID, o) {
			if err != nil {
				subErr <- err
				return
			}
			chk.receivedAt(sub, st.ID, r.EventID, r.Cursor)
			received.Add(1)
		}
	}()

	sendErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range batches {
			events := make([]json.RawMessage, perBatch)
			for i := range events {
				events[i] = json.RawMessage(fmt.Sprintf(`{"batch":%d,"i":%d}`, b, i))
			}
			res, err := c.SendBatch(ctx, st.ID, events, client.SendOptions{Retry: true})
			if err != nil {
				sendErr <- fmt.Errorf("batch %d: %w", b, err)
				return
			}
			chk.ack(st.ID, "client-sender", res.EventIDs)
			acked.Add(int64(len(res.EventIDs)))
			time.Sleep(20 * time.Millisecond)
		}
		sendErr <- nil
	}()

	// Restart while both are busy: after a third of the sends, with
	// results flowing.
	clientWaitFor(t, 2*time.Minute, "a third of the events acknowledged and some received", func() bool {
		return acked.Load() >= batches*perBatch/3 && received.Load() > 0
	})
	t.Logf("stopping the server: %d acknowledged, %d received", acked.Load(), received.Load())
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	time.Sleep(time.Second) // both clients now find nobody listening
	s.restart()
	t.Logf("restarted: %d acknowledged, %d received", acked.Load(), received.Load())

	if err := <-sendErr; err != nil {
		t.Fatalf("sender: %v", err)
	}
	clientWaitFor(t, resultTimeout, "every acknowledged event received", func() bool {
		select {
		case err := <-subErr:
			t.Fatalf("the subscription ended: %v", err)
		default:
		}
		return chk.missing(sub, st.ID) == 0
	})
	// Anything after the last acknowledged result would be a duplicate:
	// give it a moment to show up.
	time.Sleep(500 * time.Millisecond)
	stopSub()
	wg.Wait()
	select {
	case err := <-subErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the subscription ended with %v, want context.Canceled", err)
		}
	default:
		t.Error("the subscription ended without an error after its context was canceled")
	}
	if reconnects.Load() == 0 {
		t.Error("the subscriber never reconnected: the restart did not reach it")
	}
	t.Logf("%d acknowledged, %d received, %d reconnects", acked.Load(), received.Load(), reconnects.Load())
	chk.report(t)
}

// clientWaitFor polls cond every 50ms until it holds, failing the test after
// timeout.
func clientWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTokensFromClientAndCLI: rtstreamctl token and client.CreateToken mint
// subscribe tokens; a client WithToken, and rtstreamctl given the token as
// its key, read the stream's results and nothing else.
func TestTokensFromClientAndCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t, "tokens", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "tokens")))
	c := newAPIClient(t, s.Base)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := c.CreateStream(ctx, "tokens", nil)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.Send(ctx, st.ID, json.RawMessage(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, st.ID, 5*time.Minute)
	if err != nil || time.Until(tok.ExpiresAt) > 5*time.Minute || time.Until(tok.ExpiresAt) < 4*time.Minute {
		t.Fatalf("CreateToken for 5m: %+v, %v", tok, err)
	}
	reader, err := client.New(s.Base, client.WithToken(tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	page, err := reader.Poll(ctx, st.ID, client.PollOptions{Wait: 10 * time.Second})
	if err != nil || len(page.Results) != 1 || page.Results[0].EventID != sent.EventIDs[0] {
		t.Fatalf("Poll WithToken: %+v, %v", page, err)
	}
	if _, err := reader.CreateStream(ctx, "not with a token", nil); client.StatusCode(err) != http.StatusForbidden {
		t.Errorf("CreateStream WithToken: %v; want 403", err)
	}
	if _, err := reader.CreateToken(ctx, st.ID, 0); client.StatusCode(err) != http.StatusForbidden {
		t.Errorf("a token minting a token: %v; want 403", err)
	}

	cli := ctl{t: t, bin: buildCLI(t), base: s.Base}
	token := strings.TrimSpace(cli.mustRun("", "token", "-q", "--ttl", "10m", st.ID))
	out := cli.mustRun("", "--key", token, "tail", "--from", "earliest", "-n", "1", st.ID)
	if !strings.Contains(out, sent.EventIDs[0]) {
		t.Errorf("tail with the CLI's token: %q", out)
	}
	if code, _, errOut := cli.run("", "--key", token, "delete", st.ID); code != 1 || !strings.Contains(errOut, "403") {
		t.Errorf("delete with a token: exit %d, %s; want 1 and the 403", code, errOut)
	}
}
