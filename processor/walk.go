package processor

import (
	"reflect"
	"regexp/syntax"
)

// The size estimates below walk a value as functions that walk it whole do:
// an array holding the same large array 40,000 times is 40,000 times its
// size, for flatten or == as for these. Each stops counting as soon as it
// passes its limit, so that estimating a huge value costs no more than the
// budget it is checked against.

// nodes counts the values in v, nested ones included, up to just past limit.
func nodes(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		n++
		if n > limit {
			return
		}
		switch x := v.(type) {
		case nil, bool, int, float64, string:
		case []any:
			for _, e := range x {
				if walk(e); n > limit {
					return
				}
			}
		case map[string]any:
			for _, e := range x {
				if walk(e); n > limit {
					return
				}
			}
		default:
			walkReflect(reflect.ValueOf(v), func(e any) bool { walk(e); return n <= limit })
		}
	}
	walk(v)
	return n
}

// copies counts the copies flatten and median make of the values in v:
// they build a new array at every level of nesting, so each number is
// copied once per array around it. Up to just past limit.
func copies(v any, limit int) int {
	n := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if walk(e, depth+1); n > limit {
					return
				}
			}
		case nil, bool, int, float64, string, map[string]any:
			n += depth
		default:
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
				walkReflect(rv, func(e any) bool { walk(e, depth+1); return n <= limit })
				return
			}
			n += depth
		}
	}
	walk(v, 0)
	return n
}

// walkReflect calls each with the elements of a slice, array or map of
// another type (a []string from split, a range's []int, groupBy's map), as
// long as each answers true.
func walkReflect(rv reflect.Value, each func(any) bool) {
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			if !each(rv.Index(i).Interface()) {
				return
			}
		}
	case reflect.Map:
		iter := rv.MapRange()
		for iter.Next() {
			if !each(iter.Value().Interface()) {
				return
			}
		}
	}
}

// length is the length of an array or map value; 0 for anything else.
func length(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case map[string]any:
		return len(x)
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len()
	}
	return 0
}

// textSize estimates the bytes v takes as JSON indented by indent bytes per
// level (0: compact, or as fmt prints it), up to just past limit. Strings
// count three bytes a byte, for the escapes \u00XX and U+FFFD take.
func textSize(v any, indent, limit int) int {
	n := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if n > limit {
			return
		}
		line := 1 + indent*(depth+1) // a newline and the indentation
		switch x := v.(type) {
		case string:
			n += 3*len(x) + 2
		case []any:
			n += 2 + line
			for _, e := range x {
				if n += line + 1; n > limit {
					return
				}
				walk(e, depth+1)
			}
		case map[string]any:
			n += 2 + line
			for k, e := range x {
				if n += line + 3*len(k) + 5; n > limit {
					return
				}
				walk(e, depth+1)
			}
		default:
			n += 24
			walkReflect(reflect.ValueOf(v), func(e any) bool {
				n += line + 1
				walk(e, depth+1)
				return n <= limit
			})
		}
	}
	walk(v, 0)
	return n
}

// maxPatternSize is the largest regular expression, in compiled
// instructions (a{1000} is a thousand), that matches may compile from a
// pattern the event supplies. Go bounds it at millions, a few hundred MB.
const maxPatternSize = 10_000

// patternSize estimates the instructions pattern compiles to, up to just
// past limit; a pattern that does not parse is 0 (compiling it fails
// before it allocates much).
func patternSize(pattern string, limit int) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0
	}
	return regexpSize(re, limit)
}

func regexpSize(re *syntax.Regexp, limit int) int {
	n := 1 + len(re.Rune)
	for _, sub := range re.Sub {
		if n += regexpSize(sub, limit); n > limit {
			return limit + 1
		}
	}
	if re.Op == syntax.OpRepeat {
		times := max(re.Min, re.Max, 1)
		n = mul(n, times, limit)
	}
	return min(n, limit+1)
}
