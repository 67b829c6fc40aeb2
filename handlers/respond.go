package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/observability"
	"github.com/rtstream/rtstream/problem"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with the problem that err stands for. Errors the contract does
// not name are logged and answered 500 without their text.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var status int
	switch {
	case errors.Is(err, rtstream.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, rtstream.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, rtstream.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, rtstream.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, rtstream.ErrUnconfirmed):
		observability.Logger(r.Context(), s.log).Warn("kafka did not confirm in time", "err", err)
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable,
			Detail: "Kafka did not confirm the request in time: its events may still be stored. " +
				"Retry with the same Idempotency-Key to learn the outcome without adding them twice", RetryAfter: 1})
		return
	case errors.Is(err, rtstream.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		observability.Logger(r.Context(), s.log).Warn("kafka unavailable", "err", err)
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable, Detail: unavailableDetail(r), RetryAfter: 1})
		return
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		status = 499
		problem.Write(w, r, problem.Problem{Status: status, Title: "Client Closed Request"})
		return
	default:
		observability.Logger(r.Context(), s.log).Error("internal error", "err", err)
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal error"))
		return
	}
	problem.Write(w, r, problem.New(status, err.Error()))
}

// badRequest answers 400 with detail.
func badRequest(w http.ResponseWriter, r *http.Request, detail string, errs ...problem.FieldError) {
	p := problem.New(http.StatusBadRequest, detail)
	p.Errors = errs
	problem.Write(w, r, p)
}

// lookupStream reads a stream from the registry under SEND_TIMEOUT: the
// strict read is a Kafka round trip, and no request may hang on a broker that
// accepts connections but does not answer (it gets 503 instead).
func (s *server) lookupStream(r *http.Request, id string) (rtstream.Stream, error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SendTimeout)
	defer cancel()
	return s.visible(ctx, principal(r), id)
}

// streamExists is lookupStream for routes that only need to know.
func (s *server) streamExists(r *http.Request, id string) error {
	_, err := s.lookupStream(r, id)
	return err
}

// unavailableDetail words a 503 for what the request asked: a write is told
// that nothing was accepted; a read, which accepts nothing, only that Kafka
// did not answer.
func unavailableDetail(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return "Kafka did not answer in time; retry later"
	}
	return "Kafka did not acknowledge the request in time; nothing was accepted, retry later"
}
