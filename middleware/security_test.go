package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rtstream/rtstream/middleware"
)

func TestCORS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	tests := []struct {
		name       string
		allowed    []string
		method     string
		origin     string
		preflight  bool
		wantStatus int
		wantAllow  string
	}{
		{"no origin", []string{"https://a.test"}, "GET", "", false, 200, ""},
		{"listed origin", []string{"https://a.test"}, "GET", "https://a.test", false, 200, "https://a.test"},
		{"other origin", []string{"https://a.test"}, "GET", "https://evil.test", false, 200, ""},
		{"nothing allowed", nil, "GET", "https://a.test", false, 200, ""},
		{"any origin", []string{"*"}, "GET", "https://b.test", false, 200, "*"},
		{"preflight", []string{"https://a.test"}, "OPTIONS", "https://a.test", true, 204, "https://a.test"},
		{"preflight other origin", []string{"https://a.test"}, "OPTIONS", "https://evil.test", true, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/v1/streams", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.preflight {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			rec := httptest.NewRecorder()
			middleware.CORS(tt.allowed)(ok).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d; want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Allow-Origin %q; want %q", got, tt.wantAllow)
			}
			if rec.Header().Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials allowed")
			}
		})
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := middleware.ParseOrigins(" https://a.test/ , http://b.test:8080,")
	if err != nil || len(got) != 2 || got[0] != "https://a.test" || got[1] != "http://b.test:8080" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := middleware.ParseOrigins("a.test"); err == nil {
		t.Fatal("origin without scheme accepted")
	}
}

func TestSecureHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	middleware.SecureHeaders(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("%s not set", h)
		}
	}
}
