package processor_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/expr-lang/expr"
)

// TestMemberAccessMatchesExpr: the guard's fast member access (x.name on
// run-time data becomes a map lookup) answers what expr's own access
// answers, for every kind of value it may meet: the same result, or an
// error both times.
func TestMemberAccessMatchesExpr(t *testing.T) {
	datas := []string{
		`{"a":1,"b":{"c":"x"},"l":[1,2]}`, `{"a":null}`, `{}`, `[1,2,3]`, `"str"`, `42`, `null`, `true`,
	}
	maps := []string{
		`data.a`, `data.b.c`, `data["a"]`, `data.missing`, `data.b.missing`, `data.missing.c`,
		`data?.missing?.c`, `data.l[1]`, `{"x": data.a, "y": data.b?.c}`, `data.a == nil`, `len(data.l)`,
	}
	for _, src := range maps {
		prog, err := expr.Compile(src, expr.Env(refEnv{}))
		if err != nil {
			t.Fatalf("expr compiles %q: %v", src, err)
		}
		p := mustCompile(t, "", src)
		for _, d := range datas {
			t.Run(fmt.Sprintf("%s on %s", src, d), func(t *testing.T) {
				var data any
				if err := json.Unmarshal([]byte(d), &data); err != nil {
					t.Fatal(err)
				}
				want, wantErr := expr.Run(prog, refEnv{Data: data})
				got, _, gotErr := p.Eval(ev(d))
				if (wantErr != nil) != (gotErr != nil) {
					t.Fatalf("expr: %v, %v; the processor: %s, %v", want, wantErr, got, gotErr)
				}
				if wantErr != nil {
					return
				}
				wantJSON, _ := json.Marshal(want)
				if !jsonSame(t, wantJSON, got) {
					t.Fatalf("expr: %s; the processor: %s", wantJSON, got)
				}
			})
		}
	}
}

// refEnv is the processor's environment as expr alone sees it.
type refEnv struct {
	Data any `expr:"data"`
}

func jsonSame(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
