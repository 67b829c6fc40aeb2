package schema

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// maxMessage bounds a violation's message: the library's messages can
// quote whole values of the event or of the schema.
const maxMessage = 300

// firstViolations lists up to limit of the failures in err's tree, in the
// library's order: its leaves, and the failed combinators (anyOf, oneOf,
// not, contains) as one failure each rather than every alternative's.
func firstViolations(err *jsonschema.ValidationError, limit int) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(out) >= limit {
			return
		}
		switch e.ErrorKind.(type) {
		case *kind.Schema, *kind.Group, *kind.Reference, *kind.AllOf:
			if len(e.Causes) > 0 {
				for _, c := range e.Causes {
					walk(c)
				}
				return
			}
		}
		out = append(out, Violation{Pointer: pointerOf(e.InstanceLocation), Message: message(e)})
	}
	walk(err)
	return out
}

// pointerOf writes the library's instance location as a JSON pointer.
func pointerOf(loc []string) string {
	path := make([]step, len(loc))
	for i, tok := range loc {
		path[i] = step{key: tok, index: -1}
	}
	return formatPointer(path)
}

// message says what e is, without quoting more of the event or the schema
// than a line holds.
func message(e *jsonschema.ValidationError) string {
	var s string
	switch k := e.ErrorKind.(type) {
	case *kind.Pattern:
		s = fmt.Sprintf("does not match the pattern %s", k.Want)
	case *kind.AdditionalProperties:
		s = fmt.Sprintf("has properties the schema does not allow: %s", names(k.Properties))
	case *kind.PropertyNames:
		s = fmt.Sprintf("the property name %q does not match propertyNames", clip(k.Property, 64))
		if len(e.Causes) > 0 {
			s += ": " + alternatives(e)
		}
	case *kind.MinContains:
		s = fmt.Sprintf("%d items match contains; at least %d must", len(k.Got), k.Want)
	case *kind.MaxContains:
		s = fmt.Sprintf("%d items match contains; at most %d may", len(k.Got), k.Want)
	case *kind.AnyOf:
		s = "matches none of anyOf's subschemas: " + alternatives(e)
	case *kind.OneOf:
		if k.Subschemas == nil {
			s = "matches none of oneOf's subschemas: " + alternatives(e)
		} else {
			s = fmt.Sprintf("matches oneOf's subschemas %d and %d; exactly one may match", k.Subschemas[0], k.Subschemas[1])
		}
	case *kind.FalseSchema:
		s = "is not allowed here (the schema is false)"
	case *kind.Format:
		// Only the meta-schema's check of a pattern (format "regex"): the
		// budget's hook fails nothing that is reported.
		s = fmt.Sprintf("is not a valid %s: %v", k.Want, k.Err)
	default:
		// The library's words: "at '<pointer>': <message>", for a copy
		// without causes or location.
		leaf := jsonschema.ValidationError{ErrorKind: e.ErrorKind}
		s = strings.TrimPrefix(leaf.Error(), "at '': ")
	}
	return clip(s, maxMessage)
}

// alternatives sums up why each alternative of a combinator failed.
func alternatives(e *jsonschema.ValidationError) string {
	var parts []string
	for _, c := range e.Causes {
		for _, v := range firstViolations(c, 1) {
			parts = append(parts, v.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// names lists a few property names, and how many there are in all.
func names(props []string) string {
	const show = 5
	quoted := make([]string, 0, show)
	for _, p := range props[:min(show, len(props))] {
		quoted = append(quoted, fmt.Sprintf("%q", clip(p, 64)))
	}
	s := strings.Join(quoted, ", ")
	if len(props) > show {
		s += fmt.Sprintf(" and %d more", len(props)-show)
	}
	return s
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
