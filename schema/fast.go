package schema

import (
	"bytes"
	"math/big"
	"slices"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The fast evaluator answers only "valid or not", over the library's
// compiled graph and the event's raw bytes: no decoding, no state per
// subschema, no error tree, numbers compared as decimals. The library costs
// about a microsecond per subschema evaluated, ten times the handler's own
// cost per event; most events are valid, and for them this is the whole
// check. An event it finds invalid goes to the library, which decides (its
// verdict wins) and says why. TestFastAgreesWithLibrary holds the two to
// the same verdicts.
//
// It covers 2020-12 without unevaluatedProperties and unevaluatedItems,
// whose annotations it does not track: a template with them has no fast
// path (template.fast).

// Costs of the fast evaluator, in steps (see cost.go).
const (
	stepFastEval   = 100 // one subschema on one value
	stepFastMember = 30  // one member or element walked
	stepFastNumber = 30  // a number read as a decimal, plus a step a byte
	stepFastUnique = 200 // an item's canonical form kept in a set, plus 8 a byte
)

// Type bits of fastInfo.types.
const (
	typeNull = 1 << iota
	typeBoolean
	typeNumber
	typeInteger
	typeString
	typeArray
	typeObject
)

// fastInfo is what the fast evaluator needs of a subschema, beyond its
// children (in node).
type fastInfo struct {
	// boolean is a boolean schema's value: 1 true, -1 false, 0 an object.
	// It, additionalFalse and unique are copied out of the compiled schema,
	// whose struct is large, to keep the walk in a few cache lines.
	boolean                 int8
	additionalFalse, unique bool
	// typeOnly: the subschema checks a type and nothing else, which its
	// parent's walk does inline (most properties of event schemas).
	typeOnly                 bool
	types                    uint8 // 0: any
	enum                     *valueSet
	min, max, exMin, exMax   *decimal
	multipleOf               *big.Rat
	minLen, maxLen           int // -1: none
	minItems, maxItems       int
	minProps, maxProps       int
	minContains, maxContains int
	// named numbers the member names that required and dependentRequired
	// mention, so that an object's walk records them in a bit set.
	named       map[string]int
	required    []int
	depRequired []depRequired
}

// memberInfo is what a subschema says of a member name, found with one
// look-up per member: its properties subschema, its dependentSchemas
// subschema, its number in fastInfo.named (-1: none).
type memberInfo struct {
	prop, dep *node
	named     int
}

// member finds what n says of a member name: by a walk through a few
// names (faster than hashing), or the map.
func (n *node) member(name []byte) (memberInfo, bool) {
	if n.memberList != nil {
		for i := range n.memberList {
			// Length and first byte first: most names differ there.
			if m := &n.memberList[i]; len(m.name) == len(name) && (len(name) == 0 || m.name[0] == name[0]) && m.name == string(name) {
				return m.memberInfo, true
			}
		}
		return memberInfo{named: -1}, false
	}
	m, ok := n.members[string(name)]
	return m, ok
}

// namedMember is an entry of node.memberList.
type namedMember struct {
	name string
	memberInfo
}

// indexMembers fills n.members from n's properties, dependentSchemas and
// fast.named, and n.memberList when there are few.
func (n *node) indexMembers() {
	defer func() {
		if len(n.members) <= 12 {
			n.memberList = make([]namedMember, 0, len(n.members))
			for name, m := range n.members {
				n.memberList = append(n.memberList, namedMember{name, m})
			}
		}
	}()
	info := func(name string) memberInfo {
		m, ok := n.members[name]
		if !ok {
			m.named = -1
		}
		return m
	}
	n.members = map[string]memberInfo{}
	for name, c := range n.props {
		m := info(name)
		m.prop = c
		n.members[name] = m
	}
	for name, c := range n.depSchemas {
		m := info(name)
		m.dep = c
		n.members[name] = m
	}
	for name, i := range n.fast.named {
		m := info(name)
		m.named = i
		n.members[name] = m
	}
}

// depRequired is one member of dependentRequired, by named's numbers.
type depRequired struct {
	if_  int
	then []int
}

// number is name's number in f.named, adding it.
func (f *fastInfo) number(name string) int {
	i, ok := f.named[name]
	if !ok {
		i = len(f.named)
		f.named[name] = i
	}
	return i
}

// valueSet is enum and const (the set of one), by canonical form; strings
// and numbers also by their value, so that most lookups allocate nothing.
type valueSet struct {
	strs   map[string]bool
	nums   map[string]bool // decimal keys
	others map[string]bool // canonical forms of the rest
}

func newValueSet(values []any) *valueSet {
	vs := &valueSet{strs: map[string]bool{}, nums: map[string]bool{}, others: map[string]bool{}}
	for _, v := range values {
		switch v := v.(type) {
		case string:
			vs.strs[v] = true
		default:
			key := string(appendCanonicalOf(nil, v))
			if key[0] == 'd' {
				vs.nums[key[1:]] = true
			} else {
				vs.others[key] = true
			}
		}
	}
	return vs
}

// has reports whether the raw value p is in the set, and what the look-up
// cost.
func (vs *valueSet) has(p []byte, buf []byte) (bool, int64) {
	switch c := p[0]; {
	case c == '"':
		if !escapes(p) {
			return vs.strs[string(p[1:len(p)-1])], int64(len(p)) / 8
		}
		return vs.strs[unquote(p)], int64(len(p))
	case c == '-' || c >= '0' && c <= '9':
		return vs.nums[string(parseDecimal(p).appendKey(buf[:0]))], int64(len(p))
	}
	return vs.others[string(appendCanonical(buf[:0], p))], canonicalCost(p)
}

// canonicalCost is what appendCanonical costs: objects gather, unquote
// and sort their members.
func canonicalCost(p []byte) int64 {
	if p[0] == '{' {
		return 48 * int64(len(p))
	}
	return 8 * int64(len(p))
}

func newFastInfo(s *jsonschema.Schema) fastInfo {
	f := fastInfo{additionalFalse: s.AdditionalProperties == false, unique: s.UniqueItems, minLen: intOr(s.MinLength), maxLen: intOr(s.MaxLength), minItems: intOr(s.MinItems), maxItems: intOr(s.MaxItems),
		minProps: intOr(s.MinProperties), maxProps: intOr(s.MaxProperties), minContains: intOr(s.MinContains), maxContains: intOr(s.MaxContains)}
	if s.Bool != nil {
		f.boolean = -1
		if *s.Bool {
			f.boolean = 1
		}
	}
	if s.Types != nil {
		bits := map[string]uint8{"null": typeNull, "boolean": typeBoolean, "number": typeNumber, "integer": typeInteger,
			"string": typeString, "array": typeArray, "object": typeObject}
		for _, t := range s.Types.ToStrings() {
			f.types |= bits[t]
		}
	}
	switch {
	case s.Enum != nil && s.Const != nil:
		// Both must hold: the const, if the enum has it, else nothing.
		if newValueSet(s.Enum.Values).hasValue(*s.Const) {
			f.enum = newValueSet([]any{*s.Const})
		} else {
			f.enum = newValueSet(nil)
		}
	case s.Enum != nil:
		f.enum = newValueSet(s.Enum.Values)
	case s.Const != nil:
		f.enum = newValueSet([]any{*s.Const})
	}
	for _, b := range []struct {
		r   *big.Rat
		dst **decimal
	}{{s.Minimum, &f.min}, {s.Maximum, &f.max}, {s.ExclusiveMinimum, &f.exMin}, {s.ExclusiveMaximum, &f.exMax}} {
		if b.r != nil {
			d := ratDecimal(b.r)
			*b.dst = &d
		}
	}
	f.multipleOf = s.MultipleOf
	f.named = map[string]int{}
	for _, r := range s.Required {
		f.required = append(f.required, f.number(r))
	}
	for name, deps := range s.DependentRequired {
		d := depRequired{if_: f.number(name)}
		for _, r := range deps {
			d.then = append(d.then, f.number(r))
		}
		f.depRequired = append(f.depRequired, d)
	}
	return f
}

// hasValue reports whether the set holds v, a value of a compiled schema.
func (vs *valueSet) hasValue(v any) bool {
	if s, ok := v.(string); ok {
		return vs.strs[s]
	}
	key := string(appendCanonicalOf(nil, v))
	if key[0] == 'd' {
		return vs.nums[key[1:]]
	}
	return vs.others[key]
}

func intOr(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// fastEval is one event's run of the fast evaluator.
type fastEval struct {
	m   *meter
	buf []byte // scratch for canonical forms and keys
	// depth is how deep in the event the walk is, maxDepth its limit:
	// deeper, the evaluator answers false and the library's path, whose
	// decoder enforces the limit, refuses the event for it.
	depth, maxDepth int
}

// valid reports whether p is valid against n. false also when the budget
// ran out: the caller looks at the meter.
func (e *fastEval) valid(n *node, p []byte) bool {
	if !e.m.charge(stepFastEval) {
		return false
	}
	f := &n.fast
	if f.boolean != 0 {
		return f.boolean > 0
	}
	if f.types != 0 && !e.typeOK(f.types, p) {
		return false
	}
	if f.enum != nil {
		ok, cost := f.enum.has(p, e.buf)
		if !e.m.charge(cost) || !ok {
			return false
		}
	}
	var ok bool
	switch c := p[0]; {
	case c == '{' || c == '[':
		if e.depth >= e.maxDepth {
			return false
		}
		e.depth++
		if c == '{' {
			ok = e.object(n, p)
		} else {
			ok = e.array(n, p)
		}
		e.depth--
	case c == '"':
		ok = e.str(n, p)
	case c == '-' || c >= '0' && c <= '9':
		ok = e.number(f, p)
	default:
		ok = true
	}
	return ok && (len(n.inPlace) == 0 || e.inPlace(n, p))
}

// check is valid for a member or an element: a type-only subschema is
// checked here, its cost part of the walk's.
func (e *fastEval) check(n *node, p []byte) bool {
	if n.fast.typeOnly {
		return e.typeOK(n.fast.types, p)
	}
	return e.valid(n, p)
}

// setTypeOnly works out fast.typeOnly, once n and its children are known.
func (n *node) setTypeOnly() {
	f := &n.fast
	keywords := f.boolean != 0 || f.enum != nil || f.min != nil || f.max != nil || f.exMin != nil || f.exMax != nil ||
		f.multipleOf != nil || f.minLen >= 0 || f.maxLen >= 0 || n.cost.pattern != nil || f.minItems >= 0 || f.maxItems >= 0 ||
		f.minProps >= 0 || f.maxProps >= 0 || f.unique || f.additionalFalse || len(f.required) > 0 || len(f.depRequired) > 0
	children := len(n.inPlace) > 0 || len(n.depSchemas) > 0 || len(n.props) > 0 || len(n.patternProps) > 0 ||
		n.additional != nil || n.propertyNames != nil || n.unevalProps != nil || len(n.prefix) > 0 ||
		n.items != nil || n.contains != nil || n.unevalItems != nil
	f.typeOnly = f.types != 0 && !keywords && !children
}

func (e *fastEval) typeOK(types uint8, p []byte) bool {
	switch c := p[0]; {
	case c == '{':
		return types&typeObject != 0
	case c == '[':
		return types&typeArray != 0
	case c == '"':
		return types&typeString != 0
	case c == 'n':
		return types&typeNull != 0
	case c == 't' || c == 'f':
		return types&typeBoolean != 0
	}
	return types&typeNumber != 0 || types&typeInteger != 0 && e.m.charge(stepFastNumber+int64(len(p))) && isInteger(p)
}

// isInteger reports whether the number literal p is a whole number: at
// once for one without fraction or exponent, the commonest.
func isInteger(p []byte) bool {
	if bytes.IndexAny(p, ".eE") < 0 {
		return true
	}
	return parseDecimal(p).isInt()
}

// inPlace applies the subschemas that apply to the same value.
func (e *fastEval) inPlace(n *node, p []byte) bool {
	switch {
	case n.ref != nil && !e.valid(n.ref, p),
		n.not != nil && e.valid(n.not, p):
		return false
	}
	for _, c := range n.allOf {
		if !e.valid(c, p) {
			return false
		}
	}
	if len(n.anyOf) > 0 && !slices.ContainsFunc(n.anyOf, func(c *node) bool { return e.valid(c, p) }) {
		return false
	}
	if len(n.oneOf) > 0 {
		matched := 0
		for _, c := range n.oneOf {
			if e.valid(c, p) {
				if matched++; matched > 1 {
					return false
				}
			}
		}
		if matched == 0 {
			return false
		}
	}
	if n.ifThen != nil {
		branch := n.els
		if e.valid(n.ifThen, p) {
			branch = n.then
		}
		if branch != nil && !e.valid(branch, p) {
			return false
		}
	}
	return e.m.spent == nil
}

func (e *fastEval) str(n *node, p []byte) bool {
	f := &n.fast
	if f.minLen < 0 && f.maxLen < 0 && n.cost.pattern == nil {
		return true
	}
	b := p[1 : len(p)-1]
	if escapes(p) {
		b = []byte(unquote(p))
	}
	if f.minLen >= 0 || f.maxLen >= 0 {
		if !e.m.charge(int64(len(b)) / 8) {
			return false
		}
		l := utf8.RuneCount(b)
		if f.minLen >= 0 && l < f.minLen || f.maxLen >= 0 && l > f.maxLen {
			return false
		}
	}
	if re := n.cost.pattern; re != nil {
		return e.m.charge(patternCost(re, len(b))) && re.Match(b)
	}
	return true
}

func (e *fastEval) number(f *fastInfo, p []byte) bool {
	if f.min == nil && f.max == nil && f.exMin == nil && f.exMax == nil && f.multipleOf == nil {
		return true
	}
	if !e.m.charge(stepFastNumber + int64(len(p))) {
		return false
	}
	d := parseDecimal(p)
	switch {
	case f.min != nil && d.cmp(*f.min) < 0, f.max != nil && d.cmp(*f.max) > 0,
		f.exMin != nil && d.cmp(*f.exMin) <= 0, f.exMax != nil && d.cmp(*f.exMax) >= 0:
		return false
	case f.multipleOf != nil:
		// Rare, and exact only with math/big: what the library pays, for
		// numbers within the limits (the library's path refuses others).
		return len(p) <= maxNumberLen && exponentWithin(p) && e.m.charge(3*stepNumberMax) &&
			new(big.Rat).Quo(d.rat(), f.multipleOf).IsInt()
	}
	return true
}

func (e *fastEval) object(n *node, p []byte) bool {
	f := &n.fast
	var distinct map[string]bool // minProperties counts names, not members
	if f.minProps >= 0 {
		distinct = map[string]bool{}
	}
	var present uint64 // bit i: f.named's name i is a member
	var presentMore map[int]bool
	// A member takes five bytes at least ("":0,): its walk is charged for
	// the most the object can hold, before it starts.
	if !e.m.charge(stepFastMember * int64(len(p)/5+1)) {
		return false
	}
	members, ok := 0, true
	for it := newMemberIter(p); ok; {
		k, name, v, more := it.next()
		if !more {
			break
		}
		members++
		if distinct != nil {
			distinct[string(name)] = true
		}
		m, known := n.member(name)
		if i := m.named; known && i >= 0 {
			if i < 64 {
				present |= 1 << i
			} else if presentMore == nil {
				presentMore = map[int]bool{i: true}
			} else {
				presentMore[i] = true
			}
		}
		ok = e.member(n, m, p, k, name, v)
	}
	if !ok || f.maxProps >= 0 && members > f.maxProps || f.minProps >= 0 && len(distinct) < f.minProps {
		return false
	}
	has := func(i int) bool { return i < 64 && present&(1<<i) != 0 || presentMore[i] }
	if slices.ContainsFunc(f.required, func(i int) bool { return !has(i) }) {
		return false
	}
	for _, d := range f.depRequired {
		if has(d.if_) && slices.ContainsFunc(d.then, func(i int) bool { return !has(i) }) {
			return false
		}
	}
	return true
}

// member applies to one member of object p what applies to it.
func (e *fastEval) member(n *node, m memberInfo, p, k, name, v []byte) bool {
	evaluated := false
	if c := m.prop; c != nil {
		if evaluated = true; !e.check(c, v) {
			return false
		}
	}
	for _, pp := range n.patternProps {
		if !e.m.charge(patternCost(pp.re, len(name))) {
			return false
		}
		if pp.re.Match(name) {
			if evaluated = true; !e.valid(pp.n, v) {
				return false
			}
		}
	}
	switch {
	case evaluated:
	case n.additional != nil && !e.valid(n.additional, v), n.fast.additionalFalse:
		return false
	}
	if c := n.propertyNames; c != nil && !e.valid(c, k) {
		return false
	}
	if c := m.dep; c != nil && !e.valid(c, p) {
		return false
	}
	return true
}

func (e *fastEval) array(n *node, p []byte) bool {
	f := &n.fast
	items, matched := 0, 0
	var seen map[string]bool
	if f.unique {
		seen = map[string]bool{}
	}
	// An element takes two bytes at least (0,): the walk is charged for the
	// most the array can hold, before it starts.
	if !e.m.charge(stepFastMember * int64(len(p)/2+1)) {
		return false
	}
	ok := eachElem(p, func(i int, v []byte) bool {
		items++
		if i < len(n.prefix) {
			if !e.check(n.prefix[i], v) {
				return false
			}
		} else if n.items != nil && !e.check(n.items, v) {
			return false
		}
		if n.contains != nil && e.valid(n.contains, v) {
			matched++
		}
		if seen != nil {
			if !e.m.charge(stepFastUnique + canonicalCost(v)) {
				return false
			}
			e.buf = appendCanonical(e.buf[:0], v)
			if seen[string(e.buf)] {
				return false
			}
			seen[string(e.buf)] = true
		}
		return true
	})
	switch {
	case !ok, f.minItems >= 0 && items < f.minItems, f.maxItems >= 0 && items > f.maxItems:
		return false
	case n.contains != nil:
		least := 1
		if f.minContains >= 0 {
			least = f.minContains
		}
		return matched >= least && (f.maxContains < 0 || matched <= f.maxContains)
	}
	return true
}
