package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/rtstream/rtstream"
	"github.com/rtstream/rtstream/handlers"
	"github.com/rtstream/rtstream/openapi"
)

// routeStreams and routeEvents are the least the server needs to be built;
// walking its routes calls neither.
type routeStreams struct{}

func (routeStreams) Create(context.Context, rtstream.Stream) (rtstream.Stream, bool, error) {
	return rtstream.Stream{}, false, rtstream.ErrUnavailable
}
func (routeStreams) Get(context.Context, string) (rtstream.Stream, error) {
	return rtstream.Stream{}, rtstream.ErrNotFound
}
func (routeStreams) List(context.Context, string, string, int) ([]rtstream.Stream, error) {
	return nil, nil
}
func (routeStreams) Delete(context.Context, string) error { return rtstream.ErrNotFound }

type routeEvents struct{}

func (routeEvents) Send(context.Context, string, []json.RawMessage) ([]string, error) {
	return nil, rtstream.ErrUnavailable
}

// fullServer builds the server with every optional route switched on, as
// cmd/rtstream builds it.
func fullServer() http.Handler {
	return handlers.NewServer(handlers.Deps{
		Streams: routeStreams{},
		Events:  routeEvents{},
		Subscribe: func(context.Context, string, rtstream.From) (rtstream.Feed, error) {
			return nil, rtstream.ErrUnavailable
		},
		MetricsHandler: http.NotFoundHandler(),
	})
}

// TestOpenAPICoversEveryRoute checks that the OpenAPI document describes
// exactly the routes the router serves, in both directions: a route added
// without documentation fails here, and so does documentation of a route
// that is gone.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	h := fullServer()
	routes, ok := h.(*handlers.Server).Handler.(chi.Routes)
	if !ok {
		t.Fatal("NewServer no longer returns a chi router; walk its routes another way")
	}
	byPattern := map[string][]string{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		byPattern[route] = append(byPattern[route], method)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for pattern, methods := range byPattern {
		if len(methods) >= len(allMethods) {
			// Mounted for every method (chi's Handle): the handler picks
			// its methods, and answers 405 to the others itself.
			methods = answeredMethods(h, pattern)
		}
		for _, m := range methods {
			served[m+" "+normalize(pattern)] = true
		}
	}

	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document())
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+normalize(path)] = true
		}
	}

	for _, r := range sortedKeys(served) {
		if !documented[r] {
			t.Errorf("%s is served but not in openapi/openapi.yaml", r)
		}
	}
	for _, r := range sortedKeys(documented) {
		if !served[r] {
			t.Errorf("%s is in openapi/openapi.yaml but not served", r)
		}
	}
	if len(served) < 15 {
		t.Errorf("the walk found only %d routes: %v", len(served), sortedKeys(served))
	}
}

// allMethods are the methods chi mounts a route for with Handle.
var allMethods = []string{
	http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
	http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace,
}

// answeredMethods asks the handler of a route mounted for every method which
// methods it serves: those it does not answer 405.
func answeredMethods(h http.Handler, pattern string) []string {
	path := strings.ReplaceAll(paramRE.ReplaceAllString(pattern, "x"), "*", "x")
	var out []string
	for _, m := range allMethods {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, path, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			out = append(out, m)
		}
	}
	return out
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// normalize writes chi's and OpenAPI's path templates alike: every path
// parameter, and chi's trailing catch-all, as "{}". A catch-all's value can
// hold slashes and an OpenAPI parameter's cannot; the document describes the
// files a catch-all serves, which have none.
func normalize(pattern string) string {
	p := paramRE.ReplaceAllString(pattern, "{}")
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "*") + "{}"
	}
	return p
}

// TestOpenAPIRouteIsPublic checks that the document is served without a
// credential, as the contract says, whatever the API's guard requires.
func TestOpenAPIRouteIsPublic(t *testing.T) {
	deny := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "guarded", http.StatusUnauthorized)
		})
	}
	h := handlers.NewServer(handlers.Deps{
		Streams: routeStreams{},
		Events:  routeEvents{},
		Subscribe: func(context.Context, string, rtstream.From) (rtstream.Feed, error) {
			return nil, rtstream.ErrUnavailable
		},
		Authenticate: deny,
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.HasPrefix(rec.Body.String(), "openapi: 3.1") {
		t.Fatalf("GET /openapi.yaml served %.40q", rec.Body.String())
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
