package processor

import (
	"errors"
	"fmt"
	"time"
)

// An evaluation's budgets. expr's VM cannot be interrupted from outside, and
// a fatal out-of-memory error is not a panic anyone can recover, so every
// piece of work an expression can ask for is counted before it is done, and
// the evaluation stops with errBudget when a count would go over (see
// docs/decisions/0020-processor-budgets.md). The counts are kept per
// evaluation, so that a chain of steps that are each legal cannot add up.
const (
	// MaxSteps is the loop iterations, and the elements walked by functions
	// that walk whole values (flatten, ==, in, uniq, ...), one evaluation
	// may take.
	MaxSteps = 1_000_000
	// TimeBudget is the wall time one evaluation may take, checked every 64
	// steps and at every charge. It is a safety net behind MaxSteps (about
	// 0.25 s of steps on the development machine), generous because, unlike
	// the other budgets, it depends on how loaded the machine is: an event
	// must not become a dead letter because the router was busy.
	TimeBudget = time.Second
	// MaxMadeBytes is the bytes of strings (and other flat data) that the
	// functions and + may make in one evaluation, garbage included.
	MaxMadeBytes = 8 << 20
	// MaxMadeElements is the array elements and map entries that functions,
	// + and the predicates that build collections (filter, map, groupBy,
	// sortBy) may make in one evaluation. Literals and ranges are counted
	// apart, by expr's own MemoryBudget.
	MaxMadeElements = 100_000
	// MaxDataBytes is the memory an event's data may take once decoded for
	// an expression. Decoding costs far more than the JSON: an object
	// is a map of about 336 bytes however small, so a 1 MiB event of
	// 130,000 {"k":1} decodes to 50 MiB. A larger event becomes a dead
	// letter without being decoded.
	MaxDataBytes = 24 << 20
)

// Per-value memory of decoded data, measured on amd64 with Go 1.26: a small
// map, a slice header with its interface, a boxed scalar with its slot.
const (
	objectBytes = 336
	arrayBytes  = 40
	valueBytes  = 24
	// smallData needs no estimate: an object takes at least 2 bytes of
	// JSON, so data this short cannot decode to more than MaxDataBytes.
	smallData = MaxDataBytes / (objectBytes/2 + valueBytes)
)

// dataSize estimates the memory p takes once decoded, in one pass over its
// bytes: objects, arrays and values (outside strings), and the copy of p
// that decoded strings share.
func dataSize(p []byte) int {
	objects, arrays, values := 0, 0, 1
	inString, escaped := false, false
	for _, c := range p {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			objects++
		case c == '[':
			arrays++
		case c == ',' || c == ':':
			values++
		}
	}
	return objectBytes*objects + arrayBytes*arrays + valueBytes*values + len(p)
}

// errBudget is what a guard says when it stops an evaluation.
var errBudget = errors.New("evaluation budget exceeded")

// budget is one evaluation's running counts.
type budget struct {
	steps, bytes, elems int
	deadline            time.Time
}

// step takes n steps.
func (b *budget) step(n int) error {
	if n < 0 || b.steps+n > MaxSteps {
		return fmt.Errorf("%w: over %d steps (loop iterations and elements walked)", errBudget, MaxSteps)
	}
	before := b.steps
	b.steps += n
	if before>>6 != b.steps>>6 && time.Now().After(b.deadline) {
		return fmt.Errorf("%w: over %v", errBudget, TimeBudget)
	}
	return nil
}

// charge counts what one operation (named by what, for the reason) is about
// to make and walk, before it does, and refuses it when a count would go over.
func (b *budget) charge(what string, c cost) error {
	switch {
	case c.bytes < 0 || b.bytes+c.bytes > MaxMadeBytes:
		return fmt.Errorf("%w: %s would take the bytes made over %d (%d MiB)", errBudget, what, MaxMadeBytes, MaxMadeBytes>>20)
	case c.elems < 0 || b.elems+c.elems > MaxMadeElements:
		return fmt.Errorf("%w: %s would take the elements made over %d", errBudget, what, MaxMadeElements)
	}
	if err := b.step(c.steps); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	b.bytes += c.bytes
	b.elems += c.elems
	return nil
}

// cost is what one operation makes and walks.
type cost struct{ steps, bytes, elems int }

// over is a cost no budget allows: what a size estimate returns once it
// knows the answer is too big, without counting on.
var over = cost{steps: MaxSteps + 1, bytes: MaxMadeBytes + 1, elems: MaxMadeElements + 1}

// mul multiplies sizes without overflow: anything past limit is limit+1.
func mul(a, b, limit int) int {
	if a < 0 || b < 0 {
		return limit + 1
	}
	if a != 0 && b > limit/a {
		return limit + 1
	}
	return a * b
}
