package query

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of both HTTP APIs: this one (tag
// "query") and the ingest gateway's (tag "ingest"). A test checks that its
// paths and the registered routes agree.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document (JSON) of the query API and the
// ingest gateway.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// OpenAPIHandler serves the document; it needs no authentication.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(openAPI)
	})
}
