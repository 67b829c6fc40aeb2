package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rtstream/rtstream/jsonscan"
)

// validCases are inputs whose validity json.Valid decides, and UTF-8 as
// well; Valid must agree with wantValid on each.
var validCases = []string{
	``, ` `, `0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-05`, `1e`, `1e+`, `-1.0e3`, `+1`, `0x10`, `1 2`,
	`true`, `false`, `null`, `tru`, `nul`, `nulll`, `True`, `truex`,
	`""`, `"`, `"abc`, `"a\"b"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\uD800"`, `"\u12"`, `"\u12G4"`, `"\x"`, `"\'"`,
	"\"tab\there\"", "\"nl\nhere\"", "\"nul\x00\"", "\"del\x7f\"", "\"bad\xffutf8\"", "\"é\u2028\"", "\xff", "\"\xed\xa0\x80\"",
	"\"\xc3\"", "\"\xc3\xa9\"", "\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"", "[\"ok\",\"\xfe\"]", "{\"\xff\":1}",
	"\"abcdefgh\xe2\x82\xacijklmnop\"", "\"abcdefg\xe2\x82\"",
	`{}`, `{ }`, `[]`, `[ ]`, `{"a":1}`, `{"a" : 1 , "b" :[true,null] }`, `{"a":}`, `{"a"}`, `{"a":1,}`, `{,}`, `{1:2}`, `{"a":1 "b":2}`,
	`[1,2,]`, `[,]`, `[1 2]`, `[1,,2]`, `[[[]]]`, `[[[]]`, `[]]`, `{]`, `[}`, `{"a":[}]}`, `{"a":{"b":{"c":[1,{"d":"e"}]}}}`,
	" \t\r\n{\r\n\"a\"\t:\n[ 1 ,\r2 ]\n} \n", "\v1", "1\v", "\f1", "\u00a01",
}

// wantValid is json.Valid, and UTF-8: where the two differ on purpose,
// encoding/json lets through strings that are not UTF-8 and jsonscan does
// not (RFC 8259 §8.1; issue 17). Outside strings such bytes are invalid
// JSON for both.
func wantValid(p []byte) bool { return json.Valid(p) && utf8.Valid(p) }

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, s := range validCases {
		if got, want := jsonscan.Valid([]byte(s)), wantValid([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %v; json.Valid and UTF-8 say %v", s, got, want)
		}
	}
}

// TestDepth checks the nesting limit at its edge, on its own and when the
// value sits inside containers the caller has already opened.
func TestDepth(t *testing.T) {
	nest := func(n int, open, close, inner string) []byte {
		return []byte(strings.Repeat(open, n) + inner + strings.Repeat(close, n))
	}
	tests := []struct {
		name  string
		p     []byte
		depth int
		ok    bool
	}{
		{"arrays at the limit", nest(jsonscan.MaxDepth, "[", "]", ""), 0, true},
		{"arrays over the limit", nest(jsonscan.MaxDepth+1, "[", "]", ""), 0, false},
		{"objects at the limit", nest(jsonscan.MaxDepth-1, `{"a":`, "}", "{}"), 0, true},
		{"objects over the limit", nest(jsonscan.MaxDepth, `{"a":`, "}", "{}"), 0, false},
		{"inside three at the limit", nest(jsonscan.MaxDepth-3, "[", "]", ""), 3, true},
		{"inside three over the limit", nest(jsonscan.MaxDepth-2, "[", "]", ""), 3, false},
		{"scalar at any depth", []byte(`1`), jsonscan.MaxDepth, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.depth == 0 && json.Valid(tt.p) != tt.ok {
				t.Fatalf("json.Valid = %v; the test expects %v", !tt.ok, tt.ok)
			}
			end, _, ok := jsonscan.Value(tt.p, 0, tt.depth)
			if ok != tt.ok || (ok && end != len(tt.p)) {
				t.Errorf("Value = %d, %v; want %d, %v", end, ok, len(tt.p), tt.ok)
			}
		})
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		in        string
		start     int
		end       int
		multiline bool
		ok        bool
	}{
		{`{"a":1},2`, 0, 7, false, true},
		{`x[1, 2]y`, 1, 7, false, true},
		{"[1,\n2] ", 0, 6, true, true},
		{"[1,\r2]", 0, 6, true, true},
		{"\"a\\nb\"\n", 0, 6, false, true},
		{"1\n", 0, 1, false, true},
		{"\n1", 0, 0, false, false},
		{`12345`, 0, 5, false, true},
		{`"abc`, 0, 4, false, false},
		{`{"a":1`, 0, 6, false, false},
		{`[1`, 5, 5, false, false},
	}
	for _, tt := range tests {
		end, ml, ok := jsonscan.Value([]byte(tt.in), tt.start, 0)
		if ok != tt.ok || (ok && (end != tt.end || ml != tt.multiline)) {
			t.Errorf("Value(%q, %d) = %d, %v, %v; want %d, %v, %v", tt.in, tt.start, end, ml, ok, tt.end, tt.multiline, tt.ok)
		}
	}
}

// FuzzValid: Valid agrees with json.Valid, and Value finds the end and the
// line breaks of a valid document's value.
func FuzzValid(f *testing.F) {
	for _, s := range validCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		valid := jsonscan.Valid(p)
		if want := wantValid(p); valid != want {
			t.Fatalf("Valid(%q) = %v; json.Valid and UTF-8 say %v", p, valid, want)
		}
		if !valid {
			return
		}
		start, _ := jsonscan.SkipSpace(p, 0)
		end, ml, ok := jsonscan.Value(p, start, 0)
		trimmed := bytes.TrimRight(p, " \t\r\n")
		if !ok || end != len(trimmed) {
			t.Fatalf("Value(%q) = %d, %v; want %d, true", p, end, ok, len(trimmed))
		}
		if want := bytes.ContainsAny(p[start:end], "\r\n"); ml != want {
			t.Fatalf("Value(%q) multiline = %v; want %v", p, ml, want)
		}
	})
}
