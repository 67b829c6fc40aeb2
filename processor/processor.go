// Package processor compiles and runs a stream's processor: a filter and a map
// expression (expr-lang) over one event. It is pure Go, with no Kafka and no
// HTTP, so that the API can compile a definition at creation (and refuse a bad
// one with its position) and the router can run the very same program.
package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Cost bounds. expr's VM cannot be interrupted, so the bounds are on what an
// expression may be and on the work the VM counts while it runs; every loop in
// expr runs over a collection whose size the VM counts, so together they bound
// an evaluation's time (see docs/decisions/0013-processors.md).
const (
	// MaxSourceBytes is the longest expression accepted.
	MaxSourceBytes = 4 << 10
	// MaxNodes is the largest expression tree accepted (expr's default is
	// 10000).
	MaxNodes = 1000
	// MemoryBudget is expr's runtime budget per evaluation: it counts the
	// elements of every collection a loop or range makes or walks, and the
	// bytes repeat() makes. expr's default is 1e6; a tenth of it keeps the
	// worst evaluation in the low milliseconds.
	MemoryBudget = 100_000
	// MaxResultBytes is the largest JSON a map may make for one event.
	MaxResultBytes = 1 << 20
)

// ErrEval marks an evaluation that failed because of the event: the same event
// fails the same way every time, so it is never worth retrying.
var ErrEval = errors.New("processor: evaluation failed")

// CompileError is a bad expression, with where it went wrong.
type CompileError struct {
	// Field is "filter" or "map".
	Field string
	// Line and Column are 1-based; Offset is the 0-based rune offset.
	Line, Column, Offset int
	// Message says what is wrong, without the position.
	Message string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%s: %s (line %d, column %d)", e.Field, e.Message, e.Line, e.Column)
}

// env is what an expression sees. A struct rather than a map makes an unknown
// name a compile error instead of a nil at run time.
type env struct {
	Data       any       `expr:"data"`
	EventID    string    `expr:"event_id"`
	ReceivedAt time.Time `expr:"received_at"`

	// budget is this evaluation's running counts (budget.go).
	budget budget
}

// Program is a compiled processor. A nil or empty Program passes every event
// through unchanged. It is safe for concurrent use.
type Program struct {
	filter, mapping *vm.Program
	// timeBudget is TimeBudget; only tests that must see another budget
	// hit first on a loaded machine set it longer.
	timeBudget time.Duration
}

// Compile compiles a processor definition; an empty expression is absent (no
// filter: every event passes; no map: data is unchanged). The error is a
// *CompileError, or a *RefusedError for a call of a builtin that was not
// reviewed (builtins.go).
func Compile(filter, mapping string) (*Program, error) {
	p := &Program{timeBudget: TimeBudget}
	var err error
	if p.filter, err = compile("filter", filter, expr.AsBool()); err != nil {
		return nil, err
	}
	if p.mapping, err = compile("map", mapping); err != nil {
		return nil, err
	}
	return p, nil
}

func compile(field, src string, opts ...expr.Option) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if len(src) > MaxSourceBytes {
		return nil, &CompileError{Field: field, Line: 1, Column: 1, Message: fmt.Sprintf("expression is longer than %d bytes", MaxSourceBytes)}
	}
	if err := precheck(field, src); err != nil {
		return nil, err
	}
	// The env's type is given as a struct value, not a pointer: expr then
	// loads data, event_id and received_at by field index instead of its
	// reflective name lookup (16% of an evaluation, issue 13). Eval runs
	// the programs on a *env, which expr dereferences.
	base := append([]expr.Option{expr.Env(env{}), expr.MaxNodes(MaxNodes)}, opts...)
	// Compiled twice: once as written, for the type errors that the
	// guard's stand-ins (which take and give any) would hide, then with
	// the guard, to run.
	if _, err := expr.Compile(src, base...); err != nil {
		return nil, compileError(field, err)
	}
	// The guard adds up to three nodes per node it patches (a call, $env,
	// an operator's name): MaxNodes is checked on the source, above.
	guarded := append([]expr.Option{expr.Env(env{}), expr.MaxNodes(4 * MaxNodes)}, opts...)
	prog, err := expr.Compile(src, append(guarded, guardOptions()...)...)
	if err != nil {
		return nil, compileError(field, err)
	}
	return prog, nil
}

func compileError(field string, err error) error {
	ce := &CompileError{Field: field, Line: 1, Column: 1, Message: err.Error()}
	var fe *file.Error
	if errors.As(err, &fe) {
		// A type error of the whole expression (a filter that is not a bool)
		// has no location: it is about all of it, from line 1, column 1.
		ce.Message = fe.Message
		if fe.Line > 0 {
			ce.Line, ce.Column, ce.Offset = fe.Line, fe.Column+1, fe.From
		}
	}
	return ce
}

// Empty reports whether p passes every event through unchanged.
func (p *Program) Empty() bool { return p == nil || (p.filter == nil && p.mapping == nil) }

// Event is what a program evaluates.
type Event struct {
	ID         string
	ReceivedAt time.Time
	// Data is the event's JSON value.
	Data json.RawMessage
}

// vms are reused: a VM keeps its stack between runs, and one per goroutine
// at a time is all the router needs.
var vms = sync.Pool{New: func() any { return &vm.VM{MemoryBudget: MemoryBudget} }}

// Eval runs p on one event. keep is false when the filter dropped the event;
// otherwise out is the result's data: the event's own bytes without a map, the
// map's value as JSON with one. An error wraps ErrEval: the event's data does
// not fit the expression (a field of the wrong type, a budget exceeded, a
// result that is not JSON).
func (p *Program) Eval(ev Event) (out json.RawMessage, keep bool, err error) {
	if p.Empty() {
		return ev.Data, true, nil
	}
	e := &env{EventID: ev.ID, ReceivedAt: ev.ReceivedAt, budget: budget{deadline: time.Now().Add(p.timeBudget)}}
	if len(ev.Data) > smallData {
		if n := dataSize(ev.Data); n > MaxDataBytes {
			return nil, false, fmt.Errorf("%w: %w: data would take about %d MiB decoded, over %d MiB", ErrEval, errBudget, n>>20, MaxDataBytes>>20)
		}
	}
	if e.Data, err = decodeData(ev.Data); err != nil {
		return nil, false, fmt.Errorf("%w: data is not JSON: %w", ErrEval, err)
	}
	machine := vms.Get().(*vm.VM)
	defer vms.Put(machine)
	if p.filter != nil {
		v, err := machine.Run(p.filter, e)
		if err != nil {
			return nil, false, evalError("filter", err)
		}
		b, ok := v.(bool)
		if !ok {
			return nil, false, fmt.Errorf("%w: filter: result is %T, not a bool", ErrEval, v)
		}
		if !b {
			return nil, false, nil
		}
	}
	if p.mapping == nil {
		return ev.Data, true, nil
	}
	v, err := machine.Run(p.mapping, e)
	if err != nil {
		return nil, false, evalError("map", err)
	}
	out, err = marshal(v)
	if err != nil {
		return nil, false, fmt.Errorf("%w: map: %w", ErrEval, err)
	}
	return out, true, nil
}

// numbers turns JSON numbers into ints when they are whole and fit, floats
// otherwise: data.n % 2 then works, and an id of 2^60 stays exact in a map's
// result.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	}
	return v
}

// evalError keeps expr's message and position but not its multi-line snippet,
// which would make a poor one-line reason.
func evalError(field string, err error) error {
	var fe *file.Error
	if errors.As(err, &fe) && fe.Line > 0 {
		return fmt.Errorf("%w: %s: %s (line %d, column %d)", ErrEval, field, fe.Message, fe.Line, fe.Column+1)
	}
	return fmt.Errorf("%w: %s: %w", ErrEval, field, err)
}

// marshal encodes a map's value, refusing results over MaxResultBytes.
// Without HTML escaping: results carry data as JSON means it, like the
// passthrough does. appendJSON writes the usual values; encoding/json writes
// (or refuses) the rest, in the same bytes.
func marshal(v any) (json.RawMessage, error) {
	out, ok := appendJSON(make([]byte, 0, 128), v, 0)
	if !ok {
		// Over the limit already, or a value appendJSON leaves to
		// encoding/json, which builds all of it before anyone can look: a
		// value holding one large array 40,000 times must be refused
		// from an estimate first.
		if len(out) > MaxResultBytes || textSize(v, 0, 4*MaxResultBytes) > 4*MaxResultBytes {
			return nil, fmt.Errorf("%w: result is over %d bytes", errBudget, MaxResultBytes)
		}
		var err error
		if out, err = marshalStd(v); err != nil {
			return nil, err
		}
	}
	if len(out) > MaxResultBytes {
		return nil, fmt.Errorf("%w: result is %d bytes, over %d", errBudget, len(out), MaxResultBytes)
	}
	return out, nil
}
