package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// The tokens of the tests; none may ever appear in a log line.
const (
	writeTok   = "wr1te-0123456789abcdef-A"
	readTok    = "re4d-0123456789abcdef-B"
	oldWrite   = "0ldwr1te-0123456789abcdef"
	oldRead    = "0ldre4d-0123456789abcdef"
	unknownTok = "unkn0wn-0123456789abcdef"
)

var allTokens = []string{writeTok, readTok, oldWrite, oldRead, unknownTok}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	hookMu    sync.Mutex
	listeners = map[string]chan [2]string{} // service → (listener, addr)
)

func init() {
	// The tests reload by hand (CheckFile, Reload) or run Watch themselves.
	TokensCheckInterval = time.Hour
	testHookListening = func(service, listener, addr string) {
		hookMu.Lock()
		ch := listeners[service]
		hookMu.Unlock()
		if ch != nil {
			ch <- [2]string{listener, addr}
		}
	}
}

var mtimeStep atomic.Int64

// writeTokens writes a tokens file with mode 0600 and a modification time
// of its own, so that a rewrite is seen however coarse the file system's
// clock.
func writeTokens(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	mt := time.Now().Add(time.Duration(mtimeStep.Add(1)) * time.Second)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// svc is a RunService under test.
type svc struct {
	api, admin string // base URLs; api is empty without API routes
	auth       *Auth
	logs       *syncBuffer
	stop       func() error
}

// httpConfig is the configuration the flags give: addresses on free ports
// plus args.
func httpConfig(t *testing.T, scope config.Scope, args ...string) config.HTTP {
	t.Helper()
	var cfg config.HTTP
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs, "127.0.0.1:0", "127.0.0.1:0", scope)
	if err := fs.Parse(append([]string{"-shutdown-timeout", "5s"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs RunService with cfg until the test ends (or stop).
func start(t *testing.T, name string, cfg config.HTTP, setup func(*Service)) *svc {
	t.Helper()
	ch := make(chan [2]string, 2)
	hookMu.Lock()
	listeners[name] = ch
	hookMu.Unlock()
	s := &svc{logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- RunService(ctx, name, cfg, log, func(sv *Service) error {
			s.auth = sv.Auth
			setup(sv)
			close(ready)
			return nil
		})
	}()
	want := 1
	select {
	case <-ready:
		if s.auth != nil {
			want = 2 // the tests' setups all add API routes
		}
	case err := <-done:
		t.Fatalf("RunService: %v\n%s", err, s.logs)
	}
	scheme := "http://"
	if cfg.TLSCert != "" {
		scheme = "https://"
	}
	for range want {
		select {
		case l := <-ch:
			if l[0] == "api" {
				s.api = scheme + l[1]
			} else {
				s.admin = "http://" + l[1]
			}
		case err := <-done:
			t.Fatalf("RunService: %v\n%s", err, s.logs)
		case <-time.After(10 * time.Second):
			t.Fatal("listeners not up after 10 s")
		}
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = fmt.Errorf("RunService still running 10 s after cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// ok answers 200 {"ok": true}.
var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
})

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, client *http.Client, method, url, token string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a.body)
	if a.body == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s %s: JSON content type, body %q", method, url, raw)
	}
	return a
}

// TestAuthMatrix: every route class × every kind of token. Denied cases: 4
// on the gateway's routes and 4 on the query API's (missing, unknown,
// revoked by rotation, wrong scope), plus the 30 requests for /healthz,
// /readyz and /metrics on the two API listeners (404 with any token).
func TestAuthMatrix(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file,
		"# the tokens of TestAuthMatrix",
		"ingest:write:"+writeTok,
		"dash:read:"+readTok+"  # dashboards",
		"",
		"old-w:write:"+oldWrite,
		"old-r:read:"+oldRead)
	gw := start(t, "matrix-gateway", httpConfig(t, config.ScopeWrite, "-http-tokens-file", file), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	q := start(t, "matrix-query", httpConfig(t, config.ScopeRead, "-http-tokens-file", file), func(s *Service) {
		s.Handle("/v1/", config.ScopeRead, ok)
		s.HandlePublic("GET /openapi.json", ok)
	})

	// Before the rotation the old tokens work.
	if a := call(t, nil, "POST", gw.api+"/v1/commands", oldWrite); a.status != 200 {
		t.Fatalf("old write token before rotation: %d %v", a.status, a.body)
	}
	if a := call(t, nil, "GET", q.api+"/v1/accounts/a", oldRead); a.status != 200 {
		t.Fatalf("old read token before rotation: %d %v", a.status, a.body)
	}
	// Rotation: the old lines go; the file is re-read because it changed.
	writeTokens(t, file, "ingest:write:"+writeTok, "dash:read:"+readTok)
	for _, s := range []*svc{gw, q} {
		if !s.auth.CheckFile() {
			t.Fatal("CheckFile: the rewritten tokens file was not seen as changed")
		}
		if s.auth.CheckFile() {
			t.Fatal("CheckFile: an unchanged file was seen as changed")
		}
	}

	type kind struct{ name, gw, q string } // the token sent to each binary
	kinds := []kind{
		{"missing", "", ""},
		{"unknown", unknownTok, unknownTok},
		{"revoked by rotation", oldWrite, oldRead},
		{"wrong scope", readTok, writeTok},
		{"right scope", writeTok, readTok},
	}
	type class struct {
		name   string
		method string
		url    func(k kind) (string, string) // url, token
		want   []int                         // by kind
		code   []string
	}
	classes := []class{
		{"gateway API", "POST", func(k kind) (string, string) { return gw.api + "/v1/commands", k.gw },
			[]int{401, 401, 401, 403, 200}, []string{"unauthorized", "unauthorized", "unauthorized", "forbidden", ""}},
		{"query API", "GET", func(k kind) (string, string) { return q.api + "/v1/accounts/a", k.q },
			[]int{401, 401, 401, 403, 200}, []string{"unauthorized", "unauthorized", "unauthorized", "forbidden", ""}},
		{"query API's OpenAPI document (public)", "GET", func(k kind) (string, string) { return q.api + "/openapi.json", k.q },
			[]int{200, 200, 200, 200, 200}, nil},
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		classes = append(classes,
			class{"gateway API listener " + path, "GET", func(k kind) (string, string) { return gw.api + path, k.gw },
				[]int{404, 404, 404, 404, 404}, []string{"not_found", "not_found", "not_found", "not_found", "not_found"}},
			class{"query API listener " + path, "GET", func(k kind) (string, string) { return q.api + path, k.q },
				[]int{404, 404, 404, 404, 404}, []string{"not_found", "not_found", "not_found", "not_found", "not_found"}},
			class{"admin listener " + path, "GET", func(k kind) (string, string) { return gw.admin + path, k.gw },
				[]int{200, 200, 200, 200, 200}, nil},
		)
	}
	denied := 0
	for _, c := range classes {
		for i, k := range kinds {
			url, tok := c.url(k)
			a := call(t, nil, c.method, url, tok)
			if a.status != c.want[i] {
				t.Errorf("%s, %s token: %d %v, want %d", c.name, k.name, a.status, a.body, c.want[i])
				continue
			}
			if a.status != 200 {
				denied++
			}
			if c.code != nil && c.code[i] != "" && a.body["error"] != c.code[i] {
				t.Errorf("%s, %s token: error %v, want %q", c.name, k.name, a.body["error"], c.code[i])
			}
			if a.status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s, %s token: 401 without WWW-Authenticate: Bearer (%q)", c.name, k.name, a.header.Get("WWW-Authenticate"))
			}
			if a.status >= 400 && a.body["message"] == nil {
				t.Errorf("%s, %s token: %d without the error body shape: %v", c.name, k.name, a.status, a.body)
			}
		}
	}
	if denied != 38 {
		t.Errorf("%d denied cases, want 38", denied)
	}

	// The refusals are counted by reason and token name.
	resp, err := http.Get(gw.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`ledger_http_refused_total{reason="unauthorized",token=""} 3`,
		`ledger_http_refused_total{reason="forbidden",token="dash"} 1`,
		`ledger_http_tokens{scope="write"} 1`,
		`ledger_http_token_reloads_total{result="ok"} 1`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("gateway /metrics lacks %s", want)
		}
	}
	for _, s := range []*svc{gw, q} {
		assertNoTokens(t, s.logs.String())
	}
}

// assertNoTokens fails if a log holds any of the tests' tokens.
func assertNoTokens(t *testing.T, logs string) {
	t.Helper()
	for _, tok := range allTokens {
		if strings.Contains(logs, tok) {
			t.Errorf("a token is in the logs:\n%s", logs)
		}
	}
}

// TestTokensNeverLogged: requests with a bad and a good token, a wrong
// scope, a reload that fails on a malformed line and one that fails on the
// file's mode, logged at debug level: the names are there, no token is.
func TestTokensNeverLogged(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "ingest:write:"+writeTok, "dash:read:"+readTok)
	s := start(t, "logs", httpConfig(t, config.ScopeWrite, "-http-tokens-file", file), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	for _, tok := range []string{unknownTok, writeTok, readTok, ""} {
		call(t, nil, "POST", s.api+"/v1/commands", tok)
	}
	// A line with the token in the wrong field, and one with two tokens.
	writeTokens(t, file, "ingest:write:"+writeTok, oldWrite+":write", "x:read:"+oldRead+" "+unknownTok)
	if err := s.auth.Reload(); err == nil {
		t.Fatal("a malformed tokens file was loaded")
	} else {
		assertNoTokens(t, err.Error())
	}
	writeTokens(t, file, "ingest:write:"+writeTok, "old:read:"+oldRead)
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.auth.Reload(); err == nil {
		t.Fatal("a tokens file of mode 0644 was loaded")
	}
	logs := s.logs.String()
	for _, want := range []string{`"token":"dash"`, `"reason":"forbidden"`, `"reason":"unauthorized"`, "API tokens not reloaded", "line 2", "line 3", "0644"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	assertNoTokens(t, logs)
}

// TestConstantTimeComparison: a lookup compares the presented token's
// digest with every configured digest, the same number of times whether
// it matches the first, the last or none, always through
// subtle.ConstantTimeCompare on 32-byte digests.
func TestConstantTimeComparison(t *testing.T) {
	var calls int
	constantTimeCompare = func(x, y []byte) int {
		calls++
		if len(x) != 32 || len(y) != 32 {
			t.Errorf("compared %d and %d bytes, want two SHA-256 digests", len(x), len(y))
		}
		return defaultCompare(x, y)
	}
	defer func() { constantTimeCompare = defaultCompare }()
	a, err := NewAuth(httpConfig(t, config.ScopeWrite, "-http-tokens",
		"a:write:"+writeTok+",b:read:"+readTok+",c:write:"+oldWrite+",d:read:"+oldRead), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		token, want string
	}{{writeTok, "a"}, {oldRead, "d"}, {oldWrite, "c"}, {unknownTok, ""}, {"", ""}, {writeTok + "x", ""}} {
		calls = 0
		p := a.table.Load().lookup(c.token)
		got := ""
		if p != nil {
			got = p.name
		}
		if got != c.want || calls != 4 {
			t.Errorf("lookup: token %q, %d comparisons; want %q, 4", got, calls, c.want)
		}
	}
}

var defaultCompare = constantTimeCompare

// TestTokensFileModeRefused: a tokens file group or others may read or
// write is refused at start, with the fix in the message; 0600 and 0400
// are fine.
func TestTokensFileModeRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o644, false}, {0o640, false}, {0o604, false}, {0o620, false}, {0o600, true}, {0o400, true}} {
		writeTokens(t, file, "ingest:write:"+writeTok)
		if err := os.Chmod(file, c.mode); err != nil {
			t.Fatal(err)
		}
		cfg := httpConfig(t, config.ScopeWrite, "-http-tokens-file", file)
		_, err := NewAuth(cfg, slog.New(slog.DiscardHandler), nil)
		verr := cfg.Validate()
		if c.ok != (err == nil) || c.ok != (verr == nil) {
			t.Errorf("mode %04o: NewAuth %v, Validate %v; want ok=%v", c.mode, err, verr, c.ok)
			continue
		}
		if !c.ok && (!strings.Contains(err.Error(), fmt.Sprintf("mode %04o", c.mode)) || !strings.Contains(err.Error(), "chmod 600")) {
			t.Errorf("mode %04o: %v; want the mode and the fix named", c.mode, err)
		}
	}
	// Unreadable (missing) and malformed files are refused too.
	missing := httpConfig(t, config.ScopeWrite, "-http-tokens-file", file+".missing")
	if _, err := NewAuth(missing, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	writeTokens(t, file, "ingest:write:"+writeTok, "ingest:admin:"+readTok)
	if _, err := NewAuth(httpConfig(t, config.ScopeWrite, "-http-tokens-file", file), slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed file: %v", err)
	}
}

// TestRateLimitPerToken: over its rate a token gets 429 with Retry-After
// (whole seconds, ≥ 1) and the error body; another token is not affected.
func TestRateLimitPerToken(t *testing.T) {
	s := start(t, "rate", httpConfig(t, config.ScopeRead,
		"-http-tokens", "a:read:"+readTok+",b:read:"+oldRead,
		"-http-rate-per-token", "0.2", "-http-burst-per-token", "2"), func(s *Service) {
		s.Handle("/v1/", config.ScopeRead, ok)
	})
	for i := range 2 {
		if a := call(t, nil, "GET", s.api+"/v1/x", readTok); a.status != 200 {
			t.Fatalf("request %d within the burst: %d %v", i+1, a.status, a.body)
		}
	}
	a := call(t, nil, "GET", s.api+"/v1/x", readTok)
	if a.status != 429 || a.body["error"] != "rate_limited" {
		t.Fatalf("over the rate: %d %v", a.status, a.body)
	}
	if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 || n > 5 {
		t.Errorf("Retry-After %q: want whole seconds, 1..5 at 0.2/s", a.header.Get("Retry-After"))
	}
	if a := call(t, nil, "GET", s.api+"/v1/x", oldRead); a.status != 200 {
		t.Errorf("another token: %d", a.status)
	}
	resp, err := http.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `ledger_http_refused_total{reason="rate_limited",token="a"} 1`; !strings.Contains(string(raw), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestConcurrencyLimitPerToken: a token with its limit of requests in
// flight gets 429 with Retry-After: 1 for one more; another token, and the
// same token once one finished, pass.
func TestConcurrencyLimitPerToken(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("block") != "" {
			entered.Done()
			<-release
		}
		WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	s := start(t, "concurrency", httpConfig(t, config.ScopeWrite,
		"-http-tokens", "a:write:"+writeTok+",b:write:"+oldWrite,
		"-http-concurrency-per-token", "2"), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, block)
	})
	results := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest("POST", s.api+"/v1/x?block=1", nil)
			req.Header.Set("Authorization", "Bearer "+writeTok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	entered.Wait()
	a := call(t, nil, "POST", s.api+"/v1/x", writeTok)
	if a.status != 429 || a.body["error"] != "rate_limited" || a.header.Get("Retry-After") != "1" {
		t.Errorf("third request in flight: %d %v Retry-After %q", a.status, a.body, a.header.Get("Retry-After"))
	}
	if a := call(t, nil, "POST", s.api+"/v1/x", oldWrite); a.status != 200 {
		t.Errorf("another token: %d", a.status)
	}
	close(release)
	for range 2 {
		if code := <-results; code != 200 {
			t.Errorf("a blocked request: %d", code)
		}
	}
	if a := call(t, nil, "POST", s.api+"/v1/x", writeTok); a.status != 200 {
		t.Errorf("after the others finished: %d %v", a.status, a.body)
	}
}

// TestNoTokensRefusesEverything: secure by default, no token configured
// means every API request is refused; http-insecure-no-auth serves them all
// and says so loudly.
func TestNoTokensRefusesEverything(t *testing.T) {
	s := start(t, "no-tokens", httpConfig(t, config.ScopeWrite), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	for _, tok := range []string{"", writeTok, "x"} {
		if a := call(t, nil, "POST", s.api+"/v1/commands", tok); a.status != 401 {
			t.Errorf("no tokens configured, token %q: %d", tok, a.status)
		}
	}
	if !strings.Contains(s.logs.String(), "no API bearer tokens configured") {
		t.Errorf("no warning about the missing tokens:\n%s", s.logs)
	}

	in := start(t, "insecure", httpConfig(t, config.ScopeWrite, "-http-insecure-no-auth"), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	if a := call(t, nil, "POST", in.api+"/v1/commands", ""); a.status != 200 {
		t.Errorf("insecure, no token: %d", a.status)
	}
	if !strings.Contains(in.logs.String(), `"level":"WARN","msg":"INSECURE`) {
		t.Errorf("no loud warning:\n%s", in.logs)
	}
	// Both at once is a configuration error.
	cfg := httpConfig(t, config.ScopeWrite, "-http-insecure-no-auth", "-http-tokens", "write:"+writeTok)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Errorf("insecure with tokens: Validate %v", err)
	}
	if _, err := NewAuth(cfg, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Error("insecure with tokens: NewAuth accepted it")
	}
}

// TestReloadKeepsTokensOnError: a tokens file that fails to load (malformed,
// then group-readable) leaves the previous tokens in force; the next good
// file applies; SIGHUP reloads.
func TestReloadKeepsTokensOnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "a:write:"+writeTok)
	s := start(t, "reload", httpConfig(t, config.ScopeWrite, "-http-tokens-file", file), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	writeTokens(t, file, "a:write:"+writeTok, "garbage")
	s.auth.CheckFile()
	if a := call(t, nil, "POST", s.api+"/v1/x", writeTok); a.status != 200 {
		t.Errorf("after a malformed file: %d", a.status)
	}
	writeTokens(t, file, "b:write:"+oldWrite)
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	s.auth.CheckFile()
	if a := call(t, nil, "POST", s.api+"/v1/x", writeTok); a.status != 200 {
		t.Errorf("after a group-readable file: %d", a.status)
	}
	if a := call(t, nil, "POST", s.api+"/v1/x", oldWrite); a.status != 401 {
		t.Errorf("a token of the refused file: %d", a.status)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	s.auth.CheckFile()
	if a := call(t, nil, "POST", s.api+"/v1/x", oldWrite); a.status != 200 {
		t.Errorf("the file, fixed: %d", a.status)
	}
	if a := call(t, nil, "POST", s.api+"/v1/x", writeTok); a.status != 401 {
		t.Errorf("a token removed from the fixed file: %d", a.status)
	}
}

// TestWatch: Watch re-reads the tokens file on SIGHUP, and when it changes.
func TestWatch(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "a:write:"+writeTok)
	a, err := NewAuth(httpConfig(t, config.ScopeWrite, "-http-tokens-file", file), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	has := func(tok string) bool { return a.table.Load().lookup(tok) != nil }
	watch := func(interval time.Duration) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Watch(ctx, interval) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Watch: %v", err)
			}
		}
	}

	// SIGHUP, the file unchanged as far as its state goes (the state is
	// recorded as read, and the ticker is an hour): only the signal can
	// make Watch read it. The test catches SIGHUP too, so that it never
	// ends the test binary, whether or not Watch has registered yet.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	writeTokens(t, file, "b:write:"+oldWrite)
	a.mu.Lock()
	a.file = statFile(file)
	a.mu.Unlock()
	stop := watch(time.Hour)
	for deadline := time.Now().Add(10 * time.Second); !has(oldWrite); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the tokens")
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if has(writeTok) {
		t.Error("a token removed from the file is still in force after SIGHUP")
	}
	stop()

	// A change, seen by the periodic look.
	stop = watch(10 * time.Millisecond)
	defer stop()
	writeTokens(t, file, "c:write:"+unknownTok)
	for deadline := time.Now().Add(10 * time.Second); !has(unknownTok); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a changed tokens file was not reloaded")
		}
	}
	if has(oldWrite) {
		t.Error("a token removed from the file is still in force")
	}
}

// TestDeprecatedBearerToken: HTTP_BEARER_TOKEN is a token of the binary's
// own scope, with a warning, and is never logged.
func TestDeprecatedBearerToken(t *testing.T) {
	s := start(t, "bearer", httpConfig(t, config.ScopeRead, "-http-bearer-token", readTok), func(s *Service) {
		s.Handle("/v1/", config.ScopeRead, ok)
	})
	if a := call(t, nil, "GET", s.api+"/v1/x", readTok); a.status != 200 {
		t.Errorf("the deprecated token: %d", a.status)
	}
	if a := call(t, nil, "GET", s.api+"/v1/x", ""); a.status != 401 {
		t.Errorf("no token: %d", a.status)
	}
	if !strings.Contains(s.logs.String(), "http-bearer-token (HTTP_BEARER_TOKEN) is deprecated") {
		t.Errorf("no deprecation warning:\n%s", s.logs)
	}
	assertNoTokens(t, s.logs.String())
}
