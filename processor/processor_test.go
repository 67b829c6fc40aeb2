package processor_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rtstream/rtstream/processor"
)

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ev(data string) processor.Event {
	return processor.Event{ID: "e1", ReceivedAt: at, Data: json.RawMessage(data)}
}

func TestEval(t *testing.T) {
	tests := []struct {
		name, filter, mapping, data string
		keep                        bool
		out                         string // "" with keep: the data unchanged
	}{
		{name: "passthrough keeps bytes", data: `{"b":1, "a":2}`, keep: true, out: `{"b":1, "a":2}`},
		{name: "filter true", filter: "data.temp > 30", data: `{"temp":31.5}`, keep: true, out: `{"temp":31.5}`},
		{name: "filter false", filter: "data.temp > 30", data: `{"temp":29}`},
		{name: "filter on a missing field is false", filter: "data.flag", data: `{}`},
		{name: "filter on event id", filter: `event_id == "e1"`, data: `1`, keep: true, out: `1`},
		{name: "filter on received_at", filter: `received_at.Year() == 2026`, data: `1`, keep: true, out: `1`},
		{name: "map object", mapping: `{"id": data.id, "f": data.temp * 1.8 + 32}`, data: `{"id":"a","temp":100}`, keep: true, out: `{"f":212,"id":"a"}`},
		{name: "map scalar", mapping: `data * 2`, data: `21`, keep: true, out: `42`},
		{name: "map keeps html as is", mapping: `data + "<&>"`, data: `"x"`, keep: true, out: `"x<&>"`},
		{name: "map with ids", mapping: `[event_id, received_at]`, data: `null`, keep: true, out: `["e1","2026-01-02T03:04:05Z"]`},
		{name: "filter and map", filter: "len(data.items) > 1", mapping: "sum(data.items)", data: `{"items":[1,2,3]}`, keep: true, out: `6`},
		{name: "filter drops before map", filter: "len(data.items) > 5", mapping: "sum(data.items)", data: `{"items":[1]}`},
		{name: "builtins", mapping: `map(filter(data, # % 2 == 0), upper(string(#)))`, data: `[1,2,3,4]`, keep: true, out: `["2","4"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := processor.Compile(tc.filter, tc.mapping)
			if err != nil {
				t.Fatal(err)
			}
			out, keep, err := p.Eval(ev(tc.data))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if keep != tc.keep {
				t.Fatalf("keep = %v; want %v", keep, tc.keep)
			}
			if keep && string(out) != tc.out {
				t.Fatalf("out = %s; want %s", out, tc.out)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, filter, mapping string
		field                 string
		line, column          int
		message               string
	}{
		{name: "syntax", filter: "data.temp >", field: "filter", line: 1, column: 11, message: "unexpected token EOF"},
		{name: "unknown name", filter: "data.temp > 1 && tmep > 2", field: "filter", line: 1, column: 18, message: "unknown name tmep"},
		{name: "filter not bool", filter: "len(data)", field: "filter", line: 1, column: 1, message: "expected bool"},
		{name: "second line", mapping: "{\n  \"a\": data.a +* 2}", field: "map", line: 2, column: 16, message: "unexpected token"},
		{name: "type error", mapping: `event_id * 2`, field: "map", line: 1, column: 10, message: "invalid operation"},
		{name: "too long", mapping: strings.Repeat("1+", processor.MaxSourceBytes) + "1", field: "map", line: 1, column: 1, message: "longer than"},
		{name: "too many nodes", mapping: strings.Repeat("1+", 1500) + "1", field: "map", message: "maximum allowed nodes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := processor.Compile(tc.filter, tc.mapping)
			var ce *processor.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v; want a *CompileError", err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Message, tc.message) {
				t.Fatalf("err = %+v; want field %s, message with %q", ce, tc.field, tc.message)
			}
			if tc.line > 0 && (ce.Line != tc.line || ce.Column != tc.column) {
				t.Fatalf("position %d:%d; want %d:%d (%v)", ce.Line, ce.Column, tc.line, tc.column, ce)
			}
			if ce.Line < 1 || ce.Column < 1 {
				t.Fatalf("position %d:%d is not 1-based", ce.Line, ce.Column)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		name, filter, mapping, data string
		reason                      string
	}{
		{name: "string compared to number", filter: "data.temp > 30", data: `{"temp":"hot"}`, reason: "filter: invalid operation: string > int (line 1, column 11)"},
		{name: "field of null", filter: "data.a.b == 1", data: `{"a":null}`, reason: "cannot fetch b"},
		{name: "filter result not bool", filter: "data", data: `"yes"`, reason: "bool"},
		{name: "map division by zero", mapping: "data.a % data.b", data: `{"a":1,"b":0}`, reason: "integer divide by zero"},
		{name: "memory budget", mapping: "map(1..200000, #)", data: `1`, reason: "memory budget exceeded"},
		{name: "nested ranges hit the memory budget", filter: "sum(1..400, {count(1..400, {# > 0})}) > 0", data: `1`, reason: "budget exceeded"},
		{name: "nested loops over data hit the step budget", filter: "sum(data, {count(data, {# > 0})}) > 0", data: bigArray(1500), reason: "evaluation budget exceeded"},
		{name: "string doubling", mapping: "let a = data + data; let b = a + a; let c = b + b; let d = c + c; d + d", data: `"` + strings.Repeat("x", 300_000) + `"`, reason: "+ would take the bytes made over 8388608"},
		{name: "join amplification", mapping: "join(map(1..2000, data))", data: `"` + strings.Repeat("x", 5000) + `"`, reason: "join would take the bytes made over"},
		{name: "replace amplification", mapping: `replace(data, "", data)`, data: `"` + strings.Repeat("x", 3000) + `"`, reason: "replace would take the bytes made over"},
		{name: "result too large", mapping: "map(1..2000, data)", data: `"` + strings.Repeat("x", 1000) + `"`, reason: "over 1048576"},
		{name: "repeat counted", mapping: `repeat(data, 10000000)`, data: `"x"`, reason: "repeat would take the bytes made over"},
		{name: "repeat of a large string", mapping: `repeat(data, 1000000)`, data: `"` + strings.Repeat("x", 1000) + `"`, reason: "repeat would take the bytes made over"},
		{name: "flatten of one array many times", mapping: `flatten(map(1..40000, data))`, data: bigArray(100_000), reason: "flatten"},
		{name: "equal over shared arrays", filter: `map(1..20000, data.a) == map(1..20000, data.b)`, data: `{"a":` + bigArray(50_000) + `,"b":` + bigArray(50_000) + `}`, reason: "=="},
		{name: "uniq is quadratic", mapping: `uniq(data)`, data: bigArray(5000), reason: "uniq"},
		{name: "pattern from the data", filter: `"a" matches data`, data: `"[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}[a-z]{1000}"`, reason: "pattern compiles to over"},
		{name: "a loop of copies", mapping: `map(1..1000, upper(data))`, data: `"` + strings.Repeat("x", 100_000) + `"`, reason: "upper would take the bytes made over"},
		{name: "groupBy counts what it makes", mapping: `groupBy(data, #)`, data: bigArray(150_000), reason: "elements made over 100000"},
		{name: "data too large decoded", mapping: `data`, data: `[` + strings.Repeat(`{"k":1},`, 130_000) + `{}]`, reason: "data would take about"},
		{name: "not JSON data", filter: "true", data: `{`, reason: "data is not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := processor.Compile(tc.filter, tc.mapping)
			if err != nil {
				t.Fatal(err)
			}
			// None of these is about wall time: under -race on a busy
			// machine the 1 s budget could otherwise come first.
			_, keep, err := p.WithTimeBudget(time.Minute).Eval(ev(tc.data))
			if !errors.Is(err, processor.ErrEval) || keep {
				t.Fatalf("Eval = keep %v, err %v; want an ErrEval", keep, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err %q; want it to say %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q spans lines; a reason is one line", err)
			}
		})
	}
}

// TestCostBound: however heavy the expression, an evaluation stops soon
// after TimeBudget (the step and memory budgets may stop it sooner).
func TestCostBound(t *testing.T) {
	p := mustCompile(t, "", "sum(data, {count(data, {# % 7 == 0})})")
	for _, n := range []int{100, 1100} {
		start := time.Now()
		out, _, err := p.Eval(ev(bigArray(n)))
		d := time.Since(start)
		t.Logf("%d×%d loop iterations: %v (%s, %v)", n, n, d, out, err)
		if d > processor.TimeBudget+time.Second {
			t.Fatalf("evaluation took %v; the budget is %v", d, processor.TimeBudget)
		}
		if n == 100 && (err != nil || string(out) != "1400") {
			t.Fatalf("Eval = %s, %v", out, err)
		}
		if n == 1100 && (err == nil || !strings.Contains(err.Error(), "budget exceeded")) {
			t.Fatalf("1.2M iterations: err %v; want a budget exceeded", err)
		}
	}
}

func TestCache(t *testing.T) {
	c := processor.NewCache()
	a, err := c.Get("s", "data > 1", "")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.Get("s", "data > 1", ""); b != a {
		t.Fatal("same definition compiled twice")
	}
	if b, _ := c.Get("s", "data > 2", ""); b == a {
		t.Fatal("a new definition of the same stream reused the old program")
	}
	if _, err := c.Get("t", "data >", ""); err == nil {
		t.Fatal("a bad definition compiled")
	}
	if _, err := c.Get("t", "data >", ""); err == nil {
		t.Fatal("a bad definition's error was not kept")
	}
}

func TestEmptyProgramIsPassthrough(t *testing.T) {
	for _, p := range []*processor.Program{nil, mustCompile(t, "", " ")} {
		if !p.Empty() {
			t.Fatal("not empty")
		}
		out, keep, err := p.Eval(ev(`{"a" : 1}`))
		if err != nil || !keep || string(out) != `{"a" : 1}` {
			t.Fatalf("Eval = %s %v %v", out, keep, err)
		}
	}
}

func bigArray(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprint(&b, i+1)
	}
	b.WriteString("]")
	return b.String()
}

func mustCompile(t testing.TB, filter, mapping string) *processor.Program {
	t.Helper()
	p, err := processor.Compile(filter, mapping)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkEval is the cost of the processor per event, against the router's
// throughput (thousands of events per second per core).
func BenchmarkEval(b *testing.B) {
	cases := []struct{ name, filter, mapping string }{
		{"passthrough", "", ""},
		{"filter", "data.temp > 30", ""},
		{"filter+map", "data.temp > 30", `{"id": data.id, "f": data.temp * 1.8 + 32}`},
	}
	for _, c := range cases {
		p := mustCompile(b, c.filter, c.mapping)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					e := ev(fmt.Sprintf(`{"id":%d,"temp":%d,"unit":"C","site":"north"}`, i, 20+i%20))
					if _, _, err := p.Eval(e); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
