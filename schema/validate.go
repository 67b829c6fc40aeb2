package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Validator checks events against one schema. It is safe for concurrent
// use.
type Validator struct {
	t *template
	// instances are clones of t, each validating one request at a time.
	instances sync.Pool
}

func newValidator(t *template) *Validator {
	v := &Validator{t: t}
	v.instances.New = func() any { return t.clone() }
	return v
}

// Violation is one way an event of a request fails its schema.
type Violation struct {
	// Index is the event's position in the request, from 0.
	Index int
	// Pointer is where in the event (a JSON pointer; "" is the whole event).
	Pointer string
	// Message says what is wrong.
	Message string
}

// InvalidError is a request with events that fail the schema, or that the
// budget refused: nothing of it may be sent.
type InvalidError struct {
	// Events is how many events the request holds, Failed how many fail.
	Events, Failed int
	// Unchecked counts the events after the one that spent the request's
	// budget, which were not looked at.
	Unchecked int
	// Violations are the first MaxErrors, in event order; Truncated says
	// that there were more.
	Violations []Violation
	Truncated  bool
}

func (e *InvalidError) Error() string {
	s := fmt.Sprintf("%d of %d events do not match the stream's schema", e.Failed, e.Events)
	if e.Unchecked > 0 {
		s += fmt.Sprintf(" (%d more not checked: the request's validation budget ran out)", e.Unchecked)
	}
	if len(e.Violations) > 0 {
		s += fmt.Sprintf("; event %d at %q: %s", e.Violations[0].Index, e.Violations[0].Pointer, e.Violations[0].Message)
	}
	return s
}

// Validate checks every event, all or nothing: nil when all of them match,
// an *InvalidError when any does not or was over the budget, ctx's error
// (wrapped) when it ended first.
func (v *Validator) Validate(ctx context.Context, events []json.RawMessage) error {
	in := v.instances.Get().(*instance)
	defer func() {
		in.m = meter{} // holds no request's context while pooled
		v.instances.Put(in)
	}()
	cfg := v.t.cfg
	in.m.startRequest(ctx, cfg.RequestSteps)
	var inv *InvalidError
	for i, data := range events {
		found, err := in.validate(data)
		if err != nil {
			return fmt.Errorf("validating event %d: %w", i, err)
		}
		if len(found) == 0 {
			continue
		}
		if inv == nil {
			inv = &InvalidError{Events: len(events)}
		}
		inv.Failed++
		for _, f := range found {
			if len(inv.Violations) == cfg.MaxErrors {
				inv.Truncated = true
				break
			}
			f.Index = i
			inv.Violations = append(inv.Violations, f)
		}
		if be := (*budgetError)(nil); errors.As(in.m.spent, &be) && be.what == "request" {
			inv.Unchecked = len(events) - i - 1
			break
		}
	}
	if inv == nil {
		return nil
	}
	return inv
}

// validate checks one event; an event over its budget is one violation,
// naming it. err is the context's.
func (in *instance) validate(data []byte) ([]Violation, error) {
	cfg, m := in.t.cfg, &in.m
	m.startEvent(cfg.EventSteps + cfg.StepsPerByte*int64(len(data)))
	data = bytes.TrimSpace(data)
	if in.t.fast {
		e := fastEval{m: m, buf: in.buf, maxDepth: cfg.MaxEventDepth}
		ok := e.valid(in.t.nodes[0], data)
		in.buf = e.buf
		switch {
		case m.spent != nil:
			return in.spent(m.spent)
		case ok:
			return nil, nil
		}
		// Invalid, or past a limit the library's path enforces (depth,
		// numbers): the library decides, and says why.
	}
	v, _, err := decode(data, cfg.MaxEventDepth, m)
	if err != nil {
		return in.spent(err)
	}
	if !m.charge(in.t.entryCost(in.t.nodes[0], v)) {
		return in.spent(m.spent)
	}
	err = in.schemas[0].Validate(v)
	if m.spent != nil {
		// Whatever the library concluded, parts of the event went
		// unchecked.
		return in.spent(m.spent)
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		// In pointer order: the library walks objects in map order.
		// One more than can be listed, so that a cut list says so.
		found := firstViolations(ve, in.t.cfg.MaxErrors+1)
		slices.SortStableFunc(found, func(a, b Violation) int { return strings.Compare(a.Pointer, b.Pointer) })
		return found, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err) // not returned by this library version
	}
	return nil, nil
}

// spent is the answer for an event that stopped on err: a budget or a
// limit is a violation, anything else (the context) an error.
func (in *instance) spent(err error) ([]Violation, error) {
	var be *budgetError
	var le *limitError
	switch {
	case errors.As(err, &be):
		return []Violation{{Message: be.Error()}}, nil
	case errors.As(err, &le):
		return []Violation{{Pointer: le.pointer, Message: le.detail}}, nil
	}
	if errors.Is(err, errSyntax) {
		return []Violation{{Message: "not valid JSON"}}, nil
	}
	return nil, err
}

// instance is a clone of a template's compiled schema whose subschemas all
// charge its meter: it serves one validation at a time.
type instance struct {
	t       *template
	schemas []jsonschema.Schema // schemas[i] is t.nodes[i]'s
	m       meter
	buf     []byte // the fast evaluator's scratch
}

// clone copies the template's compiled schemas, points each copy's
// subschemas at the copies, and hooks the budget into each as its format
// check, which the library runs on every evaluation that gets past type,
// const and enum, before anything else: a node charges its keywords' work
// and the entry of every evaluation it will start, before it starts them.
func (t *template) clone() *instance {
	in := &instance{t: t, schemas: make([]jsonschema.Schema, len(t.nodes))}
	formats := make([]jsonschema.Format, len(t.nodes))
	index := make(map[*jsonschema.Schema]*jsonschema.Schema, len(t.nodes))
	for i, n := range t.nodes {
		in.schemas[i] = *n.s
		index[n.s] = &in.schemas[i]
	}
	for i, n := range t.nodes {
		s := &in.schemas[i]
		relink(s, index)
		formats[i] = jsonschema.Format{Name: "rtstream budget", Validate: in.hook(n)}
		s.Format = &formats[i]
	}
	return in
}

// hook is node n's budget check.
func (in *instance) hook(n *node) func(any) error {
	return func(v any) error {
		m := &in.m
		if m.spent != nil || !m.charge(in.t.bodyCost(n, v, m.event)) {
			return errSpent
		}
		return nil
	}
}

// relink points the subschema fields of s (a copy of a template's schema)
// at the copies: the fields node.link reads, no more, no less.
func relink(s *jsonschema.Schema, index map[*jsonschema.Schema]*jsonschema.Schema) {
	at := func(c *jsonschema.Schema) *jsonschema.Schema {
		if c == nil {
			return nil
		}
		return index[c]
	}
	list := func(cs []*jsonschema.Schema) []*jsonschema.Schema {
		if cs == nil {
			return nil
		}
		out := make([]*jsonschema.Schema, len(cs))
		for i, c := range cs {
			out[i] = index[c]
		}
		return out
	}
	s.Ref, s.Not, s.If, s.Then, s.Else = at(s.Ref), at(s.Not), at(s.If), at(s.Then), at(s.Else)
	s.AllOf, s.AnyOf, s.OneOf, s.PrefixItems = list(s.AllOf), list(s.AnyOf), list(s.OneOf), list(s.PrefixItems)
	s.DependentSchemas = relinkMap(s.DependentSchemas, at)
	s.Properties = relinkMap(s.Properties, at)
	s.PatternProperties = relinkMap(s.PatternProperties, at)
	if c, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
		s.AdditionalProperties = at(c)
	}
	s.PropertyNames, s.UnevaluatedProperties = at(s.PropertyNames), at(s.UnevaluatedProperties)
	s.Items2020, s.Contains, s.UnevaluatedItems = at(s.Items2020), at(s.Contains), at(s.UnevaluatedItems)
}

func relinkMap[K comparable](m map[K]*jsonschema.Schema, at func(*jsonschema.Schema) *jsonschema.Schema) map[K]*jsonschema.Schema {
	if m == nil {
		return nil
	}
	out := make(map[K]*jsonschema.Schema, len(m))
	for k, c := range m {
		out[k] = at(c)
	}
	return out
}
