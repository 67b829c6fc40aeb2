package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

type pollPage struct {
	Results []struct {
		Cursor string `json:"cursor"`
		result
	} `json:"results"`
	Next string `json:"next"`
}

func poll(t *testing.T, url string) pollPage {
	t.Helper()
	rep := call(t, http.MethodGet, url, "", nil)
	if rep.Status != http.StatusOK || mediaType(rep.Header.Get("Content-Type")) != "application/json" {
		t.Fatalf("GET %s: %s (%s), want 200 JSON", url, rep, rep.Header.Get("Content-Type"))
	}
	var p pollPage
	decodeJSON(t, "poll page", rep.Body, &p)
	return p
}

// TestPollPagesAndLongPoll reads results as JSON pages: from the start, in
// pages of limit, each page's next cursor continuing where the last ended
// (also inside one request's batch); a long poll with nothing to return
// waits for the next result and answers as soon as it exists.
func TestPollPagesAndLongPoll(t *testing.T) {
	t.Parallel()
	s := startServer(t, "poll", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "poll")))
	st := createStream(t, s.Base+"/v1/streams", "poll")
	results := s.Base + st.Links.Results

	var body []byte
	body = append(body, '[')
	for i := 0; i < 25; i++ {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"n":%d}`, i)
	}
	body = append(body, ']')
	ids := send(t, s.Base+st.Links.Events, "application/json", body, 25)

	// An SSE subscriber to know when all results exist.
	feed := openSSEWith(t, results+"?from=earliest", nil)
	feed.awaitResults(t, 25, 30*time.Second)

	var got []string
	next := ""
	for page := 0; len(got) < 25; page++ {
		if page > 5 {
			t.Fatalf("more than 5 pages of 10 for 25 results; got %d", len(got))
		}
		url := results + "?limit=10"
		if next != "" {
			url += "&after=" + next
		}
		p := poll(t, url)
		if len(p.Results) == 0 || len(p.Results) > 10 {
			t.Fatalf("page %d has %d results, want 1..10", page, len(p.Results))
		}
		for _, r := range p.Results {
			if r.Cursor == "" {
				t.Fatalf("a result without a cursor on page %d", page)
			}
			got = append(got, r.EventID)
		}
		if p.Next != p.Results[len(p.Results)-1].Cursor {
			t.Fatalf("next %q is not the last result's cursor %q", p.Next, p.Results[len(p.Results)-1].Cursor)
		}
		next = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("pages gave %v, want %v", got, ids)
	}

	// Nothing after the last cursor: without wait, an empty page at once
	// that keeps the cursor.
	p := poll(t, results+"?after="+next)
	if len(p.Results) != 0 || p.Next != next {
		t.Fatalf("empty poll: %d results, next %q; want none and %q", len(p.Results), p.Next, next)
	}

	// A long poll waits for the next result.
	type answer struct {
		page pollPage
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		rep, err := request(ctx, http.MethodGet, results+"?wait=30s&after="+next, "", nil, nil)
		var a answer
		if err == nil && rep.Status != http.StatusOK {
			err = fmt.Errorf("long poll: %s", rep)
		}
		if err == nil {
			err = json.Unmarshal(rep.Body, &a.page)
		}
		a.err = err
		done <- a
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case a := <-done:
		t.Fatalf("the long poll answered before any result existed: %+v %v", a.page, a.err)
	default:
	}
	late := send(t, s.Base+st.Links.Events, "application/json", []byte(`{"late":true}`), 1)
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if len(a.page.Results) != 1 || a.page.Results[0].EventID != late[0] {
		t.Fatalf("long poll answered %+v, want the late event %s", a.page, late[0])
	}
}
