package schema

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ErrRefused is wrapped by every *CompileError, for callers that only need
// to know that a schema was refused.
var ErrRefused = errors.New("schema refused")

// CompileError is a schema that cannot be used: it does not compile, uses a
// feature the budget cannot bound, or is over a limit.
type CompileError struct {
	// Pointer is where in the schema the problem is, a JSON pointer ("" is
	// the whole schema).
	Pointer string
	// Reason says what is wrong, and names the limit when one was hit.
	Reason string
}

func (e *CompileError) Error() string {
	if e.Pointer == "" {
		return "schema: " + e.Reason
	}
	return "schema at " + e.Pointer + ": " + e.Reason
}

func (e *CompileError) Unwrap() error { return ErrRefused }

func refused(pointer, format string, args ...any) *CompileError {
	return &CompileError{Pointer: pointer, Reason: fmt.Sprintf(format, args...)}
}

// base is the URL a schema is compiled under: a URN, which names nothing
// that could be fetched. A reference that leaves the schema's own
// resources reaches the loader, which refuses it.
const base = "urn:rtstream:schema"

// draft2020 is the one dialect accepted: the contract's.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// Check reports whether raw is a schema that streams may carry under cfg:
// nil, or a *CompileError naming the pointer and why not.
func Check(raw []byte, cfg Config) error {
	cfg.setDefaults()
	_, err := compile(raw, cfg)
	return err
}

// compile checks raw against the limits, compiles it, and returns the
// template every validation clones.
func compile(raw []byte, cfg Config) (*template, error) {
	if len(raw) > cfg.MaxBytes {
		return nil, refused("", "%d bytes, over the limit of %d", len(raw), cfg.MaxBytes)
	}
	doc, nodes, err := decode(raw, cfg.MaxDepth, nil)
	var le *limitError
	switch {
	case errors.As(err, &le):
		return nil, refused(le.pointer, "%s", le.detail)
	case err != nil:
		return nil, refused("", "not valid JSON")
	case nodes > cfg.MaxSubschemas:
		return nil, refused("", "%d objects and booleans, over the limit of %d subschemas", nodes, cfg.MaxSubschemas)
	}
	if err := checkRoot(doc); err != nil {
		return nil, err
	}
	pats := &patterns{limit: cfg.MaxPatternInsts, seen: map[string]int{}}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	c.UseRegexpEngine(pats.compile)
	// Format and content assertions stay off (2020-12's default): formats
	// are annotations, and none of their validators runs on event data.
	if err := c.AddResource(base, doc); err != nil {
		return nil, refused("", "%v", err)
	}
	root, err := c.Compile(base)
	if err != nil {
		return nil, compileError(err, doc)
	}
	return newTemplate(root, cfg)
}

// checkRoot refuses what is not a schema at all, and other dialects: their
// keywords (items as an array, dependencies, $recursiveRef) would be
// validated differently from what the contract promises.
func checkRoot(doc any) error {
	obj, ok := doc.(map[string]any)
	if !ok {
		if _, ok := doc.(bool); ok {
			return nil
		}
		return refused("", "a schema is a JSON object or a boolean")
	}
	if s, ok := obj["$schema"]; ok {
		if str, _ := s.(string); strings.TrimSuffix(str, "#") != draft2020 {
			return refused("/$schema", "only JSON Schema 2020-12 (%s) is supported", draft2020)
		}
	}
	return nil
}

// noLoader is the compiler's loader: it refuses every URL, so that a schema
// can make the server fetch nothing, from the network or from its files.
// The 2020-12 meta-schemas are built into the library and never reach it.
type noLoader struct{}

// errRemote is what noLoader answers.
var errRemote = errors.New("schemas are self-contained: nothing is loaded from the network or from files")

func (noLoader) Load(string) (any, error) { return nil, errRemote }

// compileError turns the library's error into a *CompileError pointing into
// doc where it can.
func compileError(err error, doc any) *CompileError {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	var rxe *jsonschema.InvalidRegexError
	var lue *jsonschema.LoadURLError
	var pnf *jsonschema.JSONPointerNotFoundError
	var anf *jsonschema.AnchorNotFoundError
	switch {
	case errors.As(err, &sve) && errors.As(sve.Err, &ve):
		if v := firstViolations(ve, 1); len(v) > 0 {
			return refused(v[0].Pointer, "%s", v[0].Message)
		}
	case errors.As(err, &rxe):
		return refused(fragment(rxe.URL), "pattern %q: %v", rxe.Regex, rxe.Err)
	case errors.As(err, &lue):
		return refused(findRef(doc, lue.URL), "%s is outside this schema: %v", lue.URL, errRemote)
	case errors.As(err, &pnf):
		return refused(findRef(doc, pnf.URL), "reference to %s, which is not in the schema", strings.TrimPrefix(pnf.URL, base))
	case errors.As(err, &anf):
		return refused(findRef(doc, anf.Reference), "reference to %s, which is not in the schema", anf.Reference)
	}
	return refused("", "%s", strings.ReplaceAll(err.Error(), base, ""))
}

// fragment is the JSON pointer of a location in the schema ("urn:...#/a"),
// or "" for one elsewhere.
func fragment(loc string) string {
	f, ok := strings.CutPrefix(loc, base+"#")
	if !ok {
		return ""
	}
	if u, err := url.PathUnescape(f); err == nil {
		return u
	}
	return f
}

// findRef finds where doc refers to target ($ref, $dynamicRef, $schema),
// for an error that names only the target; "" when no reference matches.
func findRef(doc any, target string) string {
	var found string
	var walk func(v any, at string) bool
	walk = func(v any, at string) bool {
		switch v := v.(type) {
		case map[string]any:
			for _, kw := range []string{"$ref", "$dynamicRef", "$schema"} {
				if s, ok := v[kw].(string); ok && s != "" && refMatches(s, target) {
					found = at + "/" + escapeToken(kw)
					return true
				}
			}
			for k, sub := range v {
				if walk(sub, at+"/"+escapeToken(k)) {
					return true
				}
			}
		case []any:
			for i, sub := range v {
				if walk(sub, fmt.Sprintf("%s/%d", at, i)) {
					return true
				}
			}
		}
		return false
	}
	walk(doc, "")
	return found
}

// refMatches reports whether reference ref, as written, may be the one the
// library resolved to target.
func refMatches(ref, target string) bool {
	if ref == target || strings.HasSuffix(target, ref) {
		return true
	}
	_, rf, _ := strings.Cut(ref, "#")
	_, tf, _ := strings.Cut(target, "#")
	return rf != "" && rf == tf
}

// patterns is the regular-expression engine of one compilation: Go's
// regexp, with the instructions of all the schema's patterns counted
// against MaxPatternInsts before each is compiled.
type patterns struct {
	limit, used int
	seen        map[string]int // instructions of each pattern compiled
}

// pattern is a compiled pattern and its size, which its matches cost.
// class, when set, matches it faster (see newClassRun).
type pattern struct {
	*regexp.Regexp
	insts int
	class *classRun
}

// Match reports whether p's pattern matches b, as regexp's Match does.
func (p *pattern) Match(b []byte) bool {
	if p.class != nil {
		return p.class.match(b)
	}
	return p.Regexp.Match(b)
}

func (p *patterns) compile(s string) (jsonschema.Regexp, error) {
	insts, ok := p.seen[s]
	if !ok {
		re, err := syntax.Parse(s, syntax.Perl)
		if err != nil {
			return nil, err
		}
		over := fmt.Errorf("the schema's patterns compile to over %d instructions in all, the limit", p.limit)
		// Estimated before compiling, so that compiling allocates little
		// more than the limit allows.
		if regexpSize(re, p.limit) > p.limit-p.used {
			return nil, over
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			return nil, err
		}
		if insts = len(prog.Inst); insts > p.limit-p.used {
			return nil, over
		}
		p.used += insts
		p.seen[s] = insts
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	return &pattern{Regexp: re, insts: insts, class: newClassRun(s)}, nil
}

// regexpSize estimates the instructions re compiles to, up to just past
// limit, without compiling it: a{1000}{1000} would allocate a million. A
// repetition is its copies, an optional copy one more each, anything else
// its own instruction (or a literal's runes) and its parts.
func regexpSize(re *syntax.Regexp, limit int) int {
	sub := 0
	for _, s := range re.Sub {
		if sub += regexpSize(s, limit); sub > limit {
			return limit + 1
		}
	}
	switch {
	case re.Op == syntax.OpRepeat:
		if re.Min > 0 && sub > limit/re.Min {
			return limit + 1
		}
		extra := sub + 1 // a star after the copies, for x{n,}
		if re.Max >= 0 {
			extra = min(re.Max-re.Min, limit) * (sub + 1)
		}
		return min(re.Min*sub+extra, limit+1)
	case re.Op == syntax.OpLiteral:
		return min(len(re.Rune)+sub, limit+1)
	}
	return min(1+sub, limit+1)
}
