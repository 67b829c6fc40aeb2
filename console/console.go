// Package console serves the live browser console at /console: one page, a
// stylesheet and a script, embedded in the binary. The page is a client of the
// public API like any other (it sends the API key the user types in), so the
// package has no server-side logic beyond serving its files.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/rtstream/rtstream/problem"
)

// Path is where the page is served; its assets are under Path + "/".
const Path = "/console"

// ContentSecurityPolicy is set on every console answer. It replaces the API's
// "default-src 'none'" with the least the page needs: its own script and
// stylesheet (files, never inline) and calls to its own origin (fetch and
// EventSource). Nothing else loads, nothing frames it, no form posts anywhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name        string
	contentType string
	body        string
	etag        string
}

// assets are the files by request path.
var assets = func() map[string]asset {
	files := map[string]struct{ file, contentType string }{
		Path:                  {"index.html", "text/html; charset=utf-8"},
		Path + "/app.js":      {"app.js", "text/javascript; charset=utf-8"},
		Path + "/console.css": {"console.css", "text/css; charset=utf-8"},
		Path + "/icon.svg":    {"icon.svg", "image/svg+xml"},
	}
	out := make(map[string]asset, len(files))
	for path, f := range files {
		data, err := fs.ReadFile(static, "static/"+f.file)
		if err != nil {
			panic("console: embedded file missing: " + err.Error()) // a build mistake, caught by the tests
		}
		sum := sha256.Sum256(data)
		out[path] = asset{name: f.file, contentType: f.contentType, body: string(data),
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}()

// Handler serves the page at Path and its assets under Path + "/". Mount it
// for Path and Path + "/*". It needs no credentials: the page holds no data,
// and every API call it makes carries the key the user gives it.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// The page puts the key in the results URL (EventSource cannot send
	// headers): never let it leave in a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "the console is read with GET"))
		return
	}
	path := r.URL.Path
	if path == Path+"/" || path == Path+"/index.html" {
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
		return
	}
	a, ok := assets[path]
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "no such console file"))
		return
	}
	h.Set("Content-Type", a.contentType)
	// Revalidate every time: a new binary may serve a new page, and the
	// ETag makes an unchanged one cost a 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, strings.NewReader(a.body))
}
