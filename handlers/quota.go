package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/middleware"
	"github.com/rtstream/rtstream/problem"
	"github.com/rtstream/rtstream/quota"
)

// quotaExceededType is the problem type of a count quota (RFC 9457: a URI
// reference, resolved against the request's).
const quotaExceededType = "/problems/quota-exceeded"

// quotaSubject is who a connection or byte quota counts against: the tenant,
// or the key in a deployment without tenants.
func (s *server) quotaSubject(r *http.Request) string { return s.subjectOf(principal(r)) }

func (s *server) subjectOf(p middleware.Principal) string {
	if s.QuotaPerKey {
		return p.ID
	}
	return p.Tenant
}

// exceeded is the problem of a quota refusal: 403 for a count quota, 429
// with Retry-After for the byte rate.
func exceeded(e *quota.Exceeded) problem.Problem {
	if e.Quota == quota.IngestBytes {
		return problem.Problem{Status: http.StatusTooManyRequests, Detail: e.Error(),
			RetryAfter: max(1, int(math.Ceil(e.RetryAfter.Seconds())))}
	}
	return problem.Problem{Type: quotaExceededType, Title: "Quota Exceeded", Status: http.StatusForbidden, Detail: e.Error()}
}

func writeExceeded(w http.ResponseWriter, r *http.Request, e *quota.Exceeded) {
	problem.Write(w, r, exceeded(e))
}

// checkStreamsQuota answers 403 when tenant owns as many streams as it may.
// A PUT of a stream that exists is no new stream and is not refused.
func (s *server) checkStreamsQuota(w http.ResponseWriter, r *http.Request, tenant, id string, put bool) bool {
	if s.Quotas == nil || s.Owned == nil {
		return true
	}
	if put {
		if _, err := s.Streams.Get(r.Context(), id); err == nil {
			return true
		}
	}
	owned, err := s.Owned(r.Context(), tenant)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	var e *quota.Exceeded
	if err := s.Quotas.CheckStreams(tenant, owned); errors.As(err, &e) {
		s.Metrics.QuotaRefused(tenant, e.Quota)
		writeExceeded(w, r, e)
		return false
	}
	return true
}

// acquireHeld takes a held-connection slot of r's tenant (or key), or
// answers 403.
func (s *server) acquireHeld(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if s.Quotas == nil {
		return func() {}, true
	}
	release, err := s.Quotas.Acquire(r.Context(), s.quotaSubject(r))
	var e *quota.Exceeded
	if errors.As(err, &e) {
		s.Metrics.QuotaRefused(s.quotaSubject(r), e.Quota)
		writeExceeded(w, r, e)
		return nil, false
	}
	return release, true
}

// takeIngest charges a send's event bytes to the byte-rate quota; false
// when it answered 429.
func (s *server) takeIngest(w http.ResponseWriter, r *http.Request, n int64) bool {
	if s.Quotas == nil {
		return true
	}
	var e *quota.Exceeded
	if err := s.Quotas.TakeBytes(r.Context(), s.quotaSubject(r), n); errors.As(err, &e) {
		s.Metrics.QuotaRefused(s.quotaSubject(r), e.Quota)
		writeExceeded(w, r, e)
		return false
	}
	return true
}

// sent records an accepted send in the usage windows.
func (s *server) sent(r *http.Request, n int64) {
	if s.Quotas != nil {
		s.Quotas.Sent(context.WithoutCancel(r.Context()), s.quotaSubject(r), n)
	}
}

// usage is GET /v1/usage: the caller's tenant's quotas, use and recent sends.
func (s *server) usage(w http.ResponseWriter, r *http.Request) {
	if s.Quotas == nil || s.Owned == nil {
		problem.Write(w, r, problem.New(http.StatusNotImplemented, "this server keeps no quotas"))
		return
	}
	p := principal(r)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	owned, err := s.Owned(ctx, p.Tenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.Quotas.Usage(ctx, s.quotaSubject(r), owned)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: %w", rtstream.ErrUnavailable, err))
		return
	}
	if s.QuotaPerKey {
		u.Tenant = p.Tenant
	}
	writeJSON(w, http.StatusOK, u)
}
