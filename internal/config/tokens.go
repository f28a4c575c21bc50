package config

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// Scope is what a bearer token may do: a write token submits commands (the
// ingest gateway's /v1/ routes), a read token reads (the query API's /v1/
// routes). A token has exactly one scope.
type Scope string

// The scopes.
const (
	ScopeWrite Scope = "write"
	ScopeRead  Scope = "read"
)

// Token is one configured bearer token. Its secret never leaves through
// String, GoString, LogValue or an error of this package, so a Token may be
// logged; only Secret and Digest reveal it (in full or hashed).
type Token struct {
	Name   string // for logs and metric labels
	Scope  Scope
	secret string
}

// NewToken returns a token; it does not validate (ParseTokens does).
func NewToken(name string, scope Scope, secret string) Token {
	return Token{Name: name, Scope: scope, secret: secret}
}

// Secret is the token as a client sends it after "Bearer ".
func (t Token) Secret() string { return t.secret }

// Digest is the SHA-256 of the secret: what a server keeps and compares.
func (t Token) Digest() [32]byte { return sha256.Sum256([]byte(t.secret)) }

// String names the token without its secret.
func (t Token) String() string { return t.Name + " (" + string(t.Scope) + ")" }

// GoString names the token without its secret (%#v).
func (t Token) GoString() string { return "config.Token{" + t.String() + "}" }

// LogValue names the token without its secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", t.Name), slog.String("scope", string(t.Scope)))
}

// MinTokenLength is the shortest secret accepted: 16 characters of a
// generated token (e.g. `openssl rand -hex 32` gives 64).
const MinTokenLength = 16

var (
	// b64token is RFC 6750's token68 syntax, what may follow "Bearer ".
	b64tokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)
	// A name starts with a letter or digit, so the label "" stays free for
	// requests that named no known token.
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// parseEntry parses "scope:token" or "name:scope:token"; defaultName names
// the first form. Errors never quote the secret.
func parseEntry(entry, defaultName string) (Token, error) {
	parts := strings.Split(entry, ":")
	var t Token
	switch len(parts) {
	case 2:
		t = Token{Name: defaultName, Scope: Scope(parts[0]), secret: parts[1]}
	case 3:
		t = Token{Name: parts[0], Scope: Scope(parts[1]), secret: parts[2]}
		if !tokenNameRE.MatchString(t.Name) {
			// Not quoted: fields in the wrong order could put the secret here.
			return Token{}, errors.New("name: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
	default:
		return Token{}, errors.New(`want "scope:token" or "name:scope:token"`)
	}
	if t.Scope != ScopeRead && t.Scope != ScopeWrite {
		return Token{}, fmt.Errorf("scope %s: want read or write", quoteScope(string(t.Scope)))
	}
	if err := checkSecret(t.secret); err != nil {
		return Token{}, err
	}
	return t, nil
}

// checkSecret checks the token's syntax and length; its error does not
// quote the token.
func checkSecret(s string) error {
	if !b64tokenRE.MatchString(s) {
		return errors.New("token: want only letters, digits and - . _ ~ + / (then = padding), as RFC 6750 allows after \"Bearer \"")
	}
	if len(s) < MinTokenLength {
		return fmt.Errorf("token: %d characters, want at least %d", len(s), MinTokenLength)
	}
	return nil
}

// quoteScope quotes a wrong scope only when it is short: fields in the wrong
// order could put the secret in the scope's place.
func quoteScope(s string) string {
	if len(s) > 8 {
		return fmt.Sprintf("(%d characters)", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// ParseTokens reads a tokens file: one "scope:token" or "name:scope:token"
// per line; blank lines and lines starting with # are skipped, and a # after
// whitespace starts a comment. A token without a name is called
// "<source>-line<N>". Every malformed line is reported, by number, never by
// content.
func ParseTokens(r io.Reader, source string) ([]Token, error) {
	var (
		out  []Token
		errs []error
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "#") {
			errs = append(errs, fmt.Errorf("%s line %d: one entry per line, then only a # comment", source, n))
			continue
		}
		t, err := parseEntry(fields[0], fmt.Sprintf("%s-line%d", source, n))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s line %d: %w", source, n, err))
			continue
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", source, err))
	}
	return out, errors.Join(errs...)
}

// ParseTokenList parses a comma-separated list of "scope:token" or
// "name:scope:token" entries (HTTP_TOKENS); unnamed ones are "env-<N>".
func ParseTokenList(list string) ([]Token, error) {
	var (
		out  []Token
		errs []error
	)
	for i, e := range splitList(list) {
		t, err := parseEntry(e, fmt.Sprintf("env-%d", i+1))
		if err != nil {
			errs = append(errs, fmt.Errorf("http-tokens entry %d: %w", i+1, err))
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// ReadTokensFile reads and parses a tokens file. It refuses a file that is
// not a regular file or that group or others may read or write (mode &
// 0o077), as ssh does with private keys: a token file is a secret.
func ReadTokensFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("http-tokens-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("http-tokens-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("http-tokens-file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("http-tokens-file %s: mode %04o lets group or others read or write it; want 0600 or 0400 (chmod 600 %s)", path, perm, path)
	}
	return ParseTokens(f, "tokens-file")
}

// CheckUnique reports tokens that share a name or a secret (a secret used
// twice would have two names and possibly two scopes).
func CheckUnique(tokens []Token) error {
	var errs []error
	names := map[string]bool{}
	secrets := map[[32]byte]string{}
	for _, t := range tokens {
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("token name %q is used twice", t.Name))
		}
		names[t.Name] = true
		d := t.Digest()
		if other, ok := secrets[d]; ok {
			errs = append(errs, fmt.Errorf("tokens %q and %q are the same secret; give each client its own", other, t.Name))
		}
		secrets[d] = t.Name
	}
	return errors.Join(errs...)
}
