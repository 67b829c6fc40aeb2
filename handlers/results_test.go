package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
)

// TestSSEWriteDeadlineAfterIdle: a subscriber that stayed idle longer than
// the write timeout (no result, no heartbeat yet) and then gets results
// bigger than the write buffer must receive them: the deadline is armed
// for each write, not left over from the last flush. A stale deadline made
// the first large write after a quiet spell fail as if the client had
// stopped reading, and cut a healthy subscriber.
func TestSSEWriteDeadlineAfterIdle(t *testing.T) {
	// Long enough that a stall of the reading side on a loaded machine
	// does not trip it: the stale deadline this is about had expired
	// 2 timeouts before the write, and is missed by any margin.
	const writeTimeout = time.Second
	f := newWSFixture(t, Config{WriteTimeout: writeTimeout, Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/v1/streams/s1/results", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var feed *wsFakeFeed
	select {
	case feed = <-f.feeds:
	case <-ctx.Done():
		t.Fatal("no subscription")
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != ": connected\n" {
		t.Fatalf("first line %q, %v", line, err)
	}

	big := json.RawMessage(`"` + strings.Repeat("x", 256<<10) + `"`)
	for i := range 2 {
		time.Sleep(3 * writeTimeout) // idle past the last flush's deadline
		feed.c <- []rtstream.Delivery{{
			Cursor: rtstream.Cursor{Partition: 0, Offset: int64(i)},
			Result: rtstream.Result{StreamID: "s1", EventID: "e", Data: big},
		}}
		var data string
		for data == "" {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("result %d: the stream ended: %v", i, err)
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				data = d
			}
		}
		var r rtstream.Result
		if err := json.Unmarshal([]byte(data), &r); err != nil || len(r.Data) != len(big) {
			t.Fatalf("result %d: %d bytes of data, %v; want %d", i, len(r.Data), err, len(big))
		}
	}
}
