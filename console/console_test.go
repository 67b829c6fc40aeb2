package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

func TestServesFiles(t *testing.T) {
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/console", "text/html; charset=utf-8", "<title>rtstream console</title>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "new EventSource("},
		{"/console/console.css", "text/css; charset=utf-8", ":focus-visible"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, http.MethodGet, tc.path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, w.Code, w.Body)
			}
			h := w.Header()
			if got := h.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := h.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q, want %q", got, ContentSecurityPolicy)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("security headers missing: %v", h)
			}
			if !strings.Contains(w.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			etag := h.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := get(t, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag})
			if again.Code != http.StatusNotModified {
				t.Errorf("GET with If-None-Match: %d, want 304", again.Code)
			}
			head := get(t, http.MethodHead, tc.path, nil)
			if head.Code != http.StatusOK || head.Body.Len() != 0 {
				t.Errorf("HEAD: %d with %d body bytes", head.Code, head.Body.Len())
			}
		})
	}
}

func TestErrorsAreProblems(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/console/nope.js", http.StatusNotFound},
		{http.MethodGet, "/console/static/app.js", http.StatusNotFound},
		{http.MethodPost, "/console", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/console/app.js", http.StatusMethodNotAllowed},
	} {
		w := get(t, tc.method, tc.path, nil)
		if w.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.status)
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		var p struct{ Status int }
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != tc.status {
			t.Errorf("%s %s: body %s", tc.method, tc.path, w.Body)
		}
	}
}

func TestTrailingSlashRedirects(t *testing.T) {
	for _, path := range []string{"/console/", "/console/index.html"} {
		w := get(t, http.MethodGet, path, nil)
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/console" {
			t.Errorf("GET %s: %d Location %q", path, w.Code, w.Header().Get("Location"))
		}
	}
}

// TestPageFitsThePolicy checks what the CSP would otherwise break at run
// time: no inline script or style, nothing loaded from another origin, and
// every asset the page names is one the handler serves.
func TestPageFitsThePolicy(t *testing.T) {
	page := assets[Path].body
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with inline code
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`), // inline event handlers
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	} {
		if loc := bad.FindStringIndex(page); loc != nil {
			t.Errorf("the page has %q, which the policy forbids or which loads from elsewhere", page[loc[0]:min(loc[1]+20, len(page))])
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("the page names %d assets, want the script and the stylesheet", len(refs))
	}
	for _, m := range refs {
		if _, ok := assets[m[1]]; !ok {
			t.Errorf("the page names %s, which is not served", m[1])
		}
	}
}

// TestLabelsForEveryControl: each input, select and textarea has a label.
func TestLabelsForEveryControl(t *testing.T) {
	page := assets[Path].body
	ids := regexp.MustCompile(`<(?:input|select|textarea)\s[^>]*\bid="([^"]+)"`).FindAllStringSubmatch(page, -1)
	controls := regexp.MustCompile(`<(?:input|select|textarea)\b`).FindAllString(page, -1)
	if len(ids) != len(controls) || len(ids) == 0 {
		t.Fatalf("%d controls, %d with an id", len(controls), len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("control #%s has no label", m[1])
		}
	}
}

// TestScriptKeepsTheKeyOutOfURLs: the key never goes in a URL; the one
// credential the script puts in one is a subscribe token, on the results
// route, the one the contract allows.
func TestScriptKeepsTheKeyOutOfURLs(t *testing.T) {
	js := assets[Path+"/app.js"].body
	if strings.Contains(js, "api_key") {
		t.Fatal("app.js names api_key: the key must never go in a URL")
	}
	if n := strings.Count(js, "token="); n != 1 {
		t.Fatalf("token= appears %d times in app.js, want once", n)
	}
	line := js[strings.LastIndex(js[:strings.Index(js, "token=")], "\n"):]
	line = line[:strings.Index(line[1:], "\n")+1]
	if !strings.Contains(line, "'/results?token=' + encodeURIComponent(tok.token)") {
		t.Errorf("token= is used outside the results URL: %s", line)
	}
	if strings.Contains(js, "localStorage") {
		t.Error("app.js uses localStorage; the key belongs in sessionStorage only")
	}
}
