package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// apiTokens are the HTTP API tokens of every binary the tests start: a write
// token for the ingest gateway, a read token for the query API; fresh for
// each run of the tests.
var apiTokens = loadgen.Tokens{Write: newToken(), Read: newToken()}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpEnv is the HTTP part of a binary's environment: its admin listener
// (p.admin: /healthz, /readyz, /metrics) and, but for the projector, its API
// listener (p.addr) with apiTokens from a tokens file of mode 0600. It comes
// after the rest of the stack's environment, so it overrides it.
func (p *proc) httpEnv(t testing.TB) []string {
	t.Helper()
	p.admin = testenv.FreeAddr(t)
	if p.name == "projector" {
		// No API; an inherited HTTP_ADDR would set the admin address (the
		// projector's deprecated alias): empty means unset.
		p.addr = ""
		return []string{"ADMIN_ADDR=" + p.admin, "HTTP_ADDR="}
	}
	file := filepath.Join(t.TempDir(), "tokens")
	body := "e2e-ingest:write:" + apiTokens.Write + "\ne2e-query:read:" + apiTokens.Read + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"ADMIN_ADDR=" + p.admin, "HTTP_ADDR=" + p.addr, "HTTP_TOKENS_FILE=" + file,
		"HTTP_TOKENS=", "HTTP_BEARER_TOKEN=", "HTTP_INSECURE_NO_AUTH="}
}

// apiGet is http.Get with the read token: for the query API.
func apiGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiTokens.Read)
	return http.DefaultClient.Do(req)
}

// apiPost is http.Post with the write token: for the ingest gateway.
func apiPost(url, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+apiTokens.Write)
	return http.DefaultClient.Do(req)
}

// TestAPITokens: the binaries as deployed take only tokens of their API's
// scope on the API listener, and serve /healthz, /readyz and /metrics on the
// admin listener only, where the refusals are counted by token name.
func TestAPITokens(t *testing.T) {
	s := newStack(t, 2)
	env := storesEnv(t)
	ingest, query := s.start("ingest", env, "serve"), s.start("queryapi", env)
	for _, p := range []*proc{ingest, query} {
		p.waitReady(t, 90*time.Second)
	}
	open := `{"type":"OpenAccount","account_id":"tok-1","owner":"T","currency":"EUR"}`
	for _, c := range []struct {
		name, method, url, token string
		status                   int
	}{
		{"gateway, no token", "POST", "http://" + ingest.addr + "/v1/commands", "", 401},
		{"gateway, unknown token", "POST", "http://" + ingest.addr + "/v1/commands", newToken(), 401},
		{"gateway, read token", "POST", "http://" + ingest.addr + "/v1/commands", apiTokens.Read, 403},
		{"gateway, write token", "POST", "http://" + ingest.addr + "/v1/commands", apiTokens.Write, 202},
		{"query API, no token", "GET", "http://" + query.addr + "/v1/accounts/tok-1", "", 401},
		{"query API, write token", "GET", "http://" + query.addr + "/v1/accounts/tok-1", apiTokens.Write, 403},
		{"query API, read token, unknown account", "GET", "http://" + query.addr + "/v1/accounts/tok-unknown", apiTokens.Read, 404},
		{"query API's OpenAPI document, public", "GET", "http://" + query.addr + "/openapi.json", "", 200},
		{"gateway's API listener, /readyz", "GET", "http://" + ingest.addr + "/readyz", apiTokens.Write, 404},
		{"query API's listener, /metrics", "GET", "http://" + query.addr + "/metrics", apiTokens.Read, 404},
		{"gateway's admin listener, /metrics", "GET", "http://" + ingest.admin + "/metrics", "", 200},
	} {
		var body io.Reader
		if c.method == "POST" {
			body = strings.NewReader(open)
		}
		req, err := http.NewRequest(c.method, c.url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, raw, c.status)
		}
	}
	if n := metricSum(ingest.admin, "ledger_http_refused_total", `reason="forbidden"`, `token="e2e-query"`); n != 1 {
		t.Errorf("the gateway counted %v refusals of the read token, want 1", n)
	}
	for _, p := range []*proc{ingest, query} {
		for _, tok := range []string{apiTokens.Write, apiTokens.Read} {
			if strings.Contains(p.logs.String(), tok) {
				t.Errorf("%s logged a token", p.name)
			}
		}
	}
}
