// Package ui is the query API's built-in console: a static page (HTML, JS,
// CSS and a vendored uPlot, embedded in the binary) served at /ui/, that
// looks up accounts, history, command outcomes and transfers and charts the
// analytics endpoints.
//
// The page itself holds no data, so it is served without a token, like the
// OpenAPI document. Every number it shows comes from the /v1/ routes, which
// need a read token: the user enters one, the page keeps it in the tab's
// sessionStorage and sends it as "Authorization: Bearer" on each fetch. The
// Content-Security-Policy allows scripts, styles and requests from the same
// origin only, so nothing is loaded from elsewhere and the token goes
// nowhere else.
package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where Handler expects to be mounted.
const Prefix = "/ui/"

// CSP is the Content-Security-Policy of every answer: same-origin scripts,
// styles, images and fetches; no frames, forms posting elsewhere or base
// URL changes. uPlot styles its elements through the DOM, which style-src
// does not restrict.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Assets is the embedded file tree (index.html, console.js, …, vendor/).
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// Handler serves the console's files under Prefix (GET and HEAD); a
// directory other than the root, or a file that does not exist, is 404.
func Handler() http.Handler {
	files := http.FileServerFS(Assets())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The files change only with the binary, and embedded files carry
		// no modification time to revalidate against: a cache must ask
		// again, so an upgrade is seen at once.
		h.Set("Cache-Control", "no-cache")
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok || (name != "" && (strings.HasSuffix(name, "/") || !fs.ValidPath(name))) {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		if st, err := fs.Stat(Assets(), name); err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		if name == "index.html" {
			// FileServer redirects /index.html to ./; serve the content.
			serveIndex(w, r2)
			return
		}
		files.ServeHTTP(w, r2)
	})
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(Assets(), "index.html")
	if err != nil {
		http.Error(w, "the console is missing from the build", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(b))
}
