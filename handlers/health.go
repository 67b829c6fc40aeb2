package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rtstream/rtstream/problem"
)

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz runs every check at once, each bounded, and names the ones failing.
// The route is open to anyone, so its body names components only; why one
// failed (addresses, errors) goes to the log, and to the metrics the checks
// keep.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable,
			Detail: "not ready: shutting down", RetryAfter: 1})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		failing []string
	)
	for name, check := range s.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := check(ctx); err != nil {
				s.log.WarnContext(ctx, "not ready", "component", name, "err", err)
				mu.Lock()
				failing = append(failing, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failing) > 0 {
		slices.Sort(failing)
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable,
			Detail: "not ready: " + strings.Join(failing, "; "), RetryAfter: 1})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
