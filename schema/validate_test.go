package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// tenField is the benchmark's schema: ten fields of the usual kinds.
const tenField = `{"type":"object","required":["id","temp","unit","site","ok"],"additionalProperties":false,"properties":{
"id":{"type":"string","maxLength":64},"temp":{"type":"number","minimum":-100,"maximum":100},"unit":{"enum":["C","F"]},
"site":{"type":"string","pattern":"^[a-z0-9-]+$"},"ok":{"type":"boolean"},"seq":{"type":"integer","minimum":0},
"tags":{"type":"array","items":{"type":"string"},"maxItems":10},"loc":{"type":"object","properties":{"lat":{"type":"number"},"lon":{"type":"number"}}},
"note":{"type":["string","null"]},"ts":{"type":"string"}}}`

const tenEvent = `{"id":"sensor-0001","temp":21.5,"unit":"C","site":"berlin-3","ok":true,"seq":12345,"tags":["a","b"],"loc":{"lat":52.5,"lon":13.4},"note":null,"ts":"2026-01-01T00:00:00Z"}`

func events(raw ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(raw))
	for i, r := range raw {
		out[i] = json.RawMessage(r)
	}
	return out
}

func validator(t testing.TB, schema string, cfg Config) *Validator {
	t.Helper()
	v, err := NewCache(cfg).Get("s", []byte(schema))
	if err != nil {
		t.Fatalf("compiling %.80s: %v", schema, err)
	}
	return v
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, schema string
		cfg          Config
		events       []json.RawMessage
		failed       int
		want         []Violation // Message: a part of it
	}{
		{name: "valid", schema: tenField, events: events(tenEvent, tenEvent)},
		{name: "a batch with two invalid events of five", schema: `{"type":"object","properties":{"temp":{"type":"number"}},"required":["temp"]}`,
			events: events(`{"temp":1}`, `{"temp":"hot"}`, `{"temp":2}`, `{"t":3}`, `{"temp":4}`), failed: 2,
			want: []Violation{{1, "/temp", "got string, want number"}, {3, "", "missing property 'temp'"}}},
		{name: "pointers escape ~ and /", schema: `{"properties":{"a/b":{"properties":{"c~d":{"type":"string"}}}}}`,
			events: events(`{"a/b":{"c~d":1}}`), failed: 1, want: []Violation{{0, "/a~1b/c~0d", "want string"}}},
		{name: "array indexes", schema: `{"items":{"type":"integer"}}`, events: events(`[1,2,"x",4.5]`), failed: 1,
			want: []Violation{{0, "/2", "want integer"}, {0, "/3", "want integer"}}},
		{name: "the list is capped, the count is not", schema: `{"type":"string"}`, cfg: Config{MaxErrors: 2},
			events: events(`1`, `2`, `3`), failed: 3, want: []Violation{{0, "", "want string"}, {1, "", "want string"}}},
		{name: "anyOf says why each alternative failed", schema: `{"anyOf":[{"type":"string"},{"type":"integer"}]}`,
			events: events(`true`), failed: 1, want: []Violation{{0, "", "matches none of anyOf's subschemas: got boolean, want string; got boolean, want integer"}}},
		{name: "formats are not asserted", schema: `{"type":"string","format":"email"}`, events: events(`"not an address"`)},
		{name: "an event nested too deep where the schema looks", schema: `{"$defs":{"n":{"items":{"$ref":"#/$defs/n"},"properties":{"a":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`,
			cfg: Config{MaxEventDepth: 3}, events: events(`{"a":[[1]]}`, `{"a":[[[1]]]}`), failed: 1, want: []Violation{{1, "/a/0/0", "nested deeper than 3 levels"}}},
		{name: "nesting where the schema does not look", schema: `{}`, cfg: Config{MaxEventDepth: 3}, events: events(`{"a":[[[1]]]}`)},
		{name: "a huge exponent where exact arithmetic needs it", schema: `{"multipleOf":1}`, events: events(`1e999`, `1e1001`), failed: 1,
			want: []Violation{{1, "", "exponents beyond ±1000"}}},
		{name: "a huge exponent compared", schema: `{"minimum":0}`, events: events(`1e1001`, `-1e1001`), failed: 1,
			want: []Violation{{1, "", "exponents beyond ±1000"}}},
		{name: "long messages are clipped", schema: `{"enum":["` + strings.Repeat("x", 1000) + `"]}`, events: events(`1`), failed: 1,
			want: []Violation{{0, "", "value must be"}}},
		{name: "an event over its budget", schema: `{"items":{"type":"integer"}}`, cfg: Config{EventSteps: 10_000, StepsPerByte: 1},
			events: events(`[1]`, "["+strings.Repeat("1,", 999)+"1]"), failed: 1, want: []Violation{{1, "", "over the event's validation budget of 12001 steps"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validator(t, tc.schema, tc.cfg).Validate(context.Background(), tc.events)
			if tc.failed == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Validate = %v, want an *InvalidError", err)
			}
			if inv.Failed != tc.failed || inv.Events != len(tc.events) || inv.Truncated != (len(tc.want) < tc.failed) {
				t.Errorf("%d of %d failed, want %d of %d", inv.Failed, inv.Events, tc.failed, len(tc.events))
			}
			if len(inv.Violations) != len(tc.want) {
				t.Fatalf("violations %+v, want %+v", inv.Violations, tc.want)
			}
			for i, w := range tc.want {
				g := inv.Violations[i]
				if g.Index != w.Index || g.Pointer != w.Pointer || !strings.Contains(g.Message, w.Message) || len(g.Message) > maxMessage+3 {
					t.Errorf("violation %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestRequestBudgetStopsABatch: events that each fit their own budget
// cannot together pass the request's; the rest are counted unchecked.
func TestRequestBudgetStopsABatch(t *testing.T) {
	v := validator(t, `{"items":{"type":"integer"}}`, Config{EventSteps: 1 << 30, RequestSteps: 20_000_000})
	ev := "[" + strings.Repeat("1,", 4999) + "1]"
	var batch []string
	for range 100 {
		batch = append(batch, ev)
	}
	var inv *InvalidError
	if err := v.Validate(context.Background(), events(batch...)); !errors.As(err, &inv) {
		t.Fatalf("Validate = %v, want an *InvalidError", err)
	}
	last := inv.Violations[len(inv.Violations)-1]
	if inv.Failed != 1 || inv.Unchecked == 0 || inv.Unchecked+last.Index+1 != 100 || !strings.Contains(last.Message, "request's validation budget") {
		t.Errorf("%+v", inv)
	}
}

func TestValidateStopsWithTheContext(t *testing.T) {
	v := validator(t, `{"items":{"type":"integer"}}`, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := v.Validate(ctx, events("["+strings.Repeat("1,", 9999)+"1]"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Validate = %v, want context.Canceled", err)
	}
}

// TestHostilePairsAreBounded: schemas and events built to take long or
// allocate much are refused at creation or at the door, or validated
// within the default budget, fast.
func TestHostilePairsAreBounded(t *testing.T) {
	seq := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, ",")
	}
	blowup := func(levels int) string { // each level applies the next twice
		var b strings.Builder
		b.WriteString(`{"items":{"$ref":"#/$defs/l0"},"$defs":{`)
		for i := range levels {
			fmt.Fprintf(&b, `"l%d":{"anyOf":[{"$ref":"#/$defs/l%d"},{"$ref":"#/$defs/l%d"}]},`, i, i+1, i+1)
		}
		fmt.Fprintf(&b, `"l%d":{"type":"string"}}}`, levels)
		return b.String()
	}
	big := strings.Repeat("a", 512<<10)
	tests := []struct {
		name, schema string
		events       []string
		refused      bool // at the door (an *InvalidError)
	}{
		{"uniqueItems over 100,000 distinct items", `{"uniqueItems":true}`, []string{"[" + seq(100_000, func(i int) string { return fmt.Sprint(i) }) + "]"}, false},
		{"uniqueItems over 100,000 objects", `{"uniqueItems":true}`, []string{"[" + seq(100_000, func(i int) string { return fmt.Sprintf(`{"k":%d}`, i) }) + "]"}, false},
		{"uniqueItems over 100,000 objects, one duplicate", `{"uniqueItems":true}`, []string{"[" + seq(100_000, func(i int) string { return fmt.Sprintf(`{"k":%d}`, i%99_999) }) + "]"}, true},
		{"a 9,000-instruction pattern over 512 KiB", `{"pattern":"` + strings.Join([]string{seq(9, func(i int) string { return fmt.Sprintf("%c{990}", 'a'+i) })}, "") + `"}`, []string{`"` + big + `"`}, true},
		{"patternProperties over 20,000 long keys", `{"patternProperties":{"^(a|b)*c{900}$":{}}}`, []string{"{" + seq(20_000, func(i int) string { return fmt.Sprintf(`"%s%d":0`, strings.Repeat("a", 40), i) }) + "}"}, true},
		{"anyOf applying each level twice, 30 levels deep", blowup(15), []string{"[" + seq(10_000, func(int) string { return "0" }) + "]"}, true},
		{"a recursive schema over an event nested 10,000 deep", `{"$defs":{"n":{"items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}`, []string{strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)}, true},
		{"numbers with huge exponents", `{"items":{"multipleOf":3}}`, []string{"[" + seq(10_000, func(int) string { return "7e999999" }) + "]"}, true},
		{"an enum of 1,000 objects against 10,000 objects", `{"items":{"enum":[` + seq(1000, func(i int) string { return fmt.Sprintf(`{"a":%d,"b":[1,2,3]}`, i) }) + `]}}`,
			[]string{"[" + seq(10_000, func(i int) string { return `{"a":-1,"b":[1,2,3]}` }) + "]"}, true},
		{"a batch of 1,000 invalid events, each within its budget", `{"items":{"type":"integer"}}`, func() []string {
			batch := make([]string, 1000)
			for i := range batch {
				batch[i] = "[" + seq(500, func(int) string { return `"x"` }) + "]"
			}
			return batch
		}(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewCache(Config{}).Get("s", []byte(tc.schema))
			if err != nil {
				t.Logf("refused at creation: %v", err)
				return
			}
			start := time.Now()
			err = v.Validate(context.Background(), events(tc.events...))
			d := time.Since(start)
			var inv *InvalidError
			if refused := errors.As(err, &inv); refused != tc.refused || (!refused && err != nil) {
				t.Fatalf("Validate = %v; want refused %v", err, tc.refused)
			}
			msg := ""
			if inv != nil {
				msg = inv.Violations[0].Message
			}
			t.Logf("%v: %s", d, msg)
			if limit := time.Second * raceSlowdown; d > limit {
				t.Errorf("took %v, over %v", d, limit)
			}
		})
	}
}

// TestConcurrentValidation shares one validator between goroutines, each
// with its own instance and budget.
func TestConcurrentValidation(t *testing.T) {
	v := validator(t, tenField, Config{})
	bad := strings.Replace(tenEvent, `"unit":"C"`, `"unit":"K"`, 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				ev := tenEvent
				if (g+i)%3 == 0 {
					ev = bad
				}
				err := v.Validate(context.Background(), events(ev, tenEvent))
				var inv *InvalidError
				if (ev == bad) != errors.As(err, &inv) || (inv != nil && inv.Violations[0].Pointer != "/unit") {
					t.Errorf("goroutine %d, round %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCacheBoundedByBytes: the cache starts over before it passes its
// bound, and a stream's new schema replaces its old entry.
func TestCacheBoundedByBytes(t *testing.T) {
	c := NewCache(Config{CacheBytes: 1 << 20})
	perEntry := compiledBytes([]byte(tenField))
	fits := c.cfg.CacheBytes / perEntry
	for i := range fits + 3 {
		if _, err := c.Get(fmt.Sprint("s", i), []byte(tenField)); err != nil {
			t.Fatal(err)
		}
		if c.bytes > c.cfg.CacheBytes || c.bytes != perEntry*len(c.entries) {
			t.Fatalf("after %d entries: %d bytes for %d entries, bound %d", i+1, c.bytes, len(c.entries), c.cfg.CacheBytes)
		}
	}
	if len(c.entries) > 3 {
		t.Fatalf("%d entries after %d inserts of which %d fit", len(c.entries), fits+3, fits)
	}
	v1, _ := c.Get("s", []byte(`{"type":"string"}`))
	v2, _ := c.Get("s", []byte(`{"type":"integer"}`))
	if v1 == v2 || c.bytes != compiledBytes(c.entries["s"].raw)+(len(c.entries)-1)*perEntry {
		t.Fatalf("replacing an entry: %d bytes for %d entries", c.bytes, len(c.entries))
	}
	if _, err := c.Get("bad", []byte(`{"$ref":"#/nope"}`)); !errors.Is(err, ErrRefused) {
		t.Fatalf("a bad schema: %v", err)
	}
}
