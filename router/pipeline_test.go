package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/pubsub"
	"github.com/rtstream/rtstream/record"
	"github.com/rtstream/rtstream/router"
)

// streams is a registry in memory; err, when set, is every lookup's answer.
type streams struct {
	defs  map[string]rtstream.Stream
	err   error
	calls int
}

func (s *streams) GetCached(_ context.Context, id string) (rtstream.Stream, error) {
	s.calls++
	if s.err != nil {
		return rtstream.Stream{}, s.err
	}
	st, ok := s.defs[id]
	if !ok {
		return rtstream.Stream{}, fmt.Errorf("stream %s: %w", id, rtstream.ErrNotFound)
	}
	return st, nil
}

func eventsRecord(t *testing.T, streamID string, data ...string) *message.Message {
	t.Helper()
	in := record.EventBatch{StreamID: streamID}
	for i, d := range data {
		in.Events = append(in.Events, rtstream.Event{ID: fmt.Sprintf("e%d", i), ReceivedAt: time.Unix(1, 0).UTC(), Data: json.RawMessage(d)})
	}
	payload, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return message.NewMessage("m", payload)
}

func TestPipelineProcessors(t *testing.T) {
	reg := &streams{defs: map[string]rtstream.Stream{
		"proc":  {ID: "proc", Processor: &rtstream.Processor{Filter: "data.temp > 30", Map: `{"t": data.temp}`}},
		"plain": {ID: "plain"},
		"stale": {ID: "stale", Processor: &rtstream.Processor{Filter: "data >"}},
	}}
	p := router.NewPipeline(reg, nil)
	tests := []struct {
		name, stream string
		data         []string
		results      []string // "id=data"
		dead         []string // "id: reason part"
	}{
		{name: "filter, map and a dead letter", stream: "proc",
			data:    []string{`{"temp":31}`, `{"temp":1}`, `{"temp":"hot"}`, `{"temp":40}`},
			results: []string{`e0={"t":31}`, `e3={"t":40}`},
			dead:    []string{"e2: string > int"}},
		{name: "everything filtered makes no record", stream: "proc", data: []string{`{"temp":1}`}},
		{name: "passthrough", stream: "plain", data: []string{`{"b":1}`}, results: []string{`e0={"b":1}`}},
		{name: "deleted stream is a passthrough", stream: "gone", data: []string{`1`}, results: []string{`e0=1`}},
		{name: "definition that does not compile", stream: "stale", data: []string{`1`, `2`},
			dead: []string{"e0: does not compile", "e1: does not compile"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, dead, err := p.Process(eventsRecord(t, tc.stream, tc.data...))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if len(out) > 1 {
				t.Fatalf("%d results records, want at most 1", len(out))
			}
			for _, m := range out {
				var b record.ResultBatch
				if err := json.Unmarshal(m.Payload, &b); err != nil {
					t.Fatal(err)
				}
				for _, r := range b.Results {
					got = append(got, r.EventID+"="+string(r.Data))
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.results, " ") {
				t.Errorf("results %q, want %q", got, tc.results)
			}
			if len(dead) != len(tc.dead) {
				t.Fatalf("%d dead letters, want %d", len(dead), len(tc.dead))
			}
			for i, m := range dead {
				var r struct {
					StreamID string          `json:"stream_id"`
					EventID  string          `json:"event_id"`
					Reason   string          `json:"reason"`
					Data     json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(m.Payload, &r); err != nil {
					t.Fatal(err)
				}
				id, reason, _ := strings.Cut(tc.dead[i], ": ")
				if r.StreamID != tc.stream || r.EventID != id || !strings.Contains(r.Reason, reason) ||
					m.Metadata.Get(pubsub.KeyMetadata) != tc.stream || m.Metadata.Get(pubsub.DeadLetterMetadata) == "" {
					t.Errorf("dead letter %d: %+v %v; want %s", i, r, m.Metadata, tc.dead[i])
				}
			}
		})
	}
}

func TestPipelineLookupFailureIsRetried(t *testing.T) {
	p := router.NewPipeline(&streams{err: fmt.Errorf("registry: %w", rtstream.ErrUnavailable)}, nil)
	_, _, err := p.Process(eventsRecord(t, "s", `1`))
	if err == nil || router.IsPermanent(err) || !errors.Is(err, rtstream.ErrUnavailable) {
		t.Fatalf("err = %v; want a transient error", err)
	}
}
