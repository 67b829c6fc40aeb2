package schema

import (
	"context"
	"fmt"
)

// meter is the running budget of one request's validation: every piece of
// work is charged before it is done, and once a charge does not fit, every
// later one fails too, so that the validator, which cannot be stopped from
// outside, skips what remains of the event at each subschema it enters.
//
// One meter serves one validation at a time (it lives in an instance, see
// Validator), so it needs no lock.
type meter struct {
	ctx context.Context
	// requestSteps is the request's whole budget, request what remains of
	// it; event what remains of the current event's, never more.
	requestSteps, request, event int64
	// eventSteps is the current event's whole budget; byRequest says that
	// what remained of the request's was less.
	eventSteps int64
	byRequest  bool
	// spent is set by the first charge that did not fit.
	spent error
	// sinceCheck counts charges since ctx was last looked at.
	sinceCheck int
}

// ctxEvery is how many charges pass between two looks at the request's
// context: often enough that a client gone or a deadline passed stops the
// work within a fraction of a millisecond, rarely enough to cost nothing.
const ctxEvery = 256

// budgetError is an event that exhausted its budget or the request's.
type budgetError struct {
	what  string // "event" or "request"
	steps int64
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("over the %s's validation budget of %d steps", e.what, e.steps)
}

// startRequest gives a request its budget.
func (m *meter) startRequest(ctx context.Context, steps int64) {
	*m = meter{ctx: ctx, requestSteps: steps, request: steps}
}

// startEvent gives the next event its budget, within what remains of the
// request's.
func (m *meter) startEvent(steps int64) {
	m.eventSteps, m.byRequest = steps, steps > m.request
	m.event = min(steps, m.request)
	m.spent = nil
}

// charge takes n steps from the budgets and reports whether they fit. Its
// common case is small enough to be inlined: it runs for every subschema
// and member the fast evaluator visits.
func (m *meter) charge(n int64) bool {
	if m.spent == nil && n <= m.event && m.sinceCheck < ctxEvery {
		m.sinceCheck++
		m.event -= n
		m.request -= n
		return true
	}
	return m.chargeSlow(n)
}

// chargeSlow is charge when the context is due a look, or the budget is
// spent or short.
func (m *meter) chargeSlow(n int64) bool {
	if m.spent != nil {
		return false
	}
	if m.sinceCheck >= ctxEvery {
		m.sinceCheck = 0
		if err := m.ctx.Err(); err != nil {
			m.spent = err
			return false
		}
	}
	if n > m.event {
		m.spent = &budgetError{what: "event", steps: m.eventSteps}
		if m.byRequest {
			m.spent = &budgetError{what: "request", steps: m.requestSteps}
		}
		return false
	}
	m.sinceCheck++
	m.event -= n
	m.request -= n
	return true
}
