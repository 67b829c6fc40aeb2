package schema

import (
	"encoding/json"
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// What validation work costs, in steps. The weights were measured on the
// library (TestStepsTrackTime prints nanoseconds per step over legitimate
// and hostile cases): a step is about a nanosecond of work, and each weight
// is at least what its work costs, so that the budget errs on the safe side.
const (
	// stepEval is one evaluation of a subschema on a value: the validator's
	// scope, state and path (about 200 bytes), an error when it fails.
	stepEval = 800
	// stepChild is a parent's loop step per member or element.
	stepChild = 40
	// stepCompare is one step of equals (enum, const, uniqueItems on few
	// items) or one name looked up (required).
	stepCompare = 20
	// A number made exact from its literal (math/big) whenever a keyword
	// looks at it: 250 ns for "0", 800 for "31.5", 2.7 µs for 1e1000 and
	// 4.7 for 90 digits with an exponent of -1000 (measured), about half
	// of what a comparison costs.
	stepNumber      = 500
	stepNumByte     = 40
	stepNumFraction = 500 // a fraction or an exponent
	stepNumExp      = 4   // per unit of the exponent
	stepNumberMax   = stepNumber + stepNumByte*maxNumberLen + stepNumFraction + stepNumExp*maxExponent
	// stepUneval is one key copied into, and merged out of, the set of
	// evaluated members that unevaluated* keywords need.
	stepUneval = 120
	// A pattern's match: a fixed cost, then per byte of input and
	// instruction (Go's regexp is linear in both: a{100}b over 1 MiB takes
	// 1.4 s, 13 ns per byte and instruction).
	stepPattern      = 200
	stepPatternInstB = 13
	// stepHash is one value hashed (uniqueItems over more than 20 items).
	stepHash = 400
)

// nodeCost is what a subschema's evaluations cost beyond its children, as
// far as the schema alone says.
type nodeCost struct {
	// entry is charged by whoever starts an evaluation, before it starts:
	// the library compares const and enum before any hook could run.
	entry int64
	// numbers is how many times a number value is made exact on entry:
	// type integer, and each enum or const value that is a number.
	numbers int64
	// valueDependent: entry depends on the value (numbers, or the
	// template's usesUneval), so a parent cannot multiply it.
	valueDependent bool
	numeric        int64 // minimum, maximum, exclusive*, multipleOf
	multipleOf     bool
	lengths        bool
	pattern        *pattern
	unique         bool
	required       int64 // names in required and dependentRequired
}

func staticCost(s *jsonschema.Schema, usesUneval bool) nodeCost {
	c := nodeCost{entry: stepEval, lengths: s.MinLength != nil || s.MaxLength != nil, unique: s.UniqueItems}
	if s.Types != nil && slices.Contains(s.Types.ToStrings(), "integer") {
		c.numbers++
	}
	var values []any
	if s.Enum != nil {
		values = s.Enum.Values
	}
	if s.Const != nil {
		values = append(values, *s.Const)
	}
	for _, v := range values {
		if n, ok := v.(json.Number); ok {
			c.entry += numberCost(n)
			c.numbers++
			continue
		}
		c.entry += valueCost(v, stepCompare, -1)
	}
	for _, r := range []bool{s.Minimum != nil, s.Maximum != nil, s.ExclusiveMinimum != nil, s.ExclusiveMaximum != nil, s.MultipleOf != nil} {
		if r {
			c.numeric++
		}
	}
	c.multipleOf = s.MultipleOf != nil
	c.pattern, _ = s.Pattern.(*pattern)
	c.required = int64(len(s.Required))
	for _, names := range s.DependentRequired {
		c.required += int64(len(names))
	}
	c.valueDependent = c.numbers > 0 || usesUneval
	return c
}

// numberCost is what making n exact costs.
func numberCost(n json.Number) int64 {
	s := string(n)
	cost := int64(stepNumber + stepNumByte*len(s))
	if strings.ContainsAny(s, ".eE") {
		cost += stepNumFraction
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, _ := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		cost += stepNumExp * int64(max(e, -e))
	}
	return cost
}

// valueCost is what walking v costs at perValue a value: hashing it
// (uniqueItems), or comparing a value with it, a value of a schema (enum,
// const; limit < 0). Numbers cost their literal's cost, plus, for a
// comparison, stepNumberMax for the other side's. It stops once past a
// limit ≥ 0 and returns what it reached.
func valueCost(v any, perValue, limit int64) int64 {
	var total int64
	var walk func(v any) bool
	walk = func(v any) bool {
		total += perValue
		switch v := v.(type) {
		case map[string]any:
			// The hash sorts the keys.
			total += int64(len(v)) * int64(bits.Len(uint(len(v)))) * stepCompare
			for k, e := range v {
				total += int64(len(k)) / 16
				if !walk(e) {
					return false
				}
			}
		case []any:
			for _, e := range v {
				if !walk(e) {
					return false
				}
			}
		case string:
			total += int64(len(v)) / 16
		case json.Number:
			total += numberCost(v)
			if limit < 0 {
				total += stepNumberMax
			}
		}
		return limit < 0 || total <= limit
	}
	walk(v)
	return total
}

// errSpent is what a hook answers once the budget is spent: the library
// records a format error and skips the rest of that evaluation; the
// Validator then refuses the event for its budget, whatever the library
// concluded.
var errSpent = errors.New("validation budget spent")

// entryCost is what starting an evaluation of n on v costs.
func (t *template) entryCost(n *node, v any) int64 {
	c := n.cost.entry
	if !n.cost.valueDependent {
		return c
	}
	switch v := v.(type) {
	case json.Number:
		c += n.cost.numbers * numberCost(v)
	case map[string]any:
		if t.usesUneval {
			c += int64(len(v)) * stepUneval
		}
	case []any:
		if t.usesUneval {
			c += int64(len(v)) * stepUneval
		}
	}
	return c
}

// bodyCost is what an evaluation of n on v costs once started: its own
// keywords, and starting the evaluations of its children. It stops adding
// once past limit.
func (t *template) bodyCost(n *node, v any, limit int64) int64 {
	var c int64
	for _, k := range n.inPlace {
		c += t.entryCost(k, v)
	}
	switch v := v.(type) {
	case string:
		if n.cost.lengths {
			c += int64(len(v)) / 4
		}
		if p := n.cost.pattern; p != nil {
			c += patternCost(p, len(v))
		}
	case json.Number:
		if n.cost.numeric > 0 {
			c += numberCost(v) + n.cost.numeric*stepCompare
			if n.cost.multipleOf {
				c += 2 * numberCost(v) // the division, its GCD
			}
		}
	case map[string]any:
		c += t.objectCost(n, v, limit-c)
	case []any:
		c += t.arrayCost(n, v, limit-c)
	}
	return c
}

func patternCost(p *pattern, size int) int64 {
	return stepPattern + int64(size)*int64(p.insts+2)*stepPatternInstB
}

// objectCost is bodyCost's part for an object: every member is assumed to
// be evaluated by every subschema that might apply to it.
func (t *template) objectCost(n *node, obj map[string]any, limit int64) int64 {
	c := n.cost.required * stepCompare
	for _, k := range n.depSchemas {
		c += t.entryCost(k, obj)
	}
	for key, val := range obj {
		if c > limit {
			return c
		}
		c += stepChild
		if k := n.props[key]; k != nil {
			c += t.entryCost(k, val)
		}
		for _, p := range n.patternProps {
			c += patternCost(p.re, len(key)) + t.entryCost(p.n, val)
		}
		for _, k := range []*node{n.additional, n.unevalProps} {
			if k != nil {
				c += t.entryCost(k, val)
			}
		}
		if k := n.propertyNames; k != nil {
			// A validation of its own, on the name.
			c += stepEval + t.entryCost(k, key)
		}
	}
	return c
}

// arrayCost is bodyCost's part for an array.
func (t *template) arrayCost(n *node, arr []any, limit int64) int64 {
	var c int64
	if n.cost.unique && len(arr) > 1 {
		// Up to 20 items are compared pairwise (each with at most 19
		// others), more are hashed once each.
		times := int64(1)
		if len(arr) <= 20 {
			times = int64(len(arr))
		}
		c += times * valueCost(arr, stepHash, limit/times)
	}
	for i, val := range arr {
		if c > limit {
			return c
		}
		c += stepChild
		switch {
		case i < len(n.prefix):
			c += t.entryCost(n.prefix[i], val)
		case n.items != nil:
			c += t.entryCost(n.items, val)
		}
		for _, k := range []*node{n.contains, n.unevalItems} {
			if k != nil {
				c += t.entryCost(k, val)
			}
		}
	}
	return c
}
