package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/loadgen"
)

// TestTokens: each API's token from its own flag, else --token, else the
// first of its scope in the servers' tokens file.
func TestTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# the stack's tokens\nr1:read:read-0123456789abcdef\nw1:write:write-0123456789abcdef\nw2:write:write-fedcba9876543210\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   common
		want loadgen.Tokens
	}{
		{"none", common{}, loadgen.Tokens{}},
		{"one for both", common{token: "t"}, loadgen.Tokens{Write: "t", Read: "t"}},
		{"each its own", common{token: "t", writeToken: "w"}, loadgen.Tokens{Write: "w", Read: "t"}},
		{"file", common{tokensFile: file}, loadgen.Tokens{Write: "write-0123456789abcdef", Read: "read-0123456789abcdef"}},
		{"flag before file", common{tokensFile: file, readToken: "r"}, loadgen.Tokens{Write: "write-0123456789abcdef", Read: "r"}},
	} {
		cl, err := c.in.client(1)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cl.Tokens != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, cl.Tokens, c.want)
		}
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&common{tokensFile: file}).client(1); err == nil {
		t.Error("a tokens file others may read was used")
	}
}
