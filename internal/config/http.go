package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"time"
)

// HTTP is how a binary serves HTTP: its API listener (ingest, queryapi),
// where every /v1/ route needs a bearer token of the binary's scope, and its
// admin listener (every binary) with /healthz, /readyz and /metrics, which is
// on loopback by default and never on the API listener.
type HTTP struct {
	// Addr is the API listener; empty for a binary without an API (the
	// projector).
	Addr string
	// AdminAddr is the listener of /healthz, /readyz and /metrics.
	AdminAddr string
	// TLSCert and TLSKey are PEM files; when set (both or neither) the API
	// listener speaks TLS 1.2 or later. The admin listener is plain HTTP.
	TLSCert, TLSKey string

	// TokensFile holds one token per line (ParseTokens); it is re-read on
	// SIGHUP and when it changes, so tokens rotate without a restart.
	TokensFile string
	// Tokens is a comma-separated list of the same entries, for quick use.
	Tokens string
	// BearerToken is the deprecated single token of releases before scopes:
	// a token of Scope named "http-bearer-token".
	BearerToken string
	// Scope is the scope of this binary's API (write for ingest, read for
	// queryapi): the scope BearerToken gets.
	Scope Scope
	// InsecureNoAuth serves the API without any token. Without it and
	// without tokens, every API request is refused (401).
	InsecureNoAuth bool

	// RatePerToken is the requests per second one token may make (a token
	// bucket of BurstPerToken); 0 means no rate limit.
	RatePerToken  float64
	BurstPerToken int
	// ConcurrencyPerToken is the requests one token may have in flight; 0
	// means no limit.
	ConcurrencyPerToken int

	ShutdownTimeout time.Duration

	api                 bool   // the binary has an API listener
	adminSet, aliasAddr string // projector: admin-addr and its alias http-addr as given
}

// Defaults of the per-token limits: generous enough for ledgerload, whose
// documented runs offer up to 5,000 commands/s with up to 2,000 in flight on
// one token, yet a bound on what one client can take from the others.
const (
	DefaultRatePerToken        = 5000
	DefaultBurstPerToken       = 10000
	DefaultConcurrencyPerToken = 2048
)

// RegisterFlags declares the flags of a binary with an API: addr and admin
// are the default API and admin listen addresses, scope the scope of its
// API.
func (h *HTTP) RegisterFlags(fs *flag.FlagSet, addr, admin string, scope Scope) {
	h.api, h.Scope = true, scope
	fs.StringVar(&h.Addr, "http-addr", addr, "listen address of the API (HTTP_ADDR)")
	fs.StringVar(&h.AdminAddr, "admin-addr", admin, "listen address of /healthz, /readyz and /metrics; keep it off public networks (ADMIN_ADDR)")
	fs.StringVar(&h.TLSCert, "http-tls-cert", "", "PEM certificate (chain) for TLS on the API listener; with http-tls-key (HTTP_TLS_CERT)")
	fs.StringVar(&h.TLSKey, "http-tls-key", "", "PEM private key for TLS on the API listener (HTTP_TLS_KEY)")
	fs.StringVar(&h.TokensFile, "http-tokens-file", "", "file of API bearer tokens, one [name:]scope:token per line (scope read or write), mode 0600; re-read on SIGHUP and when it changes (HTTP_TOKENS_FILE)")
	fs.StringVar(&h.Tokens, "http-tokens", "", "API bearer tokens, comma-separated [name:]scope:token entries (HTTP_TOKENS)")
	fs.StringVar(&h.BearerToken, "http-bearer-token", "", fmt.Sprintf("deprecated: one API bearer token with this binary's scope (%s); use http-tokens (HTTP_BEARER_TOKEN)", scope))
	fs.BoolVar(&h.InsecureNoAuth, "http-insecure-no-auth", false, "serve the API without tokens (for a trusted network only); without it and without tokens every API request gets 401 (HTTP_INSECURE_NO_AUTH)")
	fs.Float64Var(&h.RatePerToken, "http-rate-per-token", DefaultRatePerToken, "API requests per second per token; 0 = unlimited (HTTP_RATE_PER_TOKEN)")
	fs.IntVar(&h.BurstPerToken, "http-burst-per-token", DefaultBurstPerToken, "API requests a token may make at once above its rate (HTTP_BURST_PER_TOKEN)")
	fs.IntVar(&h.ConcurrencyPerToken, "http-concurrency-per-token", DefaultConcurrencyPerToken, "API requests in flight per token; 0 = unlimited (HTTP_CONCURRENCY_PER_TOKEN)")
	fs.DurationVar(&h.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long to drain on SIGTERM (SHUTDOWN_TIMEOUT)")
}

// RegisterAdminFlags declares the flags of a binary without an API (the
// projector): only the admin listener, whose address http-addr still sets
// as a deprecated alias of admin-addr.
func (h *HTTP) RegisterAdminFlags(fs *flag.FlagSet, admin string) {
	h.api, h.AdminAddr = false, admin
	fs.Func("admin-addr", fmt.Sprintf("listen address of /healthz, /readyz and /metrics (ADMIN_ADDR; default %s)", admin), func(s string) error {
		h.AdminAddr, h.adminSet = s, s
		return nil
	})
	fs.Func("http-addr", "deprecated alias of admin-addr (HTTP_ADDR)", func(s string) error {
		h.aliasAddr = s
		if h.adminSet == "" {
			h.AdminAddr = s
		}
		return nil
	})
	fs.DurationVar(&h.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long to drain on SIGTERM (SHUTDOWN_TIMEOUT)")
}

// HasAPI reports whether the binary serves an API listener.
func (h HTTP) HasAPI() bool { return h.api }

// Validate reports every problem with h, including every problem of the
// tokens (LoadTokens), without quoting a token.
func (h HTTP) Validate() error {
	errs := validateAddrs("admin-addr", []string{h.AdminAddr})
	if h.aliasAddr != "" && h.adminSet != "" && h.aliasAddr != h.adminSet {
		errs = append(errs, fmt.Errorf("http-addr %q (the deprecated alias) and admin-addr %q disagree; set admin-addr only", h.aliasAddr, h.adminSet))
	}
	if h.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout %s: must be positive", h.ShutdownTimeout))
	}
	if !h.api {
		return errors.Join(errs...)
	}
	errs = append(errs, validateAddrs("http-addr", []string{h.Addr})...)
	if _, port, _ := net.SplitHostPort(h.Addr); h.Addr == h.AdminAddr && port != "0" {
		errs = append(errs, fmt.Errorf("http-addr and admin-addr are both %s: the admin endpoints need a listener of their own", h.Addr))
	}
	errs = append(errs, validateTLSFiles("http-tls", "", h.TLSCert, h.TLSKey)...)
	if h.Scope != ScopeRead && h.Scope != ScopeWrite {
		errs = append(errs, fmt.Errorf("the API's scope %q: want read or write", h.Scope))
	}
	if h.RatePerToken < 0 {
		errs = append(errs, fmt.Errorf("http-rate-per-token %g: must not be negative", h.RatePerToken))
	}
	if h.RatePerToken > 0 && h.BurstPerToken < 1 {
		errs = append(errs, fmt.Errorf("http-burst-per-token %d: want at least 1 with a rate", h.BurstPerToken))
	}
	if h.ConcurrencyPerToken < 0 {
		errs = append(errs, fmt.Errorf("http-concurrency-per-token %d: must not be negative", h.ConcurrencyPerToken))
	}
	tokens, err := h.LoadTokens()
	if err != nil {
		errs = append(errs, err)
	}
	if h.InsecureNoAuth && (len(tokens) > 0 || h.TokensFile != "") {
		errs = append(errs, errors.New("http-insecure-no-auth with tokens configured: choose one"))
	}
	return errors.Join(errs...)
}

// LoadTokens reads every configured token: the tokens file, the list and
// the deprecated single token. It refuses malformed entries, a tokens file
// that group or others may read, and a name or a secret used twice.
func (h HTTP) LoadTokens() ([]Token, error) {
	var (
		out  []Token
		errs []error
	)
	if h.TokensFile != "" {
		t, err := ReadTokensFile(h.TokensFile)
		errs = append(errs, err)
		out = append(out, t...)
	}
	t, err := ParseTokenList(h.Tokens)
	errs = append(errs, err)
	out = append(out, t...)
	if h.BearerToken != "" {
		if err := checkSecret(h.BearerToken); err != nil {
			errs = append(errs, fmt.Errorf("http-bearer-token: %w", err))
		} else {
			out = append(out, Token{Name: "http-bearer-token", Scope: h.Scope, secret: h.BearerToken})
		}
	}
	errs = append(errs, CheckUnique(out))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
