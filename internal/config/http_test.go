package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadTokens: the file, the list and the deprecated single token
// together; names and secrets must be unique across them.
func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte("f:read:"+tokA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := HTTP{TokensFile: file, Tokens: "e:write:" + tokB, BearerToken: tokC, Scope: ScopeWrite}
	got, err := h.LoadTokens()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[f (read) e (write) http-bearer-token (write)]" {
		t.Errorf("%v", got)
	}
	h.Tokens = "f:write:" + tokB + ",g:write:" + tokA
	if _, err := h.LoadTokens(); err == nil || !strings.Contains(err.Error(), `name "f" is used twice`) ||
		!strings.Contains(err.Error(), `"f" and "g" are the same secret`) || strings.Contains(err.Error(), tokA) {
		t.Errorf("duplicates: %v", err)
	}
	h = HTTP{BearerToken: "s3cret", Scope: ScopeRead}
	if _, err := h.LoadTokens(); err == nil || !strings.Contains(err.Error(), "http-bearer-token") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a short deprecated token: %v", err)
	}
}

// TestHTTPValidate: every problem at once, for a binary with an API and one
// without.
func TestHTTPValidate(t *testing.T) {
	parse := func(admin bool, args ...string) HTTP {
		t.Helper()
		var h HTTP
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		if admin {
			h.RegisterAdminFlags(fs, "127.0.0.1:9081")
		} else {
			h.RegisterFlags(fs, "127.0.0.1:8080", "127.0.0.1:9080", ScopeWrite)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := parse(false).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := parse(true).Validate(); err != nil {
		t.Errorf("admin defaults: %v", err)
	}
	err := parse(false, "-http-addr", "x", "-admin-addr", "y", "-http-tls-key", "/nonexistent/key.pem",
		"-http-rate-per-token", "-1", "-http-concurrency-per-token", "-1", "-http-tokens", "write:short",
		"-http-tokens-file", "/nonexistent/tokens", "-shutdown-timeout", "0s").Validate()
	for _, want := range []string{`http-addr "x"`, `admin-addr "y"`, "http-tls-key", "http-tls-cert and http-tls-key go together",
		"http-rate-per-token", "http-concurrency-per-token", "http-tokens entry 1", "http-tokens-file", "shutdown-timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if err := parse(false, "-http-addr", "127.0.0.1:9080").Validate(); err == nil || !strings.Contains(err.Error(), "listener of their own") {
		t.Errorf("one address for both: %v", err)
	}
	if err := parse(false, "-http-rate-per-token", "10", "-http-burst-per-token", "0").Validate(); err == nil {
		t.Error("a rate with a burst of 0 is accepted")
	}

	// The projector: http-addr is the deprecated alias of admin-addr.
	if h := parse(true, "-http-addr", "127.0.0.1:7001"); h.AdminAddr != "127.0.0.1:7001" || h.HasAPI() || h.Validate() != nil {
		t.Errorf("alias: %s, %v", h.AdminAddr, h.Validate())
	}
	for _, args := range [][]string{
		{"-admin-addr", "127.0.0.1:7002", "-http-addr", "127.0.0.1:7001"},
		{"-http-addr", "127.0.0.1:7001", "-admin-addr", "127.0.0.1:7002"},
	} {
		h := parse(true, args...)
		if h.AdminAddr != "127.0.0.1:7002" {
			t.Errorf("%v: admin-addr %s, want admin-addr's value", args, h.AdminAddr)
		}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "disagree") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if h := parse(true, "-admin-addr", "127.0.0.1:7002", "-http-addr", "127.0.0.1:7002"); h.Validate() != nil {
		t.Errorf("alias and admin-addr agreeing: %v", h.Validate())
	}
}
