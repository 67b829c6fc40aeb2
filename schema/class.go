package schema

import (
	"regexp/syntax"
	"unicode/utf8"
)

// classRun matches the commonest shape of pattern in event schemas, a run
// of one character class over the whole string (^[a-z0-9-]+$,
// ^[A-Z]{3}$, ^\d*$), without a regexp machine: Go's regexp takes about
// 200 ns for an eight-byte identifier, which was a tenth of validating a
// ten-field event. TestClassRunMatchesRegexp holds it to regexp.
type classRun struct {
	ascii    [128]bool
	ranges   []rune // pairs lo, hi, as syntax.Regexp.Rune
	min, max int    // max -1: no bound
}

// newClassRun returns the classRun of pattern s, or nil when s has another
// shape.
func newClassRun(s string) *classRun {
	re, err := syntax.Parse(s, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) != 3 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[2].Op != syntax.OpEndText {
		return nil
	}
	c := &classRun{}
	run := re.Sub[1]
	switch run.Op {
	case syntax.OpCharClass:
		c.min, c.max = 1, 1
	case syntax.OpPlus:
		c.min, c.max, run = 1, -1, run.Sub[0]
	case syntax.OpStar:
		c.min, c.max, run = 0, -1, run.Sub[0]
	case syntax.OpRepeat:
		c.min, c.max, run = run.Min, run.Max, run.Sub[0]
	default:
		return nil
	}
	if run.Op != syntax.OpCharClass || run.Flags&syntax.FoldCase != 0 {
		return nil
	}
	c.ranges = run.Rune
	for i := 0; i+1 < len(c.ranges); i += 2 {
		for r := c.ranges[i]; r <= c.ranges[i+1] && r < utf8.RuneSelf; r++ {
			c.ascii[r] = true
		}
	}
	return c
}

func (c *classRun) has(r rune) bool {
	if r < utf8.RuneSelf {
		return c.ascii[r]
	}
	for i := 0; i+1 < len(c.ranges); i += 2 {
		if r >= c.ranges[i] && r <= c.ranges[i+1] {
			return true
		}
	}
	return false
}

// match reports whether b is a run of the class of allowed length.
func (c *classRun) match(b []byte) bool {
	n := 0
	for i := 0; i < len(b); n++ {
		r, size := rune(b[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
		}
		if !c.has(r) || c.max >= 0 && n >= c.max {
			return false
		}
		i += size
	}
	return n >= c.min
}
