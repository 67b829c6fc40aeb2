package schema

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// nested is a schema nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`{"items":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
}

// inPlaceChain is a chain of n schemas applied in place, $ref to $ref.
func inPlaceChain(n int) string {
	var b strings.Builder
	b.WriteString(`{"$ref":"#/$defs/d0","$defs":{`)
	for i := range n {
		fmt.Fprintf(&b, `"d%d":{"$ref":"#/$defs/d%d"},`, i, i+1)
	}
	fmt.Fprintf(&b, `"d%d":{"type":"string"}}}`, n)
	return b.String()
}

func TestCompileRefuses(t *testing.T) {
	small := Config{MaxBytes: 64, MaxSubschemas: 5}
	tests := []struct {
		name, schema string
		cfg          Config
		pointer      string
		reason       string // a part of it
	}{
		{"over the size limit", `{"description":"` + strings.Repeat("x", 100) + `"}`, small, "", "over the limit of 64"},
		{"over the subschema limit", `{"allOf":[{},{},{},{},{},{}]}`, small, "", "over the limit of 5 subschemas"},
		{"nested deeper than the limit", nested(33), Config{}, strings.Repeat("/items", 32), "nested deeper than 32 levels"},
		{"not a schema", `3`, Config{}, "", "a JSON object or a boolean"},
		{"another dialect", `{"$schema":"http://json-schema.org/draft-07/schema#"}`, Config{}, "/$schema", "only JSON Schema 2020-12"},
		{"a remote reference", `{"properties":{"a":{"$ref":"https://example.com/s.json"}}}`, Config{}, "/properties/a/$ref", "nothing is loaded"},
		{"a file reference", `{"$ref":"file:///etc/passwd"}`, Config{}, "/$ref", "nothing is loaded"},
		{"a relative reference", `{"$id":"https://example.com/root.json","$ref":"other.json"}`, Config{}, "/$ref", "nothing is loaded"},
		{"a custom meta-schema", `{"$schema":"https://example.com/meta"}`, Config{}, "/$schema", "only JSON Schema 2020-12"},
		{"a missing target", `{"$ref":"#/$defs/nope"}`, Config{}, "/$ref", "not in the schema"},
		{"a bad pattern", `{"properties":{"a":{"pattern":"(unclosed"}}}`, Config{}, "/properties/a/pattern", "not a valid regex"},
		{"a bad pattern property", `{"patternProperties":{"[":{}}}`, Config{}, "/patternProperties", "not a valid regex"},
		{"patterns over the instruction limit", `{"properties":{"a":{"pattern":"a{600}"},"b":{"pattern":"b{600}"}}}`, Config{MaxPatternInsts: 1000}, "/properties/", "over 1000 instructions in all"},
		{"an in-place cycle", `{"$defs":{"a":{"anyOf":[{"type":"string"},{"$ref":"#/$defs/b"}]},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`, Config{}, "/$defs/", "never moves into the event"},
		{"an in-place chain over the limit", inPlaceChain(40), Config{}, "", "over 32 subschemas applied in a row"},
		{"a dynamic reference", `{"$dynamicAnchor":"node","properties":{"next":{"$dynamicRef":"#node"}}}`, Config{}, "/properties/next", "$dynamicRef is not supported"},
		{"a wrong keyword type", `{"type":"nope"}`, Config{}, "/type", "must be one of"},
		{"a huge exponent", `{"minimum":1e5000}`, Config{}, "/minimum", "exponents beyond ±1000"},
		{"a long number", `{"const":` + strings.Repeat("1", 101) + `}`, Config{}, "/const", "a number literal of 101 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.schema), tc.cfg)
			var ce *CompileError
			if !errors.As(err, &ce) || !errors.Is(err, ErrRefused) {
				t.Fatalf("Check = %v, want a *CompileError", err)
			}
			if !strings.HasPrefix(ce.Pointer, tc.pointer) || (tc.pointer == "" && ce.Pointer != "" && !strings.HasPrefix(tc.name, "an in-place chain")) {
				t.Errorf("pointer %q, want %q", ce.Pointer, tc.pointer)
			}
			if !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", ce.Reason, tc.reason)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, s := range []string{
		`true`, `false`, `{}`, tenField, nested(32), inPlaceChain(30),
		`{"$schema":"https://json-schema.org/draft/2020-12/schema#","type":"object"}`,
		// Recursion that moves into the event is fine.
		`{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`,
		// Own resources with ids resolve without loading anything.
		`{"$id":"https://example.com/root.json","$defs":{"a":{"$id":"a.json","type":"integer"}},"properties":{"x":{"$ref":"a.json"}}}`,
		// Formats are annotations: unknown ones too.
		`{"type":"string","format":"made-up"}`,
	} {
		if err := Check([]byte(s), Config{}); err != nil {
			t.Errorf("%.60s: %v", s, err)
		}
	}
}

// TestNothingIsLoaded: references to a live server and to a readable
// file are refused, and the server sees no request.
func TestNothingIsLoaded(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"type":"string"}`))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(file, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{srv.URL + "/s.json", "file://" + file, file} {
		for _, kw := range []string{"$ref", "$schema"} {
			err := Check([]byte(`{"`+kw+`":"`+ref+`"}`), Config{})
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%s %s: %v, want refused", kw, ref, err)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
}

// TestEverySubschemaFieldReviewed holds node.link, relink and supported to
// the library's Schema type: a field that can hold a subschema and is in
// none of them would be validated without charging the budget. A newer
// library version that adds one fails here until it is reviewed.
func TestEverySubschemaFieldReviewed(t *testing.T) {
	linked := map[string]bool{ // node.link and relink follow these
		"Ref": true, "Not": true, "If": true, "Then": true, "Else": true, "AllOf": true, "AnyOf": true, "OneOf": true,
		"DependentSchemas": true, "Properties": true, "PatternProperties": true, "AdditionalProperties": true,
		"PropertyNames": true, "UnevaluatedProperties": true, "PrefixItems": true, "Items2020": true,
		"Contains": true, "UnevaluatedItems": true,
	}
	refused := map[string]bool{ // supported refuses a schema with these set
		"RecursiveRef": true, "DynamicRef": true, "Items": true, "AdditionalItems": true, "Dependencies": true,
		"ContentSchema": true, "Extensions": true,
	}
	values := map[string]bool{ // interfaces that hold JSON values or a pattern
		"Enum": true, "Const": true, "Default": true, "Examples": true, "Pattern": true,
	}
	schemaType := reflect.TypeFor[jsonschema.Schema]()
	// mayHold: a value of type ty may hold a *Schema (an interface may).
	var mayHold func(reflect.Type, int) bool
	mayHold = func(ty reflect.Type, depth int) bool {
		if ty == schemaType {
			return true
		}
		if depth > 4 {
			return false
		}
		switch ty.Kind() {
		case reflect.Interface:
			return true
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return mayHold(ty.Elem(), depth+1)
		case reflect.Map:
			return mayHold(ty.Key(), depth+1) || mayHold(ty.Elem(), depth+1)
		case reflect.Struct:
			for i := range ty.NumField() {
				if f := ty.Field(i); f.IsExported() && mayHold(f.Type, depth+1) {
					return true
				}
			}
		}
		return false
	}
	for i := range schemaType.NumField() {
		f := schemaType.Field(i)
		if !f.IsExported() || !mayHold(f.Type, 0) {
			continue
		}
		if !linked[f.Name] && !refused[f.Name] && !values[f.Name] {
			t.Errorf("jsonschema.Schema.%s (%s) may hold a subschema: follow it in node.link and relink, or refuse it in supported", f.Name, f.Type)
		}
	}
}

// TestCompileTimeBounded: the most expensive schemas the limits let
// through compile in well under a second (the library's compiler is
// quadratic in the number of subschemas).
func TestCompileTimeBounded(t *testing.T) {
	var props strings.Builder
	props.WriteString(`{"properties":{`)
	for i := range DefaultMaxSubschemas - 2 {
		if i > 0 {
			props.WriteByte(',')
		}
		fmt.Fprintf(&props, `"%d":{}`, i)
	}
	props.WriteString(`}}`)
	all := `{"allOf":[` + strings.TrimSuffix(strings.Repeat(`{},`, DefaultMaxSubschemas-1), ",") + `]}`
	for name, s := range map[string]string{"properties": props.String(), "allOf": all} {
		start := time.Now()
		if err := Check([]byte(s), Config{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := time.Since(start)
		t.Logf("%s: %d bytes compiled in %v", name, len(s), d)
		if limit := 2 * time.Second * raceSlowdown; d > limit {
			t.Errorf("%s: compiled in %v, over %v", name, d, limit)
		}
	}
}
