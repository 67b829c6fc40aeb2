package processor_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rtstream/rtstream/processor"
)

// FuzzCompile feeds arbitrary filter and map expressions and event data
// through Compile and Eval: a bad expression is a *CompileError, an event the
// expression does not fit is an error wrapping ErrEval, a result is valid
// JSON — and nothing panics or runs away (the budgets bound every run).
func FuzzCompile(f *testing.F) {
	seeds := []struct{ filter, mapping, data string }{
		{"data.temp > 30", `{"id": data.id, "f": data.temp * 1.8 + 32}`, `{"id":1,"temp":31.5}`},
		{"", "data", `[1,2,3]`},
		{"data.n % 2 == 0", `{"n": data.n, "s": string(data.n)}`, `{"n":4}`},
		{"len(data) > 1", `map(data, # * 2)`, `[1,2]`},
		{"event_id != ''", `{"at": received_at}`, `null`},
		{"data.temp >", "", `{}`},
		{"1", "", `{}`},
		{"", `repeat("x", 100)`, `{}`},
	}
	for _, s := range seeds {
		f.Add(s.filter, s.mapping, []byte(s.data))
	}
	at := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, filter, mapping string, data []byte) {
		p, err := processor.Compile(filter, mapping)
		if err != nil {
			var ce *processor.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q, %q): %v is not a *CompileError", filter, mapping, err)
			}
			return
		}
		if !json.Valid(data) {
			return // events are valid JSON by the time they reach the router
		}
		out, keep, err := p.Eval(processor.Event{ID: "01TEST", ReceivedAt: at, Data: data})
		if err != nil {
			if !errors.Is(err, processor.ErrEval) {
				t.Fatalf("Eval: %v does not wrap ErrEval", err)
			}
			return
		}
		if keep && !json.Valid(out) {
			t.Fatalf("Eval(%q, %q, %s) = %q: not JSON", filter, mapping, data, out)
		}
	})
}
