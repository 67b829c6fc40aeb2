package processor

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// expr's memory budget counts the collections a program makes, not the
// iterations of a loop over a collection it was given, nor the bytes a string
// operation copies. So a program over a large event could loop for minutes
// (filter inside filter over data) or build gigabytes (a string doubled by
// let after let, join over a map of the data). The guard closes those holes:
//
//   - every iteration of every loop (each run of a closure: filter, map, all,
//     reduce, sortBy, ...) takes a step; an evaluation has MaxSteps of them
//     and TimeBudget of wall time, checked at each step;
//   - + on anything not known to be a number, and the builtins that build
//     strings from other values (join, replace, toJSON, string), refuse a
//     result over MaxResultBytes before building it.
const (
	// MaxSteps is the number of loop iterations one evaluation may run.
	MaxSteps = 1_000_000
	// TimeBudget is the wall time one evaluation may take, checked every 64
	// loop iterations. It is a safety net behind MaxSteps (about 0.25 s of
	// steps on the development machine), generous because, unlike the other
	// budgets, it depends on how loaded the machine is: an event must not
	// become a dead letter because the router was busy.
	TimeBudget = time.Second
)

// errBudget is what a guard says when it stops an evaluation.
var errBudget = errors.New("evaluation budget exceeded")

// The guard's helpers are functions (expr calls them directly; a method of
// the environment goes through reflection, ten times slower) handed the
// environment as $env, under names nobody writes by accident.
const (
	tickName   = "X__tick"
	concatName = "X__concat"
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

// tick takes one step of a loop and passes the loop body's value on.
func tick(params ...any) (any, error) {
	e, err := envArg(params)
	if err != nil || len(params) != 2 {
		return nil, errors.Join(err, errors.New("guard: tick takes one value"))
	}
	e.steps++
	if e.steps > MaxSteps {
		return nil, fmt.Errorf("%w: over %d loop iterations", errBudget, MaxSteps)
	}
	if e.steps&63 == 0 && time.Now().After(e.deadline) {
		return nil, fmt.Errorf("%w: over %v", errBudget, TimeBudget)
	}
	return params[1], nil
}

// concat is + with a size check.
func concat(params ...any) (any, error) {
	if _, err := envArg(params); err != nil || len(params) != 3 {
		return nil, errors.Join(err, errors.New("guard: concat takes two values"))
	}
	a, b := params[1], params[2]
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			if len(sa)+len(sb) > MaxResultBytes {
				return nil, fmt.Errorf("%w: string over %d bytes", errBudget, MaxResultBytes)
			}
			return sa + sb, nil
		}
	}
	out := runtime.Add(a, b)
	if v := reflect.ValueOf(out); v.Kind() == reflect.Slice && v.Len() > MemoryBudget {
		return nil, fmt.Errorf("%w: array over %d elements", errBudget, MemoryBudget)
	}
	return out, nil
}

// guard is the expr patch that puts the steps into loops and the size check
// into +. expr runs it after a first type check, so node types are known
// where the expression says them.
type guard struct{}

func (guard) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		n.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: tickName}, Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}, n.Node}}
	case *ast.BinaryNode:
		if n.Operator == "+" && !isNumber(n.Left.Type()) && !isNumber(n.Right.Type()) {
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: concatName}, Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}, n.Left, n.Right}})
		}
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

// sized replaces the builtin name with one that refuses, before doing the
// work, a string over MaxResultBytes. size estimates the result from the
// arguments.
func sized(name string, size func(args []any) int) expr.Option {
	orig := builtin.Builtins[builtin.Index[name]]
	return func(c *conf.Config) {
		f := *orig
		f.Fast, f.Safe = nil, nil
		f.Func = func(args ...any) (any, error) {
			if n := size(args); n > MaxResultBytes {
				return nil, fmt.Errorf("%w: %s would make over %d bytes", errBudget, name, MaxResultBytes)
			}
			switch {
			case orig.Func != nil:
				return orig.Func(args...)
			case orig.Fast != nil && len(args) == 1:
				return orig.Fast(args[0]), nil
			case orig.Safe != nil:
				v, _, err := orig.Safe(args...)
				return v, err
			}
			return nil, fmt.Errorf("%s: unexpected arguments", name)
		}
		c.Functions[name] = &f
	}
}

// guardOptions are the compile options that install the guard.
func guardOptions() []expr.Option {
	return []expr.Option{
		expr.Function(tickName, tick),
		expr.Function(concatName, concat),
		expr.Patch(guard{}),
		sized("join", func(args []any) int {
			n := approxSize(args[0], MaxResultBytes)
			if len(args) == 2 {
				if sep, ok := args[1].(string); ok {
					if v := reflect.ValueOf(args[0]); v.Kind() == reflect.Slice {
						n += v.Len() * len(sep)
					}
				}
			}
			return n
		}),
		sized("replace", func(args []any) int {
			if len(args) < 3 {
				return 0
			}
			s, _ := args[0].(string)
			old, _ := args[1].(string)
			repl, _ := args[2].(string)
			k := utf8.RuneCountInString(s) + 1
			if old != "" {
				k = strings.Count(s, old)
			}
			return len(s) + k*len(repl)
		}),
		sized("toJSON", func(args []any) int { return 3 * approxSize(args[0], MaxResultBytes) }),
		sized("string", func(args []any) int { return approxSize(args[0], MaxResultBytes) }),
	}
}

// approxSize estimates the bytes v takes as text, stopping once over limit.
func approxSize(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case string:
			n += len(x) + 2
		case []any:
			n += 2
			for _, e := range x {
				walk(e)
				n++
			}
		case map[string]any:
			n += 2
			for k, e := range x {
				n += len(k) + 4
				walk(e)
			}
		default:
			rv := reflect.ValueOf(v)
			switch rv.Kind() {
			case reflect.Slice, reflect.Array:
				for i := 0; i < rv.Len() && n <= limit; i++ {
					walk(rv.Index(i).Interface())
					n++
				}
			case reflect.Map:
				iter := rv.MapRange()
				for iter.Next() && n <= limit {
					walk(iter.Key().Interface())
					walk(iter.Value().Interface())
				}
			default:
				n += 24
			}
		}
	}
	walk(v)
	return n
}
