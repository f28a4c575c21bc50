package ops

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// Reasons a request is refused, the label of ledger_http_refused_total and
// the error code of the answer.
const (
	ReasonUnauthorized = "unauthorized" // 401: no bearer token, or not a configured one
	ReasonForbidden    = "forbidden"    // 403: a token of the other scope
	ReasonRateLimited  = "rate_limited" // 429: over the token's rate or concurrency
)

// TokensCheckInterval is how often RunService's Watch looks whether the
// tokens file changed (its modification time, size, mode or inode); a
// variable for tests.
var TokensCheckInterval = 2 * time.Second

// constantTimeCompare is subtle.ConstantTimeCompare; a variable so that a
// test can count the comparisons.
var constantTimeCompare = subtle.ConstantTimeCompare

// Auth guards the API routes: every request names a configured bearer
// token (compared in constant time, as SHA-256 digests, against every
// token), of the route's scope, within the token's request rate and
// concurrency. A token is known by its name in logs and metrics, never by
// itself: Auth keeps only digests. The tokens file is re-read by Reload
// (SIGHUP and changes, see Watch); a file that fails to load leaves the
// previous tokens in force. Safe for concurrent use.
type Auth struct {
	cfg      config.HTTP
	log      *slog.Logger
	insecure *principal // every request's principal with http-insecure-no-auth

	table atomic.Pointer[tokenTable]

	mu   sync.Mutex // serialises Reload and the file's last state
	file fileState

	refused *prometheus.CounterVec
	tokens  *prometheus.GaugeVec
	reloads *prometheus.CounterVec
}

// tokenTable is one generation of the configured tokens; immutable.
type tokenTable struct {
	principals []*principal
}

// principal is one token as the server knows it.
type principal struct {
	name   string
	scope  config.Scope
	digest [32]byte
	*limits
}

// limits is a token's rate and concurrency state; it survives a reload that
// keeps the token.
type limits struct {
	rate     *rate.Limiter // nil: no rate limit
	inFlight atomic.Int64
}

// fileState is what changes when the tokens file is edited or replaced.
type fileState struct {
	info os.FileInfo
	err  string
}

func (a fileState) same(b fileState) bool {
	if a.err != "" || b.err != "" || a.info == nil || b.info == nil {
		return a.err == b.err && (a.info == nil) == (b.info == nil)
	}
	return os.SameFile(a.info, b.info) && a.info.ModTime().Equal(b.info.ModTime()) &&
		a.info.Size() == b.info.Size() && a.info.Mode() == b.info.Mode()
}

func statFile(path string) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{err: err.Error()}
	}
	return fileState{info: fi}
}

// NewAuth loads the tokens of cfg (refusing every problem that
// cfg.Validate reports) and registers its metrics on reg.
func NewAuth(cfg config.HTTP, log *slog.Logger, reg prometheus.Registerer) (*Auth, error) {
	a := &Auth{
		cfg: cfg, log: log,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_http_refused_total",
			Help: "API requests refused before the handler, by reason (unauthorized, forbidden, rate_limited) and token name (empty: no known token).",
		}, []string{"reason", "token"}),
		tokens: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_http_tokens",
			Help: "API bearer tokens in force, by scope.",
		}, []string{"scope"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_http_token_reloads_total",
			Help: "Reloads of the tokens file, by result (ok; error: the previous tokens stay in force).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{a.refused, a.tokens, a.reloads} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	if cfg.InsecureNoAuth {
		if cfg.TokensFile != "" || cfg.Tokens != "" || cfg.BearerToken != "" {
			return nil, fmt.Errorf("http-insecure-no-auth with tokens configured: choose one")
		}
		a.insecure = &principal{name: "anonymous", limits: a.newLimits()}
		a.table.Store(&tokenTable{})
		log.Warn("INSECURE: the API serves every request without a bearer token (http-insecure-no-auth); " +
			"anyone who reaches the API listener can use it. Configure http-tokens-file or http-tokens instead")
		return a, nil
	}
	if cfg.TokensFile != "" {
		a.file = statFile(cfg.TokensFile)
	}
	tokens, err := cfg.LoadTokens()
	if err != nil {
		return nil, fmt.Errorf("API tokens:\n%w", err)
	}
	a.install(tokens)
	if cfg.BearerToken != "" {
		log.Warn("http-bearer-token (HTTP_BEARER_TOKEN) is deprecated: it is a token of this API's scope (" + string(cfg.Scope) +
			") named http-bearer-token; use http-tokens-file or http-tokens")
	}
	return a, nil
}

func (a *Auth) newLimits() *limits {
	l := &limits{}
	if a.cfg.RatePerToken > 0 {
		l.rate = rate.NewLimiter(rate.Limit(a.cfg.RatePerToken), a.cfg.BurstPerToken)
	}
	return l
}

// install makes tokens the ones in force, keeping the limits of tokens that
// stay. The caller holds a.mu, or is NewAuth.
func (a *Auth) install(tokens []config.Token) {
	old := map[[32]byte]*limits{}
	if t := a.table.Load(); t != nil {
		for _, p := range t.principals {
			old[p.digest] = p.limits
		}
	}
	next := &tokenTable{principals: make([]*principal, 0, len(tokens))}
	names := make([]string, 0, len(tokens))
	count := map[config.Scope]float64{config.ScopeRead: 0, config.ScopeWrite: 0}
	for _, t := range tokens {
		p := &principal{name: t.Name, scope: t.Scope, digest: t.Digest()}
		if p.limits = old[p.digest]; p.limits == nil {
			p.limits = a.newLimits()
		}
		next.principals = append(next.principals, p)
		names = append(names, t.String())
		count[t.Scope]++
	}
	a.table.Store(next)
	for s, n := range count {
		a.tokens.WithLabelValues(string(s)).Set(n)
	}
	if len(tokens) == 0 {
		a.log.Warn("no API bearer tokens configured: every API request is refused with 401; " +
			"configure http-tokens-file or http-tokens (or http-insecure-no-auth on a trusted network)")
		return
	}
	a.log.Info("API bearer tokens in force", "tokens", names)
}

// Reload reads the tokens again. On an error (an unreadable or malformed
// file, or one others may read) the previous tokens stay in force and the
// error is logged and returned.
func (a *Auth) Reload() error {
	if a.insecure != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.TokensFile != "" {
		a.file = statFile(a.cfg.TokensFile)
	}
	tokens, err := a.cfg.LoadTokens()
	if err != nil {
		a.reloads.WithLabelValues("error").Inc()
		a.log.Error("API tokens not reloaded; the previous tokens stay in force", "err", err)
		return err
	}
	a.reloads.WithLabelValues("ok").Inc()
	a.install(tokens)
	return nil
}

// CheckFile reloads the tokens if the tokens file changed since it was last
// read, and reports whether it did.
func (a *Auth) CheckFile() bool {
	if a.cfg.TokensFile == "" || a.insecure != nil {
		return false
	}
	a.mu.Lock()
	changed := !statFile(a.cfg.TokensFile).same(a.file)
	a.mu.Unlock()
	if changed {
		_ = a.Reload()
	}
	return changed
}

// Watch reloads the tokens on SIGHUP and when the tokens file changes
// (looked at every interval) until ctx is done. Without a tokens file it
// returns at once.
func (a *Auth) Watch(ctx context.Context, interval time.Duration) error {
	if a.cfg.TokensFile == "" || a.insecure != nil {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			a.log.Info("SIGHUP: reloading the API tokens")
			_ = a.Reload()
		case <-t.C:
			a.CheckFile()
		}
	}
}

// lookup returns the principal whose token is presented, or nil. It
// compares the presented token's digest with every configured digest, all
// of them, with no early exit, in constant time.
func (t *tokenTable) lookup(presented string) *principal {
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i, p := range t.principals {
		eq := constantTimeCompare(d[:], p.digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	return t.principals[match]
}

// bearer returns the token of an "Authorization: Bearer <token>" header
// (the scheme is case-insensitive, RFC 7235), or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

// Require guards next: only requests with a token of scope pass, within
// the token's limits. Refusals are 401 (with WWW-Authenticate: Bearer), 403
// or 429 (with Retry-After), each with the API's error body.
func (a *Auth) Require(scope config.Scope, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := a.insecure
		if p == nil {
			tok := bearer(r)
			if tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ledger"`)
				a.refuse(w, r, http.StatusUnauthorized, ReasonUnauthorized, "", "a bearer token is required (Authorization: Bearer <token>)")
				return
			}
			if p = a.table.Load().lookup(tok); p == nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ledger", error="invalid_token"`)
				a.refuse(w, r, http.StatusUnauthorized, ReasonUnauthorized, "", "unknown or revoked bearer token")
				return
			}
			if p.scope != scope {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="ledger", error="insufficient_scope", scope=%q`, scope))
				a.refuse(w, r, http.StatusForbidden, ReasonForbidden, p.name,
					fmt.Sprintf("token %q has scope %s; this API needs %s", p.name, p.scope, scope))
				return
			}
		}
		if p.rate != nil {
			res := p.rate.Reserve()
			if d := res.Delay(); !res.OK() || d > 0 {
				res.Cancel()
				w.Header().Set("Retry-After", strconv.Itoa(retryAfter(d)))
				a.refuse(w, r, http.StatusTooManyRequests, ReasonRateLimited, p.name,
					fmt.Sprintf("token %q is over its rate of %g requests/s", p.name, a.cfg.RatePerToken))
				return
			}
		}
		if limit := int64(a.cfg.ConcurrencyPerToken); limit > 0 {
			if p.inFlight.Add(1) > limit {
				p.inFlight.Add(-1)
				w.Header().Set("Retry-After", "1")
				a.refuse(w, r, http.StatusTooManyRequests, ReasonRateLimited, p.name,
					fmt.Sprintf("token %q has %d requests in flight, its limit", p.name, limit))
				return
			}
			defer p.inFlight.Add(-1)
		}
		next.ServeHTTP(w, r)
	})
}

// retryAfter is d in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) int {
	if d == rate.InfDuration {
		return 1
	}
	return max(1, int(math.Ceil(d.Seconds())))
}

// refuse answers a refused request, counts it, and logs it by the token's
// name (never the token): a wrong scope at warn level (a client configured
// with the wrong token), the rest at debug level (they can come in floods;
// the counter has them).
func (a *Auth) refuse(w http.ResponseWriter, r *http.Request, status int, reason, token, msg string) {
	a.refused.WithLabelValues(reason, token).Inc()
	level := slog.LevelDebug
	if reason == ReasonForbidden {
		level = slog.LevelWarn
	}
	a.log.Log(r.Context(), level, "API request refused", "reason", reason, "token", token,
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	WriteError(w, status, reason, msg)
}
