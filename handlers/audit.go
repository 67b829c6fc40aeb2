package handlers

import (
	"net/http"
	"path"

	"github.com/go-chi/chi/v5"

	"github.com/rtstream/rtstream/observability"
)

// audit logs and counts every request to h, refused ones included: who
// (name and tenant, never the key), what, on which stream, and how it ended.
// The stream writes routes are audited (issue 12): a platform team must be
// able to tell who created or deleted a stream.
func (s *server) audit(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		p := principal(r)
		id := chi.URLParam(r, "id")
		if loc := rec.Header().Get("Location"); id == "" && loc != "" {
			id = path.Base(loc)
		}
		outcome := "ok"
		switch {
		case rec.status >= 500:
			outcome = "failed"
		case rec.status >= 400:
			outcome = "refused"
		}
		// The audit line's fields come first, in a fixed order (log
		// pipelines match on it); a traced request's ids follow.
		s.log.InfoContext(r.Context(), "audit", append([]any{"action", action, "outcome", outcome, "status", rec.status,
			"principal", p.Name, "tenant", p.Tenant, "stream_id", id}, observability.TraceIDs(r.Context())...)...)
		s.Metrics.Audited(action, outcome)
	}
}

// statusRecorder notes the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
