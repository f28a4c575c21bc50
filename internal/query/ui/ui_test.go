package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET "+Prefix, Handler()) // as cmd/queryapi mounts it
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHandler(t *testing.T) {
	srv := serve(t)
	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, c := range []struct {
		method, path string
		status       int
		ctype, body  string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8", `<script src="console.js">`},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8", `<script src="console.js">`},
		{"HEAD", "/ui/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/ui/console.js", 200, "text/javascript; charset=utf-8", "sessionStorage"},
		{"GET", "/ui/console.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/ui/vendor/uplot/uPlot.iife.min.js", 200, "text/javascript; charset=utf-8", "var uPlot="},
		{"GET", "/ui/vendor/uplot/uPlot.min.css", 200, "text/css; charset=utf-8", ".uplot"},
		{"GET", "/ui", 307, "", ""}, // to /ui/ (ServeMux)
		{"GET", "/ui/nope.js", 404, "", ""},
		{"GET", "/ui/vendor/", 404, "", ""},               // no directory listings
		{"GET", "/ui/vendor", 404, "", ""},                // nor redirects to them
		{"GET", "/ui/%2e%2e/ui.go", 404, "", ""},          // nothing outside static/
		{"GET", "/ui/vendor//uplot/LICENSE", 307, "", ""}, // cleaned by ServeMux
		{"POST", "/ui/", 405, "", ""},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
			continue
		}
		if c.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", c.method, c.path, got, c.ctype)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s %s: CSP %q", c.method, c.path, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: headers %v", c.method, c.path, resp.Header)
		}
		if !strings.Contains(string(b), c.body) {
			t.Errorf("%s %s: body lacks %q", c.method, c.path, c.body)
		}
	}
}

// TestNoOtherOrigin: the console's own files load nothing from another
// origin (no CDN) and fetch only the API's relative /v1/ routes.
func TestNoOtherOrigin(t *testing.T) {
	ref := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"([^"]*)"|url\(([^)]*)\)|fetch\(([^)]*)\)`)
	for _, name := range []string{"index.html", "console.js", "console.css"} {
		b, err := fs.ReadFile(Assets(), name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "://") {
			t.Errorf("%s names an absolute URL", name)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			u := m[1] + m[2] + m[3]
			if strings.HasPrefix(u, "//") || strings.HasPrefix(u, "/") {
				t.Errorf("%s: %q is not relative to the page", name, u)
			}
		}
	}
	js, _ := fs.ReadFile(Assets(), "console.js")
	if strings.Contains(string(js), "localStorage") || strings.Contains(string(js), "innerHTML") {
		t.Error("console.js keeps the token beyond the tab (localStorage) or writes markup (innerHTML)")
	}
}

// TestVendoredUPlot: the vendored uPlot is the version and the bytes its
// VERSION note records (copied unchanged from the npm tarball).
func TestVendoredUPlot(t *testing.T) {
	note, err := fs.ReadFile(Assets(), "vendor/uplot/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`^uPlot (\d+\.\d+\.\d+) `).FindSubmatch(note)
	if version == nil {
		t.Fatalf("VERSION names no version:\n%s", note)
	}
	digests := regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64}) (\S+)$`).FindAllSubmatch(note, -1)
	if len(digests) != 3 {
		t.Fatalf("VERSION lists %d digests, want 3 (the script, the stylesheet, LICENSE)", len(digests))
	}
	for _, d := range digests {
		b, err := fs.ReadFile(Assets(), "vendor/uplot/"+string(d[2]))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != string(d[1]) {
			t.Errorf("%s: sha256 %x, VERSION says %s", d[2], sum, d[1])
		}
	}
	js, _ := fs.ReadFile(Assets(), "vendor/uplot/uPlot.iife.min.js")
	if want := "(v" + string(version[1]) + ")"; !strings.Contains(string(js[:100]), want) {
		t.Errorf("uPlot.iife.min.js banner %q lacks %s", js[:60], want)
	}
}
