package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMethodNotAllowedListsAllow checks that a 405 carries the Allow header
// RFC 9110 requires, listing the methods the path serves (schemathesis found
// it missing: the custom problem handler had replaced chi's own, which sets
// it).
func TestMethodNotAllowedListsAllow(t *testing.T) {
	h := fullServer()
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"TRACE", "/healthz", "GET"},
		{http.MethodPost, "/readyz", "GET"},
		{http.MethodDelete, "/v1/streams", "GET, POST"},
		{http.MethodPost, "/v1/streams/s1", "GET, PUT, DELETE"},
		{http.MethodGet, "/v1/streams/s1/events", "POST"},
		{http.MethodPatch, "/stream/s1/send", "POST"},
		{http.MethodPut, "/stream/start", "POST"},
		{http.MethodPost, "/v1/streams/s1/results", "GET"},
		{"FROB", "/v1/streams/s1", "GET, PUT, DELETE"}, // a method chi does not know
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405", tc.method, tc.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want application/problem+json", tc.method, tc.path, ct)
		}
	}
}
