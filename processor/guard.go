package processor

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// The guard is an expr patch that puts the budget's counts (budget.go) into
// the program wherever it can make or walk something in proportion to its
// data rather than to its source:
//
//   - each iteration of a predicate (filter, map, all, reduce, ...) takes a
//     step; those that build a collection also make an element;
//   - a sized builtin (builtins.go) becomes a call of its stand-in, which
//     charges its cost before it runs;
//   - + on values not known to be numbers charges the string or array made;
//   - == and != between values that are not known scalars, and in with a
//     needle that is not, charge the elements they may compare;
//   - matches with a pattern from the data charges the pattern's compiled
//     size, and refuses one over maxPatternSize;
//   - a string argument of a method (received_at.Format(...)) charges what
//     the method may make of it.
//
// The helpers are functions (expr calls them directly; a method of the
// environment goes through reflection, ten times slower) handed the
// environment as $env, under names nobody writes by accident.
const (
	tickName     = "X__tick"
	tickMakeName = "X__tickMake"
	concatName   = "X__concat"
	equalName    = "X__equal"
	inName       = "X__in"
	matchesName  = "X__matches"
	argName      = "X__arg"
	stepsName    = "X__steps"
	fetchName    = "X__fetch"
)

func envArg(params []any) (*env, error) {
	if len(params) == 0 {
		return nil, errors.New("guard: no environment")
	}
	e, ok := params[0].(*env)
	if !ok {
		return nil, errors.New("guard: no environment")
	}
	return e, nil
}

// envAnd is envArg for a helper that takes n values after the environment.
func envAnd(params []any, n int) (*env, error) {
	e, err := envArg(params)
	if err == nil && len(params) != n+1 {
		err = fmt.Errorf("guard: %d values, not %d", len(params)-1, n)
	}
	return e, err
}

// tick takes one step of a loop and passes the loop body's value on.
func tick(params ...any) (any, error) {
	e, err := envAnd(params, 1)
	if err != nil {
		return nil, err
	}
	return params[1], e.budget.step(1)
}

// steps takes a step per element of the collection a loop with no
// predicate is about to walk, and passes the collection on.
func steps(params ...any) (any, error) {
	e, err := envAnd(params, 1)
	if err != nil {
		return nil, err
	}
	return params[1], e.budget.step(length(params[1]))
}

// tickMake is tick for a loop that makes an element per iteration.
func tickMake(params ...any) (any, error) {
	e, err := envAnd(params, 1)
	if err != nil {
		return nil, err
	}
	return params[1], e.budget.charge("a loop that builds a collection", cost{steps: 1, elems: 1})
}

// concat is + with its result charged.
func concat(params ...any) (any, error) {
	e, err := envAnd(params, 2)
	if err != nil {
		return nil, err
	}
	a, b := params[1], params[2]
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			if err := e.budget.charge("+", cost{bytes: len(sa) + len(sb)}); err != nil {
				return nil, err
			}
			return sa + sb, nil
		}
	}
	if n := length(a) + length(b); n > 0 {
		if err := e.budget.charge("+", cost{elems: n}); err != nil {
			return nil, err
		}
	}
	return runtime.Add(a, b), nil
}

// equal is == (and, negated, !=) with the elements it may compare charged:
// comparing walks both values in step, so at most the smaller one.
func equal(params ...any) (any, error) {
	e, err := envAnd(params, 3)
	if err != nil {
		return nil, err
	}
	a, b := params[2], params[3]
	steps := min(nodes(a, MaxSteps), nodes(b, MaxSteps))
	if err := e.budget.charge("==", cost{steps: steps}); err != nil {
		return nil, err
	}
	eq := runtime.Equal(a, b)
	if params[1] == "!=" {
		return !eq, nil
	}
	return eq, nil
}

// in is the in operator with the elements it may compare charged: a lookup
// in a map is one step; a search of an array compares the needle with each
// element.
func in(params ...any) (any, error) {
	e, err := envAnd(params, 2)
	if err != nil {
		return nil, err
	}
	needle, haystack := params[1], params[2]
	steps := 1
	if reflect.ValueOf(haystack).Kind() != reflect.Map {
		steps = mul(length(haystack), nodes(needle, MaxSteps), MaxSteps)
	}
	if err := e.budget.charge("in", cost{steps: steps}); err != nil {
		return nil, err
	}
	return runtime.In(needle, haystack), nil
}

// matches compiles a pattern the data supplies only when it is small: Go
// accepts patterns of millions of instructions, and an instruction costs
// about 240 bytes to compile (a 900-byte pattern made 24 MiB here).
func matches(params ...any) (any, error) {
	e, err := envAnd(params, 2)
	if err != nil {
		return nil, err
	}
	s, ok1 := params[1].(string)
	pattern, ok2 := params[2].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("matches: %T matches %T: both must be strings", params[1], params[2])
	}
	size := patternSize(pattern, maxPatternSize)
	if size > maxPatternSize {
		return nil, fmt.Errorf("%w: matches: pattern compiles to over %d instructions", errBudget, maxPatternSize)
	}
	if err := e.budget.charge("matches", cost{bytes: 256*size + 4*len(pattern), steps: len(s)}); err != nil {
		return nil, err
	}
	return regexp.MatchString(pattern, s)
}

// methodArg charges what a method of a time (Format, the one that can
// grow its argument) may make of a string argument, and passes it on.
func methodArg(params ...any) (any, error) {
	e, err := envAnd(params, 1)
	if err != nil {
		return nil, err
	}
	if s, ok := params[1].(string); ok {
		if err := e.budget.charge("a method call", cost{bytes: 16 * len(s)}); err != nil {
			return nil, err
		}
	}
	return params[1], nil
}

// guard is the patch; expr runs it after a first type check, so node types
// are known where the expression says them.
type guard struct{}

func (guard) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		guardBuiltin(node, n)
	case *ast.BinaryNode:
		guardBinary(node, n)
	case *ast.CallNode:
		if _, ok := n.Callee.(*ast.MemberNode); ok {
			for i, a := range n.Arguments {
				n.Arguments[i] = call(argName, a)
			}
		}
	case *ast.MemberNode:
		guardMember(node, n)
	}
}

// guardMember turns x.name and x["name"], where x's type is known only at
// run time (the event's data), into a call of fetch: expr's own member
// access reflects on every value, a third of an evaluation in the
// processors benchmark (issue 13). Optional chains and methods keep expr's
// access.
func guardMember(node *ast.Node, n *ast.MemberNode) {
	name, ok := n.Property.(*ast.StringNode)
	if !ok || n.Optional || n.Method {
		return
	}
	if t := n.Node.Type(); t != nil && t.Kind() != reflect.Interface {
		return
	}
	c := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fetchName},
		Arguments: []ast.Node{n.Node, &ast.StringNode{Value: name.Value}},
	}
	c.SetLocation((*node).Location())
	ast.Patch(node, c)
}

// fetch is x.name for a decoded JSON object without reflection; any other
// value goes to expr's own access, with its errors.
func fetch(params ...any) (any, error) {
	if m, ok := params[0].(map[string]any); ok {
		return m[params[1].(string)], nil
	}
	return runtime.Fetch(params[0], params[1]), nil
}

func guardBuiltin(node *ast.Node, n *ast.BuiltinNode) {
	r := reviewed[n.Name]
	switch r.kind {
	case loop, loopMake:
		name := tickName
		if r.kind == loopMake {
			name = tickMakeName
		}
		ticked := false
		for _, a := range n.Arguments {
			if p, ok := a.(*ast.PredicateNode); ok {
				p.Node, ticked = call(name, p.Node), true
			}
		}
		if !ticked && len(n.Arguments) > 0 {
			// sum(a) and count(a) loop with no predicate to tick.
			n.Arguments[0] = call(stepsName, n.Arguments[0])
		}
	case sized:
		ast.Patch(node, call(sizedName(n.Name), n.Arguments...))
	}
}

func guardBinary(node *ast.Node, n *ast.BinaryNode) {
	l, r := n.Left.Type(), n.Right.Type()
	switch {
	case n.Operator == "+" && !isNumber(l) && !isNumber(r):
		ast.Patch(node, call(concatName, n.Left, n.Right))
	case (n.Operator == "==" || n.Operator == "!=") && !isScalar(l) && !isScalar(r):
		ast.Patch(node, call(equalName, &ast.StringNode{Value: n.Operator}, n.Left, n.Right))
	case n.Operator == "in" && !isScalar(l):
		ast.Patch(node, call(inName, n.Left, n.Right))
	case n.Operator == "matches":
		if _, constant := n.Right.(*ast.StringNode); !constant {
			ast.Patch(node, call(matchesName, n.Left, n.Right))
		}
	}
}

// call is a call of a guard helper with $env first.
func call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: name},
		Arguments: append([]ast.Node{&ast.IdentifierNode{Value: "$env"}}, args...),
	}
}

func isNumber(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// isScalar: comparing such a value with anything takes one step.
func isScalar(t reflect.Type) bool {
	return t != nil && (isNumber(t) || t.Kind() == reflect.String || t.Kind() == reflect.Bool || t.Kind() == reflect.Struct)
}

// guardOptions are the compile options that install the guard, and deny
// every builtin that was not reviewed (predicates are refused before, by
// refused: expr parses them whether enabled or not).
func guardOptions() []expr.Option {
	opts := []expr.Option{
		expr.DisableAllBuiltins(),
		expr.Function(tickName, tick),
		expr.Function(tickMakeName, tickMake),
		expr.Function(concatName, concat),
		expr.Function(equalName, equal),
		expr.Function(inName, in),
		expr.Function(matchesName, matches),
		expr.Function(argName, methodArg),
		expr.Function(stepsName, steps),
		expr.Function(fetchName, fetch),
		expr.Patch(guard{}),
	}
	for name, r := range reviewed {
		opts = append(opts, expr.EnableBuiltin(name))
		if r.kind == sized {
			opts = append(opts, expr.Function(sizedName(name), sizedFunction(name, r.size)))
		}
	}
	return opts
}
