package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/problem"
)

// SourceChecker checks, at creation, that a source stream's topic can be
// followed: an error wrapping rtstream.ErrInvalid says why not (the topic
// is missing, not readable, or one of rtstream's own), rtstream.ErrUnavailable
// that Kafka did not answer.
type SourceChecker interface {
	CheckTopic(ctx context.Context, topic string) error
}

// maxSourceKey bounds a source's key filter.
const maxSourceKey = 1024

// checkSource answers the problem of a source definition that cannot be
// created, and reports whether it can. The order is the contract's: the
// definition's shape (400), then whether this deployment lets streams
// follow the topic (403, before anything about the topic is revealed),
// then whether the topic exists and is readable (422).
func (s *server) checkSource(w http.ResponseWriter, r *http.Request, src *rtstream.Source) bool {
	if src.Format == "" {
		src.Format = rtstream.SourceJSON
	}
	if src.From == "" {
		src.From = rtstream.SourceLatest
	}
	switch {
	case src.Topic == "":
		badRequest(w, r, "source: topic is required", problem.FieldError{Pointer: "/source/topic", Detail: "required"})
		return false
	case src.Format != rtstream.SourceJSON && src.Format != rtstream.SourceText && src.Format != rtstream.SourceBytes:
		badRequest(w, r, fmt.Sprintf("source: format %q: want json, text or bytes", src.Format),
			problem.FieldError{Pointer: "/source/format", Detail: "want json, text or bytes"})
		return false
	case src.From != rtstream.SourceEarliest && src.From != rtstream.SourceLatest:
		badRequest(w, r, fmt.Sprintf("source: from %q: want earliest or latest", src.From),
			problem.FieldError{Pointer: "/source/from", Detail: "want earliest or latest"})
		return false
	case len(src.Key) > maxSourceKey:
		badRequest(w, r, fmt.Sprintf("source: key is longer than %d bytes", maxSourceKey),
			problem.FieldError{Pointer: "/source/key", Detail: "too long"})
		return false
	}
	if s.Sources == nil || !topicAllowed(s.SourceTopics, src.Topic) {
		problem.Write(w, r, problem.New(http.StatusForbidden,
			fmt.Sprintf("streams may not follow topic %s here: it is not in SOURCE_TOPICS", src.Topic)))
		return false
	}
	err := s.Sources.CheckTopic(r.Context(), src.Topic)
	if errors.Is(err, rtstream.ErrInvalid) {
		pr := problem.New(http.StatusUnprocessableEntity, "source: "+err.Error())
		pr.Errors = []problem.FieldError{{Pointer: "/source/topic", Detail: err.Error()}}
		problem.Write(w, r, pr)
		return false
	}
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}

// topicAllowed reports whether topic matches one of the glob patterns (Go's
// path.Match: * matches any run of characters, dots included, since topic
// names have no slashes).
func topicAllowed(patterns []string, topic string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, topic); err == nil && ok {
			return true
		}
	}
	return false
}

// takesSends refuses sends to a source stream: its events come from its topic.
func takesSends(st rtstream.Stream) error {
	if st.Source != nil {
		return fmt.Errorf("stream %s follows the topic %s and takes no sends: %w", st.ID, st.Source.Topic, rtstream.ErrConflict)
	}
	return nil
}
