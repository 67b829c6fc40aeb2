package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
)

// fakeStreams knows every stream.
type fakeStreams struct{}

func (fakeStreams) Create(context.Context, rtstream.Stream) (rtstream.Stream, bool, error) {
	return rtstream.Stream{}, false, errors.New("not used")
}
func (fakeStreams) Get(_ context.Context, id string) (rtstream.Stream, error) {
	return rtstream.Stream{ID: id}, nil
}
func (fakeStreams) List(context.Context, string, string, int) ([]rtstream.Stream, error) {
	return nil, nil
}
func (fakeStreams) Delete(context.Context, string) error { return nil }

// fakeEvents counts sends. Each send first takes a verdict from fail (if one
// is queued) and waits for gate (if set).
type fakeEvents struct {
	sends atomic.Int64
	fail  chan error
	gate  chan struct{}
}

func (e *fakeEvents) Send(_ context.Context, _ string, data []json.RawMessage) ([]string, error) {
	n := e.sends.Add(1)
	if e.gate != nil {
		<-e.gate
	}
	select {
	case err := <-e.fail:
		return nil, err
	default:
	}
	ids := make([]string, len(data))
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%d-%d", n, i)
	}
	return ids, nil
}

// fakeIdempotency is a map-backed Idempotency; err, when set, fails Begin.
type fakeIdempotency struct {
	mu      sync.Mutex
	records map[string]*fakeRecord
	err     error
}

type fakeRecord struct {
	fp, token string
	done      bool
	status    int
	body      []byte
}

func (f *fakeIdempotency) Begin(_ context.Context, key, fp string) (rtstream.IdempotencyOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return rtstream.IdempotencyOutcome{}, f.err
	}
	r, ok := f.records[key]
	switch {
	case !ok:
		tok := fmt.Sprintf("t%d", len(f.records)+1)
		f.records[key] = &fakeRecord{fp: fp, token: tok}
		return rtstream.IdempotencyOutcome{State: rtstream.IdempotencyClaimed, Token: tok}, nil
	case r.fp != fp:
		return rtstream.IdempotencyOutcome{State: rtstream.IdempotencyMismatch}, nil
	case r.done:
		return rtstream.IdempotencyOutcome{State: rtstream.IdempotencyReplay, Answer: rtstream.IdempotencyAnswer{Status: r.status, Body: r.body}}, nil
	}
	return rtstream.IdempotencyOutcome{State: rtstream.IdempotencyInFlight}, nil
}

func (f *fakeIdempotency) Complete(_ context.Context, key, token string, a rtstream.IdempotencyAnswer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.records[key]; ok && r.token == token && !r.done {
		r.done, r.status, r.body = true, a.Status, a.Body
		return nil
	}
	return errors.New("claim lost")
}

func (f *fakeIdempotency) Release(_ context.Context, key, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.records[key]; ok && r.token == token && !r.done {
		delete(f.records, key)
	}
	return nil
}

const (
	keyA = "key-a-secret"
	keyB = "key-b-secret"
)

// newIdemServer serves the API with two API keys (two principals).
func newIdemServer(t *testing.T, ev *fakeEvents, idem *fakeIdempotency, sendTimeout time.Duration) string {
	t.Helper()
	auth, err := middleware.NewAuth(middleware.AuthConfig{Keys: []string{keyA, keyB}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewServer(Deps{
		Config:       Config{SendTimeout: sendTimeout},
		Streams:      fakeStreams{},
		Events:       ev,
		Idempotency:  idem,
		Authenticate: auth.Middleware,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

type sendReply struct {
	status int
	header http.Header
	body   string
}

// post sends body to the stream's events with the given API key and
// Idempotency-Key values (none: no header).
func post(t *testing.T, url, apiKey, contentType, body string, idemKeys ...string) sendReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", contentType)
	for _, k := range idemKeys {
		req.Header.Add(IdempotencyHeader, k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return sendReply{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return sendReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func newIdem() *fakeIdempotency { return &fakeIdempotency{records: map[string]*fakeRecord{}} }

func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{}
	base := newIdemServer(t, ev, newIdem(), time.Second)
	url := base + "/v1/streams/s1/events"
	tests := []struct {
		name string
		keys []string
		want int
	}{
		{"no key", nil, http.StatusAccepted},
		{"255 characters", []string{strings.Repeat("k", 255)}, http.StatusAccepted},
		{"printable ASCII with spaces", []string{`a b~!"#{}`}, http.StatusAccepted},
		{"256 characters", []string{strings.Repeat("k", 256)}, http.StatusBadRequest},
		{"non-ASCII", []string{"clé"}, http.StatusBadRequest},
		{"control character", []string{"a\tb"}, http.StatusBadRequest},
		{"two headers", []string{"a", "b"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		before := ev.sends.Load()
		rep := post(t, url, keyA, "application/json", `{"n":1}`, tt.keys...)
		if rep.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, rep.status, rep.body, tt.want)
		}
		if tt.want == http.StatusBadRequest {
			if ct := rep.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s: Content-Type %q, want problem+json", tt.name, ct)
			}
			if ev.sends.Load() != before {
				t.Errorf("%s: sent events for a refused key", tt.name)
			}
		}
	}
}

func TestIdempotencyAnswers(t *testing.T) {
	t.Parallel()
	type req struct {
		apiKey, contentType, body, key string
		stream                         string
		wantStatus                     int
		wantReplay                     bool // the answer equals the first one
	}
	tests := []struct {
		name      string
		fail      []error // verdicts for the first sends
		reqs      []req
		wantSends int64
	}{
		{"retries replay the first answer", nil, []req{
			{keyA, "application/json", `[1,2]`, "k", "s1", 202, false},
			{keyA, "application/json", `[1,2]`, "k", "s1", 202, true},
			{keyA, "application/json; charset=utf-8", `[1,2]`, "k", "s1", 202, true},
		}, 1},
		{"another body or content type is 422", nil, []req{
			{keyA, "application/json", `[1,2]`, "k", "s1", 202, false},
			{keyA, "application/json", `[1,3]`, "k", "s1", 422, false},
			{keyA, "application/x-ndjson", `[1,2]`, "k", "s1", 422, false},
		}, 1},
		{"the key is scoped by principal and stream", nil, []req{
			{keyA, "application/json", `1`, "k", "s1", 202, false},
			{keyB, "application/json", `1`, "k", "s1", 202, false},
			{keyA, "application/json", `1`, "k", "s2", 202, false},
			{keyA, "application/v1+json", `1`, "k", "s1", 202, true},
		}, 3},
		{"a 503 is not stored: the retry sends", []error{rtstream.ErrUnavailable}, []req{
			{keyA, "application/json", `1`, "k", "s1", 503, false},
			{keyA, "application/json", `1`, "k", "s1", 202, false},
			{keyA, "application/json", `1`, "k", "s1", 202, true},
		}, 2},
		{"an unconfirmed 503 keeps the claim: the retry waits and gets 409, nothing is sent twice",
			[]error{fmt.Errorf("%w: %w", rtstream.ErrUnavailable, rtstream.ErrUnconfirmed)}, []req{
				{keyA, "application/json", `1`, "k", "s1", 503, false},
				{keyA, "application/json", `1`, "k", "s1", 409, false},
			}, 1},
		{"a 400 is not stored: a corrected body is accepted", nil, []req{
			{keyA, "application/json", `{bad`, "k", "s1", 400, false},
			{keyA, "application/json", `{"ok":1}`, "k", "s1", 202, false},
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := &fakeEvents{fail: make(chan error, len(tt.fail))}
			for _, err := range tt.fail {
				ev.fail <- err
			}
			base := newIdemServer(t, ev, newIdem(), time.Second)
			first := map[string]string{} // the first 202 per scope
			for i, r := range tt.reqs {
				scope := r.apiKey + "/" + r.stream + "/" + r.key
				rep := post(t, base+"/v1/streams/"+r.stream+"/events", r.apiKey, r.contentType, r.body, r.key)
				if rep.status != r.wantStatus {
					t.Fatalf("request %d: %d %s, want %d", i, rep.status, rep.body, r.wantStatus)
				}
				replayed := rep.header.Get(ReplayedHeader) == "true"
				if replayed != r.wantReplay {
					t.Errorf("request %d: %s %q, want replayed=%v", i, ReplayedHeader, rep.header.Get(ReplayedHeader), r.wantReplay)
				}
				if r.wantReplay && rep.body != first[scope] {
					t.Errorf("request %d: replay %q differs from the first answer %q", i, rep.body, first[scope])
				}
				if rep.status == 202 && !r.wantReplay {
					first[scope] = rep.body
				}
			}
			if got := ev.sends.Load(); got != tt.wantSends {
				t.Errorf("%d sends, want %d", got, tt.wantSends)
			}
		})
	}
}

// TestIdempotencyConcurrent: duplicates that arrive while the first is in
// flight wait for its answer; one send, one answer for all.
func TestIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{gate: make(chan struct{})}
	base := newIdemServer(t, ev, newIdem(), 5*time.Second)
	url := base + "/v1/streams/s1/events"
	const n = 8
	replies := make([]sendReply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = post(t, url, keyA, "application/json", `{"x":1}`, "same") })
	}
	time.Sleep(200 * time.Millisecond) // all of them are in: one sending, the rest waiting
	close(ev.gate)
	wg.Wait()
	for i, r := range replies {
		if r.status != 202 || r.body != replies[0].body {
			t.Errorf("reply %d: %d %s, want 202 %s", i, r.status, r.body, replies[0].body)
		}
	}
	if got := ev.sends.Load(); got != 1 {
		t.Errorf("%d sends, want 1", got)
	}
}

// TestIdempotencyInFlightTooLong: a duplicate whose first request does not
// answer within the send timeout gets 409 with Retry-After, and sends nothing.
func TestIdempotencyInFlightTooLong(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{gate: make(chan struct{})}
	base := newIdemServer(t, ev, newIdem(), 300*time.Millisecond)
	url := base + "/v1/streams/s1/events"
	firstDone := make(chan sendReply, 1)
	go func() { firstDone <- post(t, url, keyA, "application/json", `1`, "slow") }()
	for ev.sends.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	rep := post(t, url, keyA, "application/json", `1`, "slow")
	if rep.status != http.StatusConflict || rep.header.Get("Retry-After") == "" {
		t.Errorf("duplicate in flight: %d (Retry-After %q) %s, want 409 with Retry-After", rep.status, rep.header.Get("Retry-After"), rep.body)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("answered 409 after %v, want a wait of about the send timeout", waited)
	}
	close(ev.gate)
	if first := <-firstDone; first.status != 202 {
		t.Errorf("first: %d %s", first.status, first.body)
	}
	if got := ev.sends.Load(); got != 1 {
		t.Errorf("%d sends, want 1", got)
	}
}

// TestIdempotencyStoreDown: without the store a keyed send fails closed
// (503, nothing sent); a send without a key is not affected.
func TestIdempotencyStoreDown(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{}
	idem := newIdem()
	idem.err = errors.New("connection refused")
	base := newIdemServer(t, ev, idem, time.Second)
	url := base + "/v1/streams/s1/events"
	rep := post(t, url, keyA, "application/json", `1`, "k")
	if rep.status != http.StatusServiceUnavailable || rep.header.Get("Retry-After") == "" {
		t.Errorf("keyed send with the store down: %d %s, want 503 with Retry-After", rep.status, rep.body)
	}
	if ev.sends.Load() != 0 {
		t.Error("sent events without the store")
	}
	if rep := post(t, url, keyA, "application/json", `1`); rep.status != http.StatusAccepted {
		t.Errorf("send without a key: %d %s, want 202", rep.status, rep.body)
	}
}

// TestAcceptedBodyUnchanged: the 202 body keeps the shape it had before
// answers were encoded once for replays.
func TestAcceptedBodyUnchanged(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	_ = json.NewEncoder(&want).Encode(map[string]any{"accepted": 2, "event_ids": []string{"a", "b"}})
	if got := acceptedBody([]string{"a", "b"}); string(got) != want.String() {
		t.Fatalf("acceptedBody = %q, want %q", got, want.String())
	}
}
