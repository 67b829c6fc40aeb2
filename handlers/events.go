package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/rtstream/rtstream/problem"
)

// sendEvents accepts one request's events and answers 202 only after Kafka
// acknowledged all of them.
func (s *server) sendEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	kind, ok := contentKind(r.Header.Get("Content-Type"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType,
			"send application/json (one event or an array of events) or application/x-ndjson (one event per line)"))
		return
	}
	if _, err := s.Streams.Get(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)))
			return
		}
		badRequest(w, r, "reading body: "+err.Error())
		return
	}
	events, err := decodeEvents(kind, body)
	if err != nil {
		var de *decodeError
		if errors.As(err, &de) {
			badRequest(w, r, de.detail, de.fields...)
		} else {
			badRequest(w, r, err.Error())
		}
		return
	}
	if len(events) > s.cfg.MaxBatch {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("%d events in one request, over the limit of %d", len(events), s.cfg.MaxBatch)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SendTimeout)
	defer cancel()
	ids, err := s.Events.Send(ctx, id, events)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Metrics.EventsAccepted(len(ids))
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(ids), "event_ids": ids})
}
