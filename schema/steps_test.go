package schema

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestStepsTrackTime runs legitimate and hostile pairs without a budget,
// and prints what each costs per step charged: nanoseconds (a speed goal,
// machine-dependent: about 1, at most 2 where measured) and bytes
// allocated, garbage included (asserted: the request budget bounds memory
// through it).
func TestStepsTrackTime(t *testing.T) {
	// Under the race detector the pairs still run (each must validate and
	// charge steps), but time and allocations are its own (sync.Pool drops
	// what it holds): the bytes per step are asserted without it only.
	reps := 3
	if raceSlowdown > 1 {
		reps = 1
	}
	list := func(n int, elem func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = elem(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	same := func(s string) func(int) string { return func(int) string { return s } }
	cases := []struct{ name, schema, event string }{
		{"items {} over ints", `{"items":{}}`, list(10000, same("0"))},
		{"type integer", `{"items":{"type":"integer"}}`, list(10000, same("0"))},
		{"minimum over fractions", `{"items":{"type":"number","minimum":0}}`, list(10000, same("31.5"))},
		{"type integer over 1e1000", `{"items":{"type":"integer"}}`, list(1000, same("1e1000"))},
		{"multipleOf", `{"items":{"multipleOf":0.01}}`, list(1000, same("12345678901234567890.123456789e-900"))},
		{"type string", `{"items":{"type":"string"}}`, list(10000, same(`"abcdefghij"`))},
		{"pattern", `{"items":{"pattern":"^[a-z]+$"}}`, list(10000, same(`"abcdefghij"`))},
		{"enum of strings", `{"items":{"enum":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","abcdefghij"]}}`, list(10000, same(`"abcdefghij"`))},
		{"enum of numbers", `{"items":{"enum":[1,2,3,4,5,6,7,8,9,10]}}`, list(10000, same("11"))},
		{"properties", `{"items":{"type":"object","properties":{"a":{"type":"integer"}}}}`, list(10000, same(`{"a":1}`))},
		{"failing type", `{"items":{"type":"string"}}`, list(10000, same("0"))},
		{"unevaluatedProperties", `{"items":{"allOf":[{"properties":{"a":true}}],"unevaluatedProperties":false}}`, list(10000, same(`{"a":1}`))},
		{"uniqueItems over ints", `{"uniqueItems":true}`, list(100000, func(i int) string { return fmt.Sprint(i) })},
		{"uniqueItems over objects", `{"uniqueItems":true}`, list(20000, func(i int) string { return fmt.Sprintf(`{"a":%d,"b":"x"}`, i) })},
		{"a 102-instruction pattern", `{"pattern":"a{100}b"}`, `"` + strings.Repeat("a", 200000) + `"`},
		{"a small pattern, a long string", `{"pattern":"^a*$"}`, `"` + strings.Repeat("a", 500000) + `"`},
		{"patternProperties", `{"patternProperties":{"^x":{"type":"integer"},"y$":{}}}`, "{" + strings.TrimSuffix(strings.Repeat(`"k":1,`, 1), ",") + "," + strings.Join(func() []string {
			var out []string
			for i := range 10000 {
				out = append(out, fmt.Sprintf(`"k%d":%d`, i, i))
			}
			return out
		}(), ",") + "}"},
		{"anyOf applying each level twice", `{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"},{"$ref":"#/$defs/b"}]},"b":{"anyOf":[{"$ref":"#/$defs/c"},{"$ref":"#/$defs/c"}]},"c":{"anyOf":[{"type":"string"},{"type":"string"}]}},"items":{"$ref":"#/$defs/a"}}`, list(10000, same("0"))},
		{"recursion 100 deep", `{"$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}`, strings.Repeat("[", 100) + strings.Repeat("]", 100)},
		{"ten fields", tenField, tenEvent},
	}
	for _, tc := range cases {
		v := validator(t, tc.schema, Config{EventSteps: 1 << 40, RequestSteps: 1 << 41})
		in := v.instances.Get().(*instance)
		var steps int64
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range reps {
			in.m.startRequest(context.Background(), 1<<41)
			if _, err := in.validate([]byte(tc.event)); err != nil {
				t.Fatal(err)
			}
			steps = 1<<41 - in.m.request
		}
		d := time.Since(start) / time.Duration(reps)
		runtime.ReadMemStats(&after)
		perStep := float64(after.TotalAlloc-before.TotalAlloc) / float64(reps) / float64(steps)
		t.Logf("%-34s %11d steps %12v %5.2f ns/step %5.2f B/step", tc.name, steps, d, float64(d.Nanoseconds())/float64(steps), perStep)
		if steps <= 0 {
			t.Errorf("%s: no step charged", tc.name)
		}
		if perStep > 1 && raceSlowdown == 1 {
			t.Errorf("%s: %.2f bytes allocated per step; the request budget's bound on memory assumes at most 1", tc.name, perStep)
		}
	}
}
