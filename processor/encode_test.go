package processor

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMarshal(t *testing.T) {
	nested := func(n int) any {
		var v any = 1
		for range n {
			v = []any{v}
		}
		return v
	}
	tests := []struct {
		name string
		v    any
		fast bool // appendJSON writes it
	}{
		{"nil", nil, true},
		{"bools", []any{true, false}, true},
		{"ints", []any{0, -1, math.MaxInt, math.MinInt, int64(math.MinInt64), int64(7)}, true},
		{"floats in f format", []any{0.0, math.Copysign(0, -1), 1.5, -21.25, 1e20, 123456789.123, 1e-6, 0.1 + 0.2}, true},
		{"floats in e format", []any{1e21, -1e21, 1e-7, 1.5e-7, 5e-324, math.MaxFloat64, 1.2345e-100, 1e100}, true},
		{"strings", []any{"", "plain", "<&>", "\"\\/", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "é😀", "\u2028\u2029x\u2027"}, true},
		{"invalid UTF-8", []any{"a\xffb", "\xed\xa0\x80", "\xe2\x82", "\xf0\x9f\x98"}, true},
		{"nil and empty collections", []any{[]any(nil), []any{}, map[string]any(nil), map[string]any{}}, true},
		{"sorted keys", map[string]any{"b": 1, "a": map[string]any{"z": nil, "y": []any{"x"}}, "é": 2, "B": 3, "": 4, "a\n": 5}, true},
		{"many keys", manyKeys(40), true},
		{"nested to the fast depth", nested(maxFastEncodeDepth), true},

		// encoding/json writes these, or refuses them.
		{"nested deeper", nested(maxFastEncodeDepth + 1), false},
		{"a time", map[string]any{"at": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, false},
		{"a typed slice", []int{1, 2}, false},
		{"a float32", []any{float32(0.1)}, false},
		{"a typed map", map[string]int{"a": 1}, false},
		{"NaN", []any{1, math.NaN()}, false},
		{"+Inf", map[string]any{"x": math.Inf(1)}, false},
		{"-Inf", math.Inf(-1), false},
		{"a channel", make(chan int), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := marshalStd(tc.v)
			got, err := marshal(tc.v)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("marshal: err %v; encoding/json says %v", err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("marshal = %s\nencoding/json: %s", got, want)
			}
			if _, ok := appendJSON(nil, tc.v, 0); ok != tc.fast {
				t.Fatalf("appendJSON wrote it: %v; want %v", ok, tc.fast)
			}
		})
	}
}

func TestMarshalTooLarge(t *testing.T) {
	for _, v := range []any{
		strings.Repeat("x", MaxResultBytes),                               // fast
		[]any{strings.Repeat("x", MaxResultBytes), time.Unix(0, 0).UTC()}, // encoding/json
	} {
		_, err := marshal(v)
		if err == nil || !strings.Contains(err.Error(), "over 1048576") {
			t.Fatalf("marshal of %T over MaxResultBytes: err %v", v, err)
		}
	}
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[strings.Repeat("k", i%7)+string(rune('a'+i%26))+strings.Repeat("z", i/26)] = i
	}
	return m
}
