package processor

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestDecodeData(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name, data string
		want       any  // checked when not nil (and the data decodes)
		fast       bool // decodeFast takes it
	}{
		{name: "object", data: `{"id":"a","n":4,"t":21.5,"ok":true,"x":null,"l":[1,"b",{}]}`, fast: true,
			want: map[string]any{"id": "a", "n": 4, "t": 21.5, "ok": true, "x": nil, "l": []any{1, "b", map[string]any{}}}},
		{name: "whitespace around", data: " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ", fast: true, want: map[string]any{"a": []any{1, 2}}},
		{name: "empty array is not nil", data: `[]`, fast: true, want: []any{}},
		{name: "duplicate keys: the last wins", data: `{"a":1,"a":2}`, fast: true, want: map[string]any{"a": 2}},
		{name: "zero", data: `0`, fast: true, want: 0},
		{name: "minus zero is an int", data: `-0`, fast: true, want: 0},
		{name: "minus zero float", data: `-0.0`, fast: true, want: math.Copysign(0, -1)},
		{name: "whole float stays float", data: `1.0`, fast: true, want: 1.0},
		{name: "exponent is float", data: `1e2`, fast: true, want: 100.0},
		{name: "capital exponent", data: `-2E-2`, fast: true, want: -0.02},
		{name: "18 digits", data: `-999999999999999999`, fast: true, want: -999999999999999999},
		{name: "max int64", data: `9223372036854775807`, fast: true, want: math.MaxInt64},
		{name: "min int64", data: `-9223372036854775808`, fast: true, want: math.MinInt64},
		{name: "past int64 is float", data: `9223372036854775808`, fast: true, want: 9223372036854775808.0},
		{name: "leading zeros of a huge int", data: `100000000000000000000000`, fast: true, want: 1e23},
		{name: "float overflow is +Inf", data: `1e400`, fast: true, want: math.Inf(1)},
		{name: "float overflow is -Inf", data: `-1e400`, fast: true, want: math.Inf(-1)},
		{name: "float underflow", data: `1e-400`, fast: true, want: 0.0},
		{name: "escapes", data: `"\"\\\/\b\f\n\r\t\u0041\u00e9"`, fast: true, want: "\"\\/\b\f\n\r\tAé"},
		{name: "surrogate pair", data: `"\ud83d\ude00"`, fast: true, want: "😀"},
		{name: "lone high surrogate", data: `"\ud83dx"`, fast: true, want: "\ufffdx"},
		{name: "high surrogate then not a low one", data: `"\ud83d\u0041"`, fast: true, want: "\ufffdA"},
		{name: "two high surrogates", data: `"\ud83d\ud83d\ude00"`, fast: true, want: "\ufffd😀"},
		{name: "lone low surrogate", data: `"\ude00"`, fast: true, want: "\ufffd"},
		{name: "invalid UTF-8", data: "\"a\xffb\"", fast: true, want: "a\ufffdb"},
		{name: "UTF-8 of a surrogate", data: "\"\xed\xa0\x80\"", fast: true, want: "\ufffd\ufffd\ufffd"},
		{name: "truncated UTF-8 and an escape", data: "\"\xe2\x82\\n\"", fast: true, want: "\ufffd\ufffd\n"},
		{name: "UTF-8 as it is", data: `"é😀\u2028"`, fast: true, want: "é😀\u2028"},
		{name: "U+FFFD as it is", data: "\"\xef\xbf\xbd\"", fast: true, want: "\ufffd"},
		{name: "escaped key", data: `{"\u0061":1}`, fast: true, want: map[string]any{"a": 1}},
		{name: "empty string and key", data: `{"":""}`, fast: true, want: map[string]any{"": ""}},
		{name: "nesting within the fast depth", data: deep(maxFastDepth), fast: true},

		// encoding/json decides.
		{name: "deeper than the fast depth", data: deep(maxFastDepth + 1)},
		{name: "deeper than encoding/json's limit", data: deep(10001)},
		{name: "empty", data: ``},
		{name: "only whitespace", data: " \n"},
		{name: "a second value after space is not read", data: `1 2`, want: 1},
		{name: "garbage after an object is not read", data: `{"a":1}x`, want: map[string]any{"a": 1}},
		{name: "garbage after a number", data: `1x`},
		{name: "garbage after a string", data: `"a"x`},
		{name: "unclosed", data: `{"a":1`},
		{name: "trailing comma", data: `[1,]`},
		{name: "leading zero", data: `01`},
		{name: "plus sign", data: `+1`},
		{name: "dot without digits", data: `1.`},
		{name: "exponent without digits", data: `1e+`},
		{name: "control byte in a string", data: "\"a\nb\""},
		{name: "bad escape", data: `"\x"`},
		{name: "short unicode escape", data: `"\u12"`},
		{name: "single quotes", data: `'a'`},
		{name: "bare word", data: `nul`},
		{name: "key not a string", data: `{1:2}`},
		{name: "missing colon", data: `{"a" 1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := decodeStd([]byte(tc.data))
			got, err := decodeData([]byte(tc.data))
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("decodeData: err %v; encoding/json says %v", err, wantErr)
			}
			if !sameValue(got, want) {
				t.Fatalf("decodeData = %#v; encoding/json gives %#v", got, want)
			}
			if tc.want != nil && !sameValue(got, tc.want) {
				t.Fatalf("decodeData = %#v; want %#v", got, tc.want)
			}
			if _, ok := decodeFast([]byte(tc.data)); ok != tc.fast {
				t.Fatalf("decodeFast took it: %v; want %v", ok, tc.fast)
			}
			if tc.fast && !json.Valid([]byte(tc.data)) {
				t.Fatal("the test is wrong: fast data must be valid JSON")
			}
		})
	}
}

// sameValue is reflect.DeepEqual for decoded JSON, stricter on numbers: an
// int is not a float64, and 0 is not -0.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case nil, bool, int, string:
		return a == b
	}
	return false
}
