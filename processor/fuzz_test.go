package processor_test

import (
	"bytes"
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

// decodeSeeds are data that reach the fast decoder's corners: numbers at the
// edges of int64 and float64, escapes and surrogates, bytes that are not
// UTF-8, duplicate keys, and what follows a value.
var decodeSeeds = []string{
	`{"id":"01J9Z8Q6X4","n":1234,"temp":21.5,"site":{"name":"north"},"tags":["a","b"],"ok":true,"x":null}`,
	`[0,-0,-0.0,1.0,1e2,-2E-2,9223372036854775807,9223372036854775808,-9223372036854775809,1e400,-1e400,1e-400]`,
	`"\"\\\/\b\f\n\r\t\u0041\ud83d\ude00\ud83d\u0041\ude00 \ud83d"`,
	"\"a\xffb\xed\xa0\x80\xe2\x82\"",
	`{"a":1,"a":[2],"\u0061":{}}`,
	`1 2`, `{}x`, `1x`, ` `, ``, `[1,]`, `01`, `[[[[[[]]]]]]`,
}

// FuzzDecodeDataMatchesEncodingJSON: decodeData gives what encoding/json
// (Decoder, UseNumber, numbers) gives, value and error alike, and its fast
// path takes every valid JSON value that is not nested too deeply.
func FuzzDecodeDataMatchesEncodingJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := processor.DecodeStd(data)
		got, err := processor.DecodeData(data)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("DecodeData(%q): err %v; encoding/json says %v", data, err, wantErr)
		}
		if !processor.SameValue(got, want) {
			t.Fatalf("DecodeData(%q) = %#v; encoding/json gives %#v", data, got, want)
		}
		fast, ok := processor.DecodeFast(data)
		valid := json.Valid(data)
		switch {
		case ok && !valid:
			t.Fatalf("DecodeFast(%q) took data that is not JSON", data)
		case ok && !processor.SameValue(fast, want):
			t.Fatalf("DecodeFast(%q) = %#v; encoding/json gives %#v", data, fast, want)
		case !ok && valid && bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) <= processor.MaxFastDepth:
			t.Fatalf("DecodeFast(%q) refused valid JSON", data)
		}
	})
}

// FuzzMarshalMatchesEncodingJSON: marshal writes what json.Encoder with
// SetEscapeHTML(false) writes, or fails as it does, for decoded JSON and for
// values made from it with floats, ints and strings put in.
func FuzzMarshalMatchesEncodingJSON(f *testing.F) {
	for i, s := range decodeSeeds {
		f.Add([]byte(s), float64(i)*1.1e-7, int64(i)<<40, s)
	}
	f.Add([]byte(`{"a":[1,2,{"b":"c"}]}`), 1e21, int64(-1), "\u2028<\x00\xff")
	f.Fuzz(func(t *testing.T, data []byte, fl float64, n int64, s string) {
		v, err := processor.DecodeStd(data)
		if err != nil {
			v = s
		}
		values := []any{
			v,
			withNumbers(v, fl, n, s),
			[]any{fl, n, int(n), s, nil, true},
			map[string]any{s: v, "f": fl, "n": n, "s": s},
		}
		for _, v := range values {
			want, wantErr := processor.MarshalStd(v)
			got, err := processor.Marshal(v)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("Marshal(%#v): err %v; encoding/json says %v", v, err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal(%#v) = %s; encoding/json writes %s", v, got, want)
			}
			fast, ok := processor.AppendJSON(v)
			switch {
			case ok && !bytes.Equal(fast, want):
				t.Fatalf("AppendJSON(%#v) = %s; encoding/json writes %s", v, fast, want)
			case ok && wantErr != nil:
				t.Fatalf("AppendJSON(%#v) wrote what encoding/json refuses: %v", v, wantErr)
			case !ok && wantErr == nil && depth(v) <= processor.MaxFastEncodeDepth:
				t.Fatalf("AppendJSON(%#v) refused what encoding/json writes", v)
			}
		}
	})
}

// withNumbers is a copy of v with each int made a float (times fl) and each
// float made an int64 (plus n), and s added to each string: the values
// encoding/json's float formatting and string escaping are tested with.
func withNumbers(v any, fl float64, n int64, s string) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k+s] = withNumbers(e, fl, n, s)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = withNumbers(e, fl, n, s)
		}
		return a
	case int:
		return float64(x) * fl
	case float64:
		return int64(x) + n
	case string:
		return x + s
	}
	return v
}

// depth is how deeply v's arrays and objects nest.
func depth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depth(e))
		}
	case []any:
		for _, e := range x {
			d = max(d, depth(e))
		}
	default:
		return 0
	}
	return d + 1
}
