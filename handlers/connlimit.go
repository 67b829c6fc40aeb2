package handlers

import (
	"net/http"
	"sync"

	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/problem"
)

// connLimits counts open result streams, in total and per principal, so that
// one client cannot hold every connection the instance can serve.
type connLimits struct {
	max, perKey int

	mu    sync.Mutex
	total int
	byKey map[string]int
}

func newConnLimits(max, perKey int) *connLimits {
	return &connLimits{max: max, perKey: perKey, byKey: make(map[string]int)}
}

// acquire takes a slot for r's principal or answers 503/429 and returns
// false. release must be called once for every true.
func (c *connLimits) acquire(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	key := ""
	if p, ok := middleware.PrincipalFrom(r.Context()); ok {
		key = p.ID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= c.max {
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable,
			Detail: "this instance serves as many result streams as it may; retry later", RetryAfter: 5})
		return nil, false
	}
	if c.byKey[key] >= c.perKey {
		problem.Write(w, r, problem.Problem{Status: http.StatusTooManyRequests,
			Detail: "too many open result streams for this credential", RetryAfter: 5})
		return nil, false
	}
	c.total++
	c.byKey[key]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.total--
		if c.byKey[key]--; c.byKey[key] == 0 {
			delete(c.byKey, key)
		}
	}, true
}
