package handlers

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStreamDefinitionErrors: a bad definition is a 400 whose detail and
// pointer speak the contract — never encoding/json's Go types and fields —
// and a name with a control or format character is refused; a refused
// builtin is 422.
func TestStreamDefinitionErrors(t *testing.T) {
	url := newIdemServer(t, &fakeEvents{}, newIdem(), time.Second) + "/v1/streams"
	tests := []struct {
		body, pointer, detail string
		status                int
	}{
		{`{"name":5}`, "/name", "/name: must be a string, not a number", 400},
		{`{"name":["a"]}`, "/name", "must be a string, not an array", 400},
		{`{"processor":"x"}`, "/processor", "/processor: must be an object, not a string", 400},
		{`{"processor":{"filter":true}}`, "/processor/filter", "/processor/filter: must be a string, not a boolean", 400},
		{`{"processor":{"map":{}}}`, "/processor/map", "must be a string, not an object", 400},
		{`{"nmae":"x"}`, "/nmae", `unknown member "nmae"`, 400},
		{`{"name":"a` + "\u202e" + `b"}`, "/name", "format character (U+202E)", 400},
		{`{"name":"a` + "\u200b" + `b"}`, "/name", "U+200B", 400},
		{`{"name":"` + "\ufeff" + `ab"}`, "/name", "U+FEFF", 400},
		{`{"name":"a` + "\u2066" + `b"}`, "/name", "U+2066", 400},
		{`{"name":"a` + "\u00ad" + `b"}`, "/name", "U+00AD", 400},
		{`{"name":"a\u0007b"}`, "/name", "control", 400},
		{`{"processor":{"map":"timezone(\"UTC\")"}}`, "/processor/map", "function timezone is not allowed", 422},
	}
	for _, tc := range tests {
		rep := post(t, url, keyA, "application/json", tc.body)
		var p struct {
			Detail string `json:"detail"`
			Errors []struct{ Pointer, Detail string }
		}
		if err := json.Unmarshal([]byte(rep.body), &p); err != nil {
			t.Fatalf("%s: %v: %s", tc.body, err, rep.body)
		}
		if rep.status != tc.status || !strings.Contains(p.Detail, tc.detail) || len(p.Errors) != 1 || p.Errors[0].Pointer != tc.pointer {
			t.Errorf("%s: %d %s; want %d, detail with %q, pointer %s", tc.body, rep.status, rep.body, tc.status, tc.detail, tc.pointer)
		}
		for _, leak := range []string{"Go struct", "streamBody", "of type", "rtstream."} {
			if strings.Contains(rep.body, leak) {
				t.Errorf("%s: %s names Go (%q)", tc.body, rep.body, leak)
			}
		}
	}
}

// TestUnavailableDetail: a 503 on a read does not speak of acceptance.
func TestUnavailableDetail(t *testing.T) {
	tests := []struct {
		method, path string
		accepted     bool
	}{
		{"GET", "/v1/streams/s1/results", false},
		{"GET", "/v1/streams/s1", false},
		{"GET", "/v1/streams", false},
		{"GET", "/v1/streams/s1/dead-letters", false},
		{"POST", "/v1/streams/s1/events", true},
		{"PUT", "/v1/streams/s1", true},
		{"DELETE", "/v1/streams/s1", true},
	}
	for _, tc := range tests {
		d := unavailableDetail(httptest.NewRequest(tc.method, tc.path, nil))
		if strings.Contains(d, "nothing was accepted") != tc.accepted {
			t.Errorf("%s %s: %q", tc.method, tc.path, d)
		}
	}
}
