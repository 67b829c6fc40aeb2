package openapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/rtstream/rtstream/openapi"
)

// load parses the embedded document and resolves its references.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document())
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	return doc
}

// TestDocumentIsValidOpenAPI31 validates the document as OpenAPI 3.1: its
// structure, every schema (JSON Schema 2020-12 keywords included), patterns,
// defaults and the media types' examples, reporting every problem at once.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi: %q; want 3.1.x", doc.OpenAPI)
	}
	err := doc.Validate(context.Background(),
		openapi3.EnableMultiError(),
		openapi3.EnableSchemaFormatValidation(),
		openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableExamplesValidation(),
	)
	if err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI 3.1:\n%v", err)
	}
}

// schemas calls f with every schema reachable from the document's
// components and operations, once each, with where it was found.
func schemas(doc *openapi3.T, f func(where string, s *openapi3.Schema)) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, ref *openapi3.SchemaRef)
	walk = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		f(where, s)
		for name, p := range s.Properties {
			walk(where+"/properties/"+name, p)
		}
		walk(where+"/items", s.Items)
		walk(where+"/not", s.Not)
		for i, sub := range slices.Concat(s.AllOf, s.AnyOf, s.OneOf) {
			walk(where+"/of/"+strconv.Itoa(i), sub)
		}
	}
	for name, s := range doc.Components.Schemas {
		walk("#/components/schemas/"+name, s)
	}
	for name, p := range doc.Components.Parameters {
		walk("#/components/parameters/"+name, p.Value.Schema)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range op.Parameters {
				walk(method+" "+path+" "+p.Value.Name, p.Value.Schema)
			}
		}
	}
}

// TestSchemaExamples checks every schema's examples against the schema.
// kin-openapi validates the examples of media types and parameters, but not
// the JSON Schema 2020-12 "examples" keyword inside a schema, which is where
// an OpenAPI 3.1 document keeps most of them.
func TestSchemaExamples(t *testing.T) {
	doc := load(t)
	n := 0
	schemas(doc, func(where string, s *openapi3.Schema) {
		for i, ex := range s.Examples {
			n++
			if err := s.VisitJSON(ex, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("%s: example %d does not match its schema: %v", where, i, err)
			}
		}
	})
	if n < 10 {
		t.Fatalf("checked %d schema examples; did the walk miss some?", n)
	}
}

// TestSchemasRejectWhatTheServerNeverSends spot-checks schemas that use
// 3.1-only keywords, so a validator that ignored them would be noticed.
func TestSchemasRejectWhatTheServerNeverSends(t *testing.T) {
	doc := load(t)
	tests := []struct {
		schema, value string
		ok            bool
	}{
		{"ResultWithCursor", `{"cursor":"1-2-3","stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:05.5Z","data":null}`, true},
		{"ResultWithCursor", `{"cursor":"1-2-3","stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:05.5Z","data":1,"extra":1}`, false},
		{"ResultWithCursor", `{"stream_id":"s","event_id":"e","received_at":"2026-01-02T03:04:05Z","processed_at":"2026-01-02T03:04:05.5Z","data":1}`, false},
		{"StreamDefinition", `{"name":null,"processor":null}`, true},
		{"StreamDefinition", `{"name":"x","other":1}`, false},
		{"JSONEvents", `{"temp":1}`, true},
		{"JSONEvents", `[1]`, true},
		{"JSONEvents", `[]`, false},
		{"ResultPage", `{"results":[],"next":""}`, true},
		{"ResultPage", `{"results":[],"next":"x"}`, false},
		{"StreamList", `{"streams":[],"next":"-bad"}`, false},
		{"WsEndFrame", `{"end":{"reason":"stream deleted"}}`, true},
		{"WsEndFrame", `{"end":{"reason":"other"}}`, false},
	}
	for _, tc := range tests {
		ref := doc.Components.Schemas[tc.schema]
		if ref == nil {
			t.Errorf("no schema %s", tc.schema)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(tc.value), &v); err != nil {
			t.Fatal(err)
		}
		err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: valid=%v, want %v (%v)", tc.schema, tc.value, err == nil, tc.ok, err)
		}
	}
}

// TestEveryAnswerIsDescribedAlike holds the document to the conventions the
// contract sets for every route, which are easy to forget on one response:
// every answer carries X-Request-ID; every 4xx/5xx is a problem; 429 and 503
// say when to retry; every API route documents its auth and rate-limit
// refusals.
func TestEveryAnswerIsDescribedAlike(t *testing.T) {
	doc := load(t)
	public := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.yaml": true,
		"/console": true, "/console/{file}": true}
	// notProblem are the error answers the server does not write itself:
	// net/http's ServeContent answers these for the console's files.
	notProblem := map[string]bool{"412": true, "416": true}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: needs an operationId and a summary", name)
			}
			for code, ref := range op.Responses.Map() {
				resp := ref.Value
				if resp.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s: no X-Request-ID header", name, code)
				}
				status, _ := strconv.Atoi(code)
				if status >= 400 && resp.Content.Get("application/problem+json") == nil &&
					!(strings.HasPrefix(path, "/console") && notProblem[code]) {
					t.Errorf("%s %s: not an application/problem+json answer", name, code)
				}
				if (status == 429 || status == 503) && (resp.Headers["Retry-After"] == nil || !resp.Headers["Retry-After"].Value.Required) {
					t.Errorf("%s %s: no required Retry-After header", name, code)
				}
				if !public[path] && resp.Headers["RateLimit-Remaining"] == nil {
					t.Errorf("%s %s: an API route's answer without the RateLimit-* headers", name, code)
				}
			}
			want := []string{"500"}
			if !public[path] {
				want = append(want, "401", "403", "429", "503")
			}
			if strings.Contains(path, "{id}") {
				want = append(want, "400")
				if method != http.MethodPut { // PUT creates what is missing
					want = append(want, "404")
				}
			}
			for _, code := range want {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s: no %s answer", name, code)
				}
			}
		}
	}
}

// TestServe checks the route's answer: the embedded bytes, as YAML.
func TestServe(t *testing.T) {
	rec := httptest.NewRecorder()
	openapi.Serve(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != openapi.ContentType {
		t.Fatalf("answer %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(openapi.Document()) {
		t.Fatal("the body is not the embedded document")
	}
}
