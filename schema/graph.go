package schema

import (
	"maps"
	"slices"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// template is a compiled schema and the static cost of each subschema. It is
// never validated with: every validation clones it (instance), because the
// budget's hooks need a meter of their own per validation.
type template struct {
	nodes []*node // nodes[0] is the root
	cfg   Config
	// usesUneval: some subschema has unevaluatedProperties or
	// unevaluatedItems, and the validator then copies the keys of the
	// objects and arrays it enters in place, to track what was evaluated.
	usesUneval bool
	// fast: the fast evaluator covers the schema (it has no unevaluated*).
	fast bool
}

// node is one subschema of a template: its children as nodes, and what an
// evaluation of it costs beyond them.
type node struct {
	s   *jsonschema.Schema // the template's
	idx int
	// Applied to the same value; inPlace lists them all.
	ref, not, ifThen, then, els *node
	allOf, anyOf, oneOf         []*node
	inPlace                     []*node
	// dependentSchemas: applied to the same object, when it has the member.
	depSchemas map[string]*node
	// Applied to an object's members.
	props                                  map[string]*node
	patternProps                           []patternNode
	additional, propertyNames, unevalProps *node
	// Applied to an array's elements.
	prefix                       []*node
	items, contains, unevalItems *node
	cost                         nodeCost
	fast                         fastInfo
	members                      map[string]memberInfo
	memberList                   []namedMember // members, when few
}

// patternNode is one of patternProperties.
type patternNode struct {
	re *pattern
	n  *node
}

// newTemplate walks the compiled graph from root, refuses what the budget
// cannot bound, and works out the static costs.
func newTemplate(root *jsonschema.Schema, cfg Config) (*template, error) {
	t := &template{cfg: cfg}
	index := map[*jsonschema.Schema]*node{}
	var add func(s *jsonschema.Schema) *node
	add = func(s *jsonschema.Schema) *node {
		if s == nil {
			return nil
		}
		if n, ok := index[s]; ok {
			return n
		}
		n := &node{s: s, idx: len(t.nodes)}
		index[s] = n
		t.nodes = append(t.nodes, n)
		n.link(add)
		return n
	}
	add(root)
	for _, n := range t.nodes {
		if err := n.supported(); err != nil {
			return nil, err
		}
		if n.s.UnevaluatedProperties != nil || n.s.UnevaluatedItems != nil {
			t.usesUneval = true
		}
	}
	t.fast = !t.usesUneval
	if err := checkInPlace(t.nodes, cfg.MaxInPlace); err != nil {
		return nil, err
	}
	for _, n := range t.nodes {
		n.cost = staticCost(n.s, t.usesUneval)
		n.fast = newFastInfo(n.s)
		n.indexMembers()
		n.setTypeOnly()
	}
	return t, nil
}

// link makes n's children nodes, with add. Every field of a compiled
// schema that holds subschemas is either here or refused by supported
// (TestEverySubschemaFieldReviewed holds the list to the library's type):
// a subschema missed here would run without charging the budget.
func (n *node) link(add func(*jsonschema.Schema) *node) {
	s := n.s
	n.ref, n.not, n.ifThen, n.then, n.els = add(s.Ref), add(s.Not), add(s.If), add(s.Then), add(s.Else)
	list := func(cs []*jsonschema.Schema) []*node {
		var out []*node
		for _, c := range cs {
			out = append(out, add(c))
		}
		return out
	}
	n.allOf, n.anyOf, n.oneOf = list(s.AllOf), list(s.AnyOf), list(s.OneOf)
	for _, c := range []*node{n.ref, n.not, n.ifThen, n.then, n.els} {
		if c != nil {
			n.inPlace = append(n.inPlace, c)
		}
	}
	n.inPlace = slices.Concat(n.inPlace, n.allOf, n.anyOf, n.oneOf)
	if len(s.DependentSchemas) > 0 {
		n.depSchemas = make(map[string]*node, len(s.DependentSchemas))
		for k, c := range s.DependentSchemas {
			n.depSchemas[k] = add(c)
		}
	}
	if len(s.Properties) > 0 {
		n.props = make(map[string]*node, len(s.Properties))
		for k, c := range s.Properties {
			n.props[k] = add(c)
		}
	}
	for re, c := range s.PatternProperties {
		p, _ := re.(*pattern) // always: the compiler used patterns.compile
		n.patternProps = append(n.patternProps, patternNode{re: p, n: add(c)})
	}
	if c, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
		n.additional = add(c)
	}
	n.propertyNames = add(s.PropertyNames)
	n.unevalProps = add(s.UnevaluatedProperties)
	for _, c := range s.PrefixItems {
		n.prefix = append(n.prefix, add(c))
	}
	n.items = add(s.Items2020)
	n.contains = add(s.Contains)
	n.unevalItems = add(s.UnevaluatedItems)
}

// supported refuses the features of other dialects and those whose cost
// the hooks cannot see: dynamic references resolve at validation time to
// subschemas the graph does not show, and assertions the compiler was not
// asked for must not have appeared.
func (n *node) supported() error {
	s := n.s
	at := fragment(s.Location)
	switch {
	case s.DraftVersion != 2020:
		return refused(at, "only JSON Schema 2020-12 is supported; this subschema is draft %d", s.DraftVersion)
	case s.DynamicRef != nil || s.RecursiveRef != nil:
		return refused(at, "$dynamicRef is not supported: its target is chosen while validating, which the budget cannot bound beforehand")
	case s.Format != nil || len(s.Extensions) > 0 || s.ContentSchema != nil || s.ContentEncoding != nil || s.ContentMediaType != nil:
		return refused(at, "format, content and vocabulary assertions are not supported")
	case s.Items != nil || s.AdditionalItems != nil || s.Dependencies != nil:
		return refused(at, "items as an array, additionalItems and dependencies belong to older drafts")
	}
	return nil
}

// checkInPlace refuses a cycle of subschemas applied in place (the
// validator would loop until it noticed) and chains longer than limit.
func checkInPlace(nodes []*node, limit int) error {
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(nodes))
	chain := make([]int, len(nodes)) // longest in-place chain from each node
	var visit func(n *node) error
	visit = func(n *node) error {
		switch state[n.idx] {
		case open:
			return refused(fragment(n.s.Location), "a cycle of subschemas applied to the same value (through $ref, allOf, ...) that never moves into the event")
		case done:
			return nil
		}
		state[n.idx] = open
		longest := 0
		for _, c := range slices.Concat(n.inPlace, slices.Collect(maps.Values(n.depSchemas))) {
			if err := visit(c); err != nil {
				return err
			}
			longest = max(longest, chain[c.idx])
		}
		state[n.idx], chain[n.idx] = done, longest+1
		if chain[n.idx] > limit {
			return refused(fragment(n.s.Location), "over %d subschemas applied in a row to the same value (through $ref, allOf, ...), the limit", limit)
		}
		return nil
	}
	for _, n := range nodes {
		if err := visit(n); err != nil {
			return err
		}
	}
	return nil
}
