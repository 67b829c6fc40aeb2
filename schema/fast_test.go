package schema

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// verdicts returns the library's verdict and the fast evaluator's on one
// schema and event, neither under a budget.
func verdicts(t testing.TB, schema, event string) (library, fast bool, ok bool) {
	t.Helper()
	tpl, err := compile([]byte(schema), withDefaults(Config{MaxInPlace: 1 << 10}))
	if err != nil {
		return false, false, false
	}
	if !tpl.fast {
		return false, false, false
	}
	v, _, err := decode([]byte(event), 1<<10, nil)
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	library = tpl.nodes[0].s.Validate(v) == nil
	m := &meter{}
	m.startRequest(context.Background(), 1<<60)
	m.startEvent(1 << 60)
	fast = (&fastEval{m: m, maxDepth: 1 << 10}).valid(tpl.nodes[0], []byte(event))
	return library, fast, true
}

// TestFastAgreesWithLibrary: cases chosen at the edges of each keyword.
func TestFastAgreesWithLibrary(t *testing.T) {
	tests := []struct{ schema, events string }{
		{`{"type":"integer"}`, `1|1.0|1.5|1e2|1.5e1|-0|0.0|"1"|null|100000000000000000000000000001|12e-1`},
		{`{"type":["string","null"]}`, `"a"|null|1|[]`},
		{`{"minimum":1.5,"exclusiveMaximum":3}`, `1.5|1.49999999999999999999|3|2.999|-1|1e0|0.15e1|300e-2|"x"`},
		{`{"maximum":-2,"exclusiveMinimum":-5}`, `-2|-5|-4.9|-2.0000001|0|-1e1`},
		{`{"multipleOf":0.1}`, `0.3|0.35|1|1e-1|-0.2|0`},
		{`{"multipleOf":3}`, `9|9.0|10|3e3|-6|0.3e1`},
		{`{"enum":[1,"1",[1],{"a":1},null,true]}`, `1|1.0|"1"|[1]|[1.0]|{"a":1.0}|{"a":1,"b":2}|null|true|false|10e-1`},
		{`{"const":{"a":[1,{"b":null}]}}`, `{"a":[1,{"b":null}]}|{"a":[1.0,{"b":null}]}|{"a":[1,{"b":false}]}|{"a":[1]}`},
		{`{"enum":["a\nb","é"],"const":"é"}`, `"é"|"\u00e9"|"a\nb"|"e"`},
		{`{"minLength":2,"maxLength":3}`, `"ab"|"é"|"éé"|"abcd"|"a\u0000"|1`},
		{`{"pattern":"^a|b$"}`, `"a"|"xb"|"x"|"\u0061"|""|5`},
		{`{"minItems":1,"maxItems":2,"uniqueItems":true}`, `[]|[1]|[1,2]|[1,1.0]|[1,2,3]|[{"a":1},{"a":1.0}]|[[1],[2]]|{}`},
		{`{"prefixItems":[{"type":"string"}],"items":{"type":"integer"}}`, `[]|["a"]|["a",1]|[1]|["a","b"]|["a",1,2.5]`},
		{`{"contains":{"type":"string"},"minContains":2,"maxContains":3}`, `["a"]|["a","b"]|["a","b","c","d"]|[1,2]|[]`},
		{`{"contains":{"type":"string"},"minContains":0}`, `[]|[1]`},
		{`{"contains":false}`, `[]|[1]|"x"`},
		{`{"required":["a","b"],"minProperties":2,"maxProperties":3}`, `{"a":1,"b":2}|{"a":1}|{"a":1,"b":2,"c":3,"d":4}|[]`},
		{`{"dependentRequired":{"a":["b"]},"dependentSchemas":{"c":{"required":["d"]}}}`, `{"a":1}|{"a":1,"b":1}|{"c":1}|{"c":1,"d":1}|{}`},
		{`{"properties":{"a":{"type":"string"}},"patternProperties":{"^b":{"type":"integer"},"c$":false},"additionalProperties":{"type":"null"}}`,
			`{"a":"x"}|{"a":1}|{"bb":1}|{"bb":"x"}|{"xc":1}|{"z":null}|{"z":1}|{"a b":null}`},
		{`{"properties":{"a/b":{"type":"string"},"é":{"type":"integer"}},"additionalProperties":false}`, `{"a/b":"x"}|{"a\/b":"x"}|{"\u00e9":1}|{"é":"x"}|{"x":1}`},
		{`{"propertyNames":{"pattern":"^[a-z]+$","maxLength":3}}`, `{"ab":1}|{"abcd":1}|{"A":1}|{}`},
		{`{"allOf":[{"type":"object"},{"required":["a"]}],"anyOf":[{"required":["b"]},{"required":["c"]}]}`, `{"a":1,"b":1}|{"a":1}|{"b":1}|{"a":1,"c":1}`},
		{`{"oneOf":[{"type":"integer"},{"minimum":2}]}`, `1|3|2.5|"x"`},
		{`{"not":{"type":"string"}}`, `1|"x"`},
		{`{"if":{"type":"integer"},"then":{"minimum":10},"else":{"type":"string"}}`, `12|5|"x"|true`},
		{`{"if":{"type":"integer"},"then":{"minimum":10}}`, `12|5|"x"`},
		{`{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}},"required":["v"]}},"$ref":"#/$defs/n"}`, `{"v":1}|{"v":1,"next":{"v":2}}|{"v":1,"next":{}}`},
		{`{"$ref":"#/$defs/a","type":"string","$defs":{"a":{"maxLength":1}}}`, `"a"|"ab"|1`},
		{`{"items":{"$ref":"#"},"type":"array"}`, `[]|[[]]|[[1]]|[[[]]]`},
		{`true`, `1|{}`},
		{`false`, `1|{}`},
		{`{"properties":{"a":true,"b":false}}`, `{"a":1}|{"b":1}|{}`},
	}
	for _, tc := range tests {
		for _, ev := range strings.Split(tc.events, "|") {
			lib, fast, ok := verdicts(t, tc.schema, ev)
			if !ok {
				t.Fatalf("%s does not compile", tc.schema)
			}
			if lib != fast {
				t.Errorf("%s on %s: library %v, fast %v", tc.schema, ev, lib, fast)
			}
		}
	}
}

// TestFastNeverMoreLenientOnDuplicateKeys: with a member named twice, the
// library sees the last value and the fast evaluator checks both, so it may
// refuse where the library accepts (the library then decides), never the
// reverse.
func TestFastNeverMoreLenientOnDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ schema, event string }{
		{`{"properties":{"a":{"type":"integer"}}}`, `{"a":"x","a":1}`},
		{`{"properties":{"a":{"type":"integer"}}}`, `{"a":1,"a":"x"}`},
		{`{"minProperties":2}`, `{"a":1,"a":2}`},
		{`{"maxProperties":1}`, `{"a":1,"a":2}`},
		{`{"required":["a","b"]}`, `{"a":1,"a":2}`},
		{`{"const":{"a":2}}`, `{"a":1,"a":2}`},
		{`{"uniqueItems":true}`, `[{"a":1,"a":2},{"a":2}]`},
		{`{"additionalProperties":false,"properties":{"a":true}}`, `{"a":1,"a":2}`},
	} {
		lib, fast, _ := verdicts(t, tc.schema, tc.event)
		if fast && !lib {
			t.Errorf("%s on %s: the fast evaluator accepts what the library refuses", tc.schema, tc.event)
		}
	}
}

// TestFastAgreesOnRandomPairs: schemas and events made at random from the
// keywords and values above, many times.
func TestFastAgreesOnRandomPairs(t *testing.T) {
	n := 6000
	if testing.Short() || raceSlowdown > 1 {
		n = 1000
	}
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	valid, disagree := 0, 0
	for i := range n {
		schema := g.schema(3)
		for range 4 {
			ev := g.value(3)
			lib, fast, ok := verdicts(t, schema, ev)
			if !ok {
				break
			}
			if lib {
				valid++
			}
			if lib != fast {
				if disagree++; disagree <= 10 {
					t.Errorf("pair %d: %s on %s: library %v, fast %v", i, schema, ev, lib, fast)
				}
			}
		}
	}
	t.Logf("%d schemas, %d valid pairs, %d disagreements", n, valid, disagree)
}

// gen makes random schemas and JSON values from small domains, so that
// keywords meet values they accept and values they refuse.
type gen struct{ r *rand.Rand }

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

var (
	genNumbers = []string{"0", "1", "1.0", "1.5", "-2", "10", "1e1", "0.1", "3", "2.5e0", "-0", "0.30", "7"}
	genStrings = []string{`""`, `"a"`, `"ab"`, `"b"`, `"abc"`, `"1"`, `"é"`, `"a\nb"`, `"ba"`}
	genNames   = []string{"a", "b", "c", "ab"}
)

func (g *gen) value(depth int) string {
	k := g.r.IntN(7)
	if depth == 0 {
		k = g.r.IntN(4)
	}
	switch k {
	case 0:
		return g.pick("null", "true", "false")
	case 1, 2:
		return g.pick(genNumbers...)
	case 3:
		return g.pick(genStrings...)
	case 4, 5:
		var ms []string
		used := map[string]bool{}
		for range g.r.IntN(4) {
			name := g.pick(genNames...)
			if !used[name] {
				used[name] = true
				ms = append(ms, fmt.Sprintf("%q:%s", name, g.value(depth-1)))
			}
		}
		return "{" + strings.Join(ms, ",") + "}"
	}
	var es []string
	for range g.r.IntN(4) {
		es = append(es, g.value(depth-1))
	}
	return "[" + strings.Join(es, ",") + "]"
}

func (g *gen) schema(depth int) string {
	if depth == 0 || g.r.IntN(8) == 0 {
		if g.r.IntN(3) == 0 {
			return g.pick("true", "false")
		}
		return `{"type":"` + g.pick("null", "boolean", "integer", "number", "string", "array", "object") + `"}`
	}
	var kws []string
	add := func(kw, v string) { kws = append(kws, fmt.Sprintf("%q:%s", kw, v)) }
	sub := func() string { return g.schema(depth - 1) }
	list := func() string {
		var ss []string
		for range 1 + g.r.IntN(3) {
			ss = append(ss, sub())
		}
		return "[" + strings.Join(ss, ",") + "]"
	}
	for range 1 + g.r.IntN(4) {
		switch g.r.IntN(24) {
		case 0:
			add("type", g.pick(`"integer"`, `["string","number"]`, `"object"`, `"array"`, `["null","boolean"]`))
		case 1:
			add("enum", "["+g.value(1)+","+g.value(1)+","+g.pick(genNumbers...)+"]")
		case 2:
			add("const", g.value(2))
		case 3:
			add(g.pick("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), g.pick(genNumbers...))
		case 4:
			add("multipleOf", g.pick("0.5", "2", "3", "0.1", "1.5"))
		case 5:
			add(g.pick("minLength", "maxLength"), fmt.Sprint(g.r.IntN(4)))
		case 6:
			add("pattern", g.pick(`"^a"`, `"b$"`, `"[0-9]"`, `"^$"`, `"a|b"`))
		case 7:
			add(g.pick("minItems", "maxItems", "minProperties", "maxProperties"), fmt.Sprint(g.r.IntN(3)))
		case 8:
			add("uniqueItems", g.pick("true", "false"))
		case 9:
			add("items", sub())
		case 10:
			add("prefixItems", list())
		case 11:
			add("contains", sub())
			if g.r.IntN(2) == 0 {
				add(g.pick("minContains", "maxContains"), fmt.Sprint(g.r.IntN(3)))
			}
		case 12:
			add("required", `["`+g.pick(genNames...)+`"]`)
		case 13:
			add("dependentRequired", `{"`+g.pick(genNames...)+`":["`+g.pick(genNames...)+`"]}`)
		case 14:
			add("properties", `{"`+g.pick(genNames...)+`":`+sub()+`,"`+g.pick(genNames...)+`":`+sub()+`}`)
		case 15:
			add("patternProperties", `{"`+g.pick("^a", "b$", ".")+`":`+sub()+`}`)
		case 16:
			add("additionalProperties", sub())
		case 17:
			add("propertyNames", sub())
		case 18:
			add("dependentSchemas", `{"`+g.pick(genNames...)+`":`+sub()+`}`)
		case 19:
			add(g.pick("allOf", "anyOf", "oneOf"), list())
		case 20:
			add("not", sub())
		case 21:
			add("if", sub())
			add(g.pick("then", "else"), sub())
		case 22:
			add("items", `{"$ref":"#"}`)
		case 23:
			add("properties", `{"a":{"$ref":"#"}}`)
		}
	}
	return "{" + strings.Join(kws, ",") + "}"
}

// withDefaults is cfg with its zero fields set, as NewCache sets them.
func withDefaults(cfg Config) Config {
	cfg.setDefaults()
	return cfg
}
