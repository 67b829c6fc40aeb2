package processor

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// Builtins are denied by default: an expression may call only the builtins
// reviewed here, so that an expr upgrade that adds one changes nothing until
// someone reviews it (TestEveryBuiltinReviewedOrRefused fails until then).
// A review puts a builtin in one of four kinds.
type reviewKind int

const (
	// pure makes nothing bigger than a number, or a part of an argument
	// that shares its memory (trim, take, first), and walks at most one
	// string or the top level of one array (len, indexOf).
	pure reviewKind = iota + 1
	// loop is a predicate builtin whose result is a number, a bool or an
	// element: each iteration is a step.
	loop
	// loopMake is a predicate builtin that builds a collection as it
	// iterates: each iteration is a step and an element made.
	loopMake
	// sized makes or walks in proportion to its arguments: its cost is
	// worked out from the arguments and charged before it runs.
	sized
)

// review is one builtin's verdict; size is the cost of a sized builtin.
type review struct {
	kind reviewKind
	size func(args []any) cost
}

// reviewed is every builtin an expression may call. Anything else, today
// only timezone (it reads the zone database from disk on every call), is
// refused when the processor is created.
var reviewed = map[string]review{
	"len": {kind: pure}, "type": {kind: pure}, "abs": {kind: pure}, "ceil": {kind: pure},
	"floor": {kind: pure}, "round": {kind: pure}, "int": {kind: pure}, "float": {kind: pure},
	"trim": {kind: pure}, "trimPrefix": {kind: pure}, "trimSuffix": {kind: pure},
	"indexOf": {kind: pure}, "lastIndexOf": {kind: pure}, "hasPrefix": {kind: pure},
	"hasSuffix": {kind: pure}, "now": {kind: pure}, "duration": {kind: pure}, "date": {kind: pure},
	"first": {kind: pure}, "last": {kind: pure}, "get": {kind: pure}, "take": {kind: pure},
	"bitnot": {kind: pure}, "bitand": {kind: pure}, "bitor": {kind: pure}, "bitxor": {kind: pure},
	"bitnand": {kind: pure}, "bitshl": {kind: pure}, "bitshr": {kind: pure}, "bitushr": {kind: pure},

	"all": {kind: loop}, "none": {kind: loop}, "any": {kind: loop}, "one": {kind: loop},
	"find": {kind: loop}, "findIndex": {kind: loop}, "findLast": {kind: loop},
	"findLastIndex": {kind: loop}, "count": {kind: loop}, "sum": {kind: loop}, "reduce": {kind: loop},

	"filter": {kind: loopMake}, "map": {kind: loopMake}, "groupBy": {kind: loopMake}, "sortBy": {kind: loopMake},

	"string":     {sized, func(a []any) cost { return cost{bytes: textSize(arg(a, 0), 0, MaxMadeBytes)} }},
	"toJSON":     {sized, func(a []any) cost { return cost{bytes: textSize(arg(a, 0), 2, MaxMadeBytes)} }},
	"upper":      {sized, func(a []any) cost { return cost{bytes: 3 * len(str(a, 0))} }},
	"lower":      {sized, func(a []any) cost { return cost{bytes: 3 * len(str(a, 0))} }},
	"toBase64":   {sized, func(a []any) cost { return cost{bytes: len(str(a, 0))/3*4 + 4} }},
	"fromBase64": {sized, func(a []any) cost { return cost{bytes: len(str(a, 0))} }},
	"fromJSON":   {sized, fromJSONCost},
	"repeat":     {sized, repeatCost},
	"replace":    {sized, replaceCost},
	"join":       {sized, joinCost},
	"split":      {sized, splitCost},
	"splitAfter": {sized, splitCost},
	"keys":       {sized, func(a []any) cost { return cost{elems: length(arg(a, 0))} }},
	"values":     {sized, func(a []any) cost { return cost{elems: length(arg(a, 0))} }},
	"toPairs":    {sized, func(a []any) cost { return cost{elems: 3 * length(arg(a, 0))} }},
	"fromPairs":  {sized, func(a []any) cost { return cost{elems: length(arg(a, 0)), steps: length(arg(a, 0))} }},
	"reverse":    {sized, func(a []any) cost { return cost{elems: length(arg(a, 0))} }},
	"sort":       {sized, func(a []any) cost { n := length(arg(a, 0)); return cost{elems: n, steps: n} }},
	"uniq":       {sized, uniqCost},
	"concat":     {sized, concatCost},
	"flatten":    {sized, flattenCost},
	"max":        {sized, walkArgs},
	"min":        {sized, walkArgs},
	"mean":       {sized, walkArgs},
	"median":     {sized, medianCost},
}

// RefusedError is a processor that calls a builtin outside the reviewed set.
type RefusedError struct {
	// Field is "filter" or "map"; Name the builtin.
	Field, Name string
	// Line and Column are 1-based.
	Line, Column int
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: function %s is not allowed in processors (line %d, column %d)", e.Field, e.Name, e.Line, e.Column)
}

// precheck refuses, before anything is compiled, a call of a builtin that
// was not reviewed (a *RefusedError) and a constant pattern that compiles
// to over maxPatternSize instructions (a *CompileError: expr compiles
// constant patterns at compile time). A source that does not parse is left
// to the compiler, which says where and why.
func precheck(field, src string) error {
	tree, err := parser.ParseWithConfig(src, conf.CreateNew())
	if err != nil {
		return nil
	}
	f := &prechecker{}
	ast.Walk(&tree.Node, f)
	switch {
	case f.refused != nil:
		at := position(src, f.refused.Location())
		return &RefusedError{Field: field, Name: f.refused.Name, Line: at.Line, Column: at.Column + 1}
	case f.pattern != nil:
		at := position(src, f.pattern.Location())
		return &CompileError{Field: field, Line: at.Line, Column: at.Column + 1, Offset: at.From,
			Message: fmt.Sprintf("pattern compiles to over %d instructions", maxPatternSize)}
	}
	return nil
}

// position is loc's line and (0-based) column in src.
func position(src string, loc file.Location) *file.Error {
	return (&file.Error{Location: loc}).Bind(file.NewSource(src))
}

type prechecker struct {
	refused *ast.BuiltinNode
	pattern *ast.StringNode
}

func (f *prechecker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if _, ok := reviewed[n.Name]; !ok && f.refused == nil {
			f.refused = n
		}
	case *ast.BinaryNode:
		if p, ok := n.Right.(*ast.StringNode); ok && n.Operator == "matches" && f.pattern == nil &&
			patternSize(p.Value, maxPatternSize) > maxPatternSize {
			f.pattern = p
		}
	}
}

// sizedName is the guard's stand-in for sized builtin name, handed $env.
func sizedName(name string) string { return "X__b_" + name }

// sizedFunction is the stand-in: it charges the builtin's cost, then calls it.
func sizedFunction(name string, size func([]any) cost) func(params ...any) (any, error) {
	orig := builtin.Builtins[builtin.Index[name]]
	return func(params ...any) (any, error) {
		e, err := envArg(params)
		if err != nil {
			return nil, err
		}
		args := params[1:]
		if err := e.budget.charge(name, size(args)); err != nil {
			return nil, err
		}
		switch {
		case orig.Func != nil:
			return orig.Func(args...)
		case orig.Safe != nil:
			v, _, err := orig.Safe(args...)
			return v, err
		case orig.Fast != nil && len(args) == 1:
			return orig.Fast(args[0]), nil
		}
		return nil, fmt.Errorf("%s: unexpected arguments", name)
	}
}

func arg(a []any, i int) any {
	if i < len(a) {
		return a[i]
	}
	return nil
}

func str(a []any, i int) string {
	s, _ := arg(a, i).(string)
	return s
}

func num(a []any, i int) int {
	switch n := arg(a, i).(type) {
	case int:
		return n
	case float64:
		if n > float64(MaxSteps) {
			return MaxSteps + MaxMadeBytes
		}
		return int(n)
	}
	return 0
}

func repeatCost(a []any) cost {
	return cost{bytes: mul(len(str(a, 0)), num(a, 1), MaxMadeBytes)}
}

func replaceCost(a []any) cost {
	s, old, repl := str(a, 0), str(a, 1), str(a, 2)
	k := utf8.RuneCountInString(s) + 1
	if old != "" {
		k = strings.Count(s, old)
	}
	return cost{bytes: len(s) + mul(k, len(repl), MaxMadeBytes)}
}

func joinCost(a []any) cost {
	return cost{bytes: textSize(arg(a, 0), 0, MaxMadeBytes) + mul(length(arg(a, 0)), len(str(a, 1)), MaxMadeBytes)}
}

// splitCost: each part is a string header (16 bytes) sharing the input.
func splitCost(a []any) cost {
	s, sep := str(a, 0), str(a, 1)
	n := utf8.RuneCountInString(s)
	if sep != "" {
		n = strings.Count(s, sep) + 1
	}
	if limit := num(a, 2); len(a) == 3 && limit >= 0 && limit < n {
		n = limit
	}
	return cost{elems: n, bytes: 16 * n}
}

// fromJSONCost: every value after the first follows a comma or opens an
// array or object, so counting those bounds the values made.
func fromJSONCost(a []any) cost {
	s := str(a, 0)
	n := 1 + strings.Count(s, ",") + strings.Count(s, "[") + strings.Count(s, "{")
	return cost{bytes: len(s), elems: n, steps: n}
}

// uniqCost: expr's uniq compares each element with every one kept so far.
func uniqCost(a []any) cost {
	n := length(arg(a, 0))
	return cost{elems: n, steps: mul(n, (n+1)/2, MaxSteps)}
}

func concatCost(a []any) cost {
	n := 0
	for _, v := range a {
		n += length(v)
	}
	return cost{elems: n}
}

// walkArgs: max, min and mean walk nested arrays to their numbers, making
// an argument list of each array on the way.
func walkArgs(a []any) cost {
	n := nodes(a, MaxSteps)
	return cost{steps: n, bytes: mul(16, n, MaxMadeBytes)}
}

// flattenCost: the result holds the numbers once, and each level of
// nesting copied them once more on the way.
func flattenCost(a []any) cost {
	c := copies(arg(a, 0), MaxSteps)
	return cost{steps: c, elems: nodes(arg(a, 0), MaxMadeElements), bytes: mul(16, c, MaxMadeBytes)}
}

// medianCost: median collects the numbers as flatten does, as float64s.
func medianCost(a []any) cost {
	c := copies(a, MaxSteps)
	return cost{steps: c, bytes: mul(8, c, MaxMadeBytes)}
}
