package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const (
	tokA = "aaaaaaaa-0123456789-tokenA"
	tokB = "bbbbbbbb-0123456789-tokenB"
	tokC = "cccccccc-0123456789+/tokC=="
)

func TestParseTokens(t *testing.T) {
	in := strings.Join([]string{
		"# name:scope:token, or scope:token",
		"",
		"ingest-ci:write:" + tokA,
		"   read:" + tokB + "   # dashboards, unnamed",
		"\tx.y_z-1:read:" + tokC,
	}, "\n")
	got, err := ParseTokens(strings.NewReader(in), "tokens-file")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		scope  Scope
		secret string
	}{{"ingest-ci", ScopeWrite, tokA}, {"tokens-file-line4", ScopeRead, tokB}, {"x.y_z-1", ScopeRead, tokC}}
	if len(got) != len(want) {
		t.Fatalf("%d tokens, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Scope != w.scope || got[i].Secret() != w.secret {
			t.Errorf("token %d: %s, want %s (%s)", i, got[i], w.name, w.scope)
		}
	}
}

// TestParseTokensErrors: every malformed line is reported by number, and no
// error quotes a token, whichever field it ended up in.
func TestParseTokensErrors(t *testing.T) {
	lines := []string{
		"write:" + tokA,                           // 1: fine
		"admin:" + tokB,                           // 2: unknown scope
		tokB + ":write",                           // 3: fields swapped: the token is in the scope's place
		tokC + ":write:n",                         // 4: the token in the name's place (and a short token)
		"n:write:short",                           // 5: too short
		"n:write:" + tokA + "!",                   // 6: a character RFC 6750 does not allow
		"write:" + tokA + " " + tokB,              // 7: two entries
		"n:write:" + tokB + ":x",                  // 8: four fields
		"-bad:write:" + tokB,                      // 9: a name must start with a letter or digit
		strings.Repeat("n", 65) + ":read:" + tokB, // 10: name too long
	}
	_, err := ParseTokens(strings.NewReader(strings.Join(lines, "\n")), "tokens-file")
	if err == nil {
		t.Fatal("no error")
	}
	for n := 2; n <= 10; n++ {
		if !strings.Contains(err.Error(), fmt.Sprintf("line %d:", n)) {
			t.Errorf("line %d not reported: %v", n, err)
		}
	}
	if strings.Contains(err.Error(), "line 1:") {
		t.Errorf("line 1 reported: %v", err)
	}
	for _, tok := range []string{tokA, tokB, tokC} {
		if strings.Contains(err.Error(), tok) {
			t.Errorf("the error quotes a token: %v", err)
		}
	}
}

func TestParseTokenList(t *testing.T) {
	got, err := ParseTokenList(" write:" + tokA + ", ci:read:" + tokB + ",")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "env-1" || got[0].Scope != ScopeWrite || got[1].Name != "ci" || got[1].Secret() != tokB {
		t.Fatalf("%v", got)
	}
	if _, err := ParseTokenList("write:" + tokA + ",nope"); err == nil || !strings.Contains(err.Error(), "entry 2") || strings.Contains(err.Error(), tokA) {
		t.Errorf("bad list: %v", err)
	}
}

// TestTokenNeverPrinted: fmt and slog show a token's name and scope only.
func TestTokenNeverPrinted(t *testing.T) {
	tok := NewToken("ci", ScopeWrite, tokA)
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("t", "token", tok, "tokens", []Token{tok})
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), fmt.Sprint([]Token{tok}), b.String()} {
		if strings.Contains(s, tokA) || !strings.Contains(s, "ci") {
			t.Errorf("printed as %s", s)
		}
	}
}
