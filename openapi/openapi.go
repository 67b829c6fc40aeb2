// Package openapi holds rtstream's OpenAPI 3.1 document, the machine-readable
// form of the API contract (../shared/spec/api.md), and serves it. It is
// embedded in the binary so that the document a server serves is the one it
// was built and tested with; it imports nothing of this module, so the HTTP
// layer can serve it without reaching the Kafka layer.
package openapi

import (
	_ "embed"
	"net/http"
)

// ContentType is the media type the document is served with (RFC 9512).
const ContentType = "application/yaml"

//go:embed openapi.yaml
var document []byte

// Document returns the OpenAPI document as YAML. The slice is shared: callers
// must not change it.
func Document() []byte { return document }

// Serve answers with the document. It is public documentation: the route
// needs no credential and is not rate limited.
func Serve(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	// The document changes only with the binary; a short cache keeps tools
	// that fetch it repeatedly from refetching, and a deploy shows soon.
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(document)
}
