package handlers

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/problem"
)

// principal is who the request was authenticated as. A server built
// without authentication (tests, tools) serves everyone as an admin of the
// default tenant, as AUTH_DISABLED does.
func principal(r *http.Request) middleware.Principal {
	if p, ok := middleware.PrincipalFrom(r.Context()); ok {
		return p
	}
	return middleware.Admin("anonymous")
}

// need serves h to principals that hold scope; the others get 403 naming
// the scope. It says nothing about the stream: a caller without the scope
// learns the same whether the id exists or not.
func (s *server) need(scope string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).Has(scope) {
			problem.Write(w, r, scopeProblem(scope))
			return
		}
		h(w, r)
	}
}

func scopeProblem(scope string) problem.Problem {
	return problem.New(http.StatusForbidden, fmt.Sprintf("this credential lacks the scope %s", scope))
}

// visible reads stream id as p may see it: another tenant's stream, or for
// a subscribe token any stream but its own, is rtstream.ErrNotFound, exactly
// like an id that does not exist, so nobody can probe for streams.
func (s *server) visible(ctx context.Context, p middleware.Principal, id string) (rtstream.Stream, error) {
	if !p.MayUse(id) {
		return rtstream.Stream{}, fmt.Errorf("stream %q: %w", id, rtstream.ErrNotFound)
	}
	st, err := s.Streams.Get(ctx, id)
	if err != nil {
		return st, err
	}
	if !p.Sees(st.Owner()) {
		return rtstream.Stream{}, fmt.Errorf("stream %q: %w", id, rtstream.ErrNotFound)
	}
	return st, nil
}
