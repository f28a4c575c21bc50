package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/gateway"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Tags        []string          `json:"tags"`
		OperationID string            `json:"operationId"`
		Responses   map[string]any    `json:"responses"`
		Parameters  []json.RawMessage `json:"parameters"`
	} `json:"paths"`
}

func loadDoc(t *testing.T) openAPIDoc {
	t.Helper()
	var d openAPIDoc
	if err := json.Unmarshal(OpenAPI(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi %q: want 3.x", d.OpenAPI)
	}
	return d
}

var wildcard = regexp.MustCompile(`\{[a-z_]+\}`)

// request is a request for an OpenAPI path with its parameters filled in.
func request(method, path string) *http.Request {
	return httptest.NewRequest(strings.ToUpper(method), wildcard.ReplaceAllString(path, "x"), nil)
}

// TestOpenAPICoversRoutes: every documented query path is a route of the
// handler, every documented ingest path one of the gateway's, and every
// route of the handler is documented.
func TestOpenAPICoversRoutes(t *testing.T) {
	d := loadDoc(t)
	h := newFixture(t).h

	gwMux := http.NewServeMux()
	// gateway.New builds its Kafka client without connecting.
	gw, err := gateway.New(gateway.Config{Kafka: config.Kafka{Brokers: "127.0.0.1:1", TopicPrefix: "openapi-test."}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.Routes(gwMux)

	documented := map[string]bool{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = true
			if op.OperationID == "" || len(op.Responses) == 0 || len(op.Tags) != 1 {
				t.Errorf("%s: want an operationId, responses and one tag", pattern)
			}
			for _, w := range wildcard.FindAllString(path, -1) {
				name := strings.Trim(w, "{}")
				if !declaresPathParam(t, op.Parameters, name) {
					t.Errorf("%s: path parameter %s is not declared", pattern, name)
				}
			}
			var mux interface {
				Handler(*http.Request) (http.Handler, string)
			}
			switch op.Tags[0] {
			case "query":
				mux = h.mux
			case "ingest":
				mux = gwMux
			default:
				t.Errorf("%s: tag %q: want query or ingest", pattern, op.Tags[0])
				continue
			}
			if _, got := mux.Handler(request(method, path)); got != pattern {
				t.Errorf("%s (%s) is documented but routes to %q", pattern, op.Tags[0], got)
			}
		}
	}
	for _, p := range Routes() {
		if !documented[p] {
			t.Errorf("route %s is not documented in openapi.json", p)
		}
	}
	for _, p := range []string{"POST /v1/commands", "POST /v1/commands:batch"} {
		if !documented[p] {
			t.Errorf("gateway route %s is not documented in openapi.json", p)
		}
	}
}

func declaresPathParam(t *testing.T, params []json.RawMessage, name string) bool {
	t.Helper()
	var doc map[string]any
	_ = json.Unmarshal(OpenAPI(), &doc)
	for _, raw := range params {
		var p map[string]any
		_ = json.Unmarshal(raw, &p)
		if ref, ok := p["$ref"].(string); ok {
			p, _ = resolve(doc, ref).(map[string]any)
		}
		if p["in"] == "path" && p["name"] == name && p["required"] == true {
			return true
		}
	}
	return false
}

func resolve(doc map[string]any, ref string) any {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPIRefsResolve: every $ref points into the document.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var refs []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				refs = append(refs, r)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	sort.Strings(refs)
	refs = slices.Compact(refs)
	if len(refs) == 0 {
		t.Fatal("no $ref found")
	}
	for _, r := range refs {
		if !strings.HasPrefix(r, "#/components/") || resolve(doc, r) == nil {
			t.Errorf("$ref %s does not resolve", r)
		}
	}
}

func TestOpenAPIHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	OpenAPIHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%d %s", rec.Code, rec.Header())
	}
}
