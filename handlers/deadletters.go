package handlers

import (
	"context"
	"net/http"

	"github.com/rtstream/rtstream"
)

// DeadLetters reads a stream's dead letters: the events its processor failed
// on, and those of records the pipeline could not read.
type DeadLetters interface {
	// Read returns up to limit dead letters after the cursor after (""
	// from the first), and the cursor of the next page, "" when there is
	// none yet. A malformed cursor is an error wrapping rtstream.ErrInvalid.
	// A page may hold fewer than limit (none, even) and still name a next
	// page: a read does bounded work.
	Read(ctx context.Context, streamID, after string, limit int) ([]rtstream.DeadLetter, string, error)
}

// maxDeadLetterCursor bounds the after parameter: a cursor is two numbers.
const maxDeadLetterCursor = 64

func (s *server) deadLetters(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	limit, after, perr := queryPage(r.URL.Query(), func(a string) bool { return len(a) <= maxDeadLetterCursor },
		"after is not a dead-letters cursor", "invalid cursor")
	if perr != nil {
		s.badParam(w, r, perr)
		return
	}
	// The stream must exist (read-your-writes, like every route): a
	// deleted stream's dead letters are not served.
	if err := s.streamExists(r, id); err != nil {
		s.fail(w, r, err)
		return
	}
	letters, next := []rtstream.DeadLetter{}, ""
	if s.DeadLetters != nil {
		var err error
		if letters, next, err = s.DeadLetters.Read(r.Context(), id, after, limit); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": letters, "next": next})
}
