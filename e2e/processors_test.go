package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/internal/testenv"
)

// deadLetter is one entry of the dead-letters route.
type deadLetter struct {
	EventID  string          `json:"event_id"`
	Reason   string          `json:"reason"`
	FailedAt time.Time       `json:"failed_at"`
	Data     json.RawMessage `json:"data"`
}

type deadLetterPage struct {
	DeadLetters []deadLetter `json:"dead_letters"`
	Next        string       `json:"next"`
}

// createProcessed creates a stream with a processor and checks the 201.
func createProcessed(t *testing.T, base, filter, mapping string) streamObj {
	t.Helper()
	body := mustJSON(t, map[string]any{"name": "processed", "processor": map[string]string{"filter": filter, "map": mapping}})
	rep := call(t, http.MethodPost, base+"/v1/streams", "application/json", body)
	if rep.Status != http.StatusCreated {
		t.Fatalf("create with a processor: %s, want 201", rep)
	}
	var st struct {
		streamObj
		Processor struct{ Filter, Map string } `json:"processor"`
	}
	decodeJSON(t, "created stream", rep.Body, &st)
	if st.Processor.Filter != filter || st.Processor.Map != mapping {
		t.Errorf("created stream's processor %+v, want filter %q map %q", st.Processor, filter, mapping)
	}
	return st.streamObj
}

// readDeadLetters reads one page.
func readDeadLetters(t *testing.T, base, id, query string) deadLetterPage {
	t.Helper()
	rep := call(t, http.MethodGet, base+"/v1/streams/"+id+"/dead-letters"+query, "", nil)
	if rep.Status != http.StatusOK {
		t.Fatalf("dead letters%s: %s, want 200", query, rep)
	}
	var p deadLetterPage
	decodeJSON(t, "dead letters page", rep.Body, &p)
	if p.DeadLetters == nil {
		t.Fatalf("dead letters%s: no dead_letters array: %s", query, rep.Body)
	}
	return p
}

// allDeadLetters follows next to the end with pages of limit.
func allDeadLetters(t *testing.T, base, id string, limit int) (all []deadLetter, pages int) {
	t.Helper()
	after := ""
	for pages = 1; pages < 100; pages++ {
		p := readDeadLetters(t, base, id, fmt.Sprintf("?limit=%d&after=%s", limit, url.QueryEscape(after)))
		if len(p.DeadLetters) > limit {
			t.Fatalf("page of %d dead letters with limit %d", len(p.DeadLetters), limit)
		}
		all = append(all, p.DeadLetters...)
		if p.Next == "" {
			return all, pages
		}
		after = p.Next
	}
	t.Fatalf("dead letters: still a next page after 100 pages")
	return nil, 0
}

// awaitDeadLetters polls until the stream has at least n dead letters.
func awaitDeadLetters(t *testing.T, base, id string, n int) []deadLetter {
	t.Helper()
	deadline := time.Now().Add(resultTimeout)
	for {
		all, _ := allDeadLetters(t, base, id, 1000)
		if len(all) >= n || time.Now().After(deadline) {
			return all
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestProcessorFilterMapAndDeadLetter: a stream with a filter and a map gets
// the mapped results of the events the filter keeps; an event whose data
// breaks the filter becomes exactly one dead letter, with its reason and its
// data, and is not retried, while the other events of the same request still
// make their results.
func TestProcessorFilterMapAndDeadLetter(t *testing.T) {
	t.Parallel()
	s := startServer(t, "proc", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "proc")))
	st := createProcessed(t, s.Base, "data.temp > 30", `{"id": data.id, "f": data.temp * 2 + 1, "ev": event_id}`)
	feed := openSSE(t, s.Base+"/v1/streams/"+st.ID+"/results")
	eventsURL := s.Base + "/v1/streams/" + st.ID + "/events"

	ids := send(t, eventsURL, "application/json",
		[]byte(`[{"id":1,"temp":31},{"id":2,"temp":10},{"id":3,"temp":"hot"},{"id":4,"temp":40}]`), 4)
	// The next request's only event is the sentinel: nothing else may come
	// before its result.
	sentinel := send(t, eventsURL, "application/x-ndjson", []byte(`{"id":5,"temp":99.5}`+"\n"), 1)
	got := feed.awaitResults(t, 3, resultTimeout)
	want := []json.RawMessage{
		json.RawMessage(fmt.Sprintf(`{"id":1,"f":63,"ev":%q}`, ids[0])),
		json.RawMessage(fmt.Sprintf(`{"id":4,"f":81,"ev":%q}`, ids[3])),
		json.RawMessage(fmt.Sprintf(`{"id":5,"f":200,"ev":%q}`, sentinel[0])),
	}
	checkResults(t, st.ID, got, []string{ids[0], ids[3], sentinel[0]}, want)

	// The dead letter was written before the sentinel's record was
	// processed: it is there, once.
	dls, _ := allDeadLetters(t, s.Base, st.ID, 100)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	dl := dls[0]
	if dl.EventID != ids[2] || !jsonEqual(dl.Data, []byte(`{"id":3,"temp":"hot"}`)) ||
		!strings.Contains(dl.Reason, "filter") || !strings.Contains(dl.Reason, "string > int") || dl.FailedAt.IsZero() {
		t.Fatalf("dead letter %+v; want event %s, its data and a reason naming the filter's failure", dl, ids[2])
	}

	// Not retried: counted once as a dead letter, nothing poisoned whole,
	// and nothing more arrives later.
	time.Sleep(time.Second)
	m := scrape(t, s.Base)
	for series, want := range map[string]float64{
		`rtstream_processed_events_total{outcome="dead_letter"}`: 1,
		`rtstream_processed_events_total{outcome="filtered"}`:    1,
		`rtstream_processed_events_total{outcome="result"}`:      3,
		`rtstream_poison_messages_total{reason="other"}`:         0,
		`rtstream_poison_messages_total{reason="unreadable"}`:    0,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if dls, _ := allDeadLetters(t, s.Base, st.ID, 100); len(dls) != 1 {
		t.Fatalf("%d dead letters a second later, want still 1", len(dls))
	}
}

// TestProcessorCompileErrors: a bad expression is refused at creation with a
// 400 naming the field and the position.
func TestProcessorCompileErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, "proccomp", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "proccomp")))
	tests := []struct {
		filter, mapping, pointer, position string
	}{
		{filter: "data.temp >", pointer: "/processor/filter", position: "line 1, column 11"},
		{filter: "data.temp > 1 && tmep", pointer: "/processor/filter", position: "line 1, column 18"},
		{filter: "len(data)", pointer: "/processor/filter", position: "line 1, column 1"},
		{filter: "data.ok", mapping: "{\n  \"a\": data.a +* 2}", pointer: "/processor/map", position: "line 2, column 16"},
	}
	for _, tc := range tests {
		body := mustJSON(t, map[string]any{"processor": map[string]string{"filter": tc.filter, "map": tc.mapping}})
		rep := call(t, http.MethodPost, s.Base+"/v1/streams", "application/json", body)
		p := checkProblem(t, "bad processor "+tc.filter+tc.mapping, rep, http.StatusBadRequest)
		var errs struct {
			Errors []struct{ Pointer, Detail string } `json:"errors"`
		}
		decodeJSON(t, "problem", rep.Body, &errs)
		if len(errs.Errors) != 1 || errs.Errors[0].Pointer != tc.pointer || !strings.Contains(errs.Errors[0].Detail, tc.position) ||
			!strings.Contains(p.Detail, tc.position) {
			t.Errorf("%q / %q: %s; want pointer %s at %s", tc.filter, tc.mapping, rep.Body, tc.pointer, tc.position)
		}
	}
	// PUT refuses the same way, and nothing was created.
	rep := call(t, http.MethodPut, s.Base+"/v1/streams/bad-proc", "application/json", []byte(`{"processor":{"map":"data +"}}`))
	checkProblem(t, "PUT with a bad map", rep, http.StatusBadRequest)
	checkProblem(t, "GET after the refused PUT", call(t, http.MethodGet, s.Base+"/v1/streams/bad-proc", "", nil), http.StatusNotFound)
}

// TestDeadLetterPaging: dead letters page in order with limit and next, each
// once; bad parameters are 400, an unknown stream 404.
func TestDeadLetterPaging(t *testing.T) {
	t.Parallel()
	s := startServer(t, "procpage", kafkaEnv(testenv.KafkaBrokers(t), newPrefix(t, "procpage")))
	st := createProcessed(t, s.Base, "", "data.n * 2")
	other := createProcessed(t, s.Base, "", "data.n * 2")
	eventsURL := s.Base + "/v1/streams/" + st.ID + "/events"

	var ids []string
	for i := range 3 {
		// Another stream's dead letters may share the partition: they
		// must not show.
		send(t, s.Base+"/v1/streams/"+other.ID+"/events", "application/json", []byte(`{"n":"x"}`), 1)
		ids = append(ids, send(t, eventsURL, "application/json", []byte(fmt.Sprintf(`[{"n":"a%d"},{"n":"b%d"}]`, i, i)), 2)...)
	}
	ids = append(ids, send(t, eventsURL, "application/json", []byte(`{"n":null}`), 1)...)
	if all := awaitDeadLetters(t, s.Base, st.ID, len(ids)); len(all) != len(ids) {
		t.Fatalf("%d dead letters, want %d", len(all), len(ids))
	}

	for _, limit := range []int{1, 2, 3, 7, 1000} {
		all, pages := allDeadLetters(t, s.Base, st.ID, limit)
		if len(all) != len(ids) {
			t.Fatalf("limit %d: %d dead letters, want %d", limit, len(all), len(ids))
		}
		for i, dl := range all {
			if dl.EventID != ids[i] || dl.Reason == "" || dl.FailedAt.IsZero() {
				t.Fatalf("limit %d: dead letter %d is %+v, want event %s in order", limit, i, dl, ids[i])
			}
		}
		if min := (len(ids) + limit - 1) / limit; pages < min {
			t.Errorf("limit %d: %d pages, want at least %d", limit, pages, min)
		}
	}
	first := readDeadLetters(t, s.Base, st.ID, "")
	if len(first.DeadLetters) != len(ids) || first.Next != "" {
		t.Errorf("default page: %d dead letters, next %q", len(first.DeadLetters), first.Next)
	}

	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?after=nonsense", "?after=-1-0", "?after=" + strings.Repeat("9", 100)} {
		checkProblem(t, "dead letters"+q, call(t, http.MethodGet, s.Base+"/v1/streams/"+st.ID+"/dead-letters"+q, "", nil), http.StatusBadRequest)
	}
	checkProblem(t, "unknown stream", call(t, http.MethodGet, s.Base+"/v1/streams/no-such-stream/dead-letters", "", nil), http.StatusNotFound)
	// A passthrough stream has none.
	plain := createStream(t, s.Base+"/v1/streams", "plain")
	if p := readDeadLetters(t, s.Base, plain.ID, ""); len(p.DeadLetters) != 0 || p.Next != "" {
		t.Errorf("a passthrough stream's dead letters: %+v", p)
	}
}
