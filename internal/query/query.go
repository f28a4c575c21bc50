// Package query is the read side's HTTP/JSON API: point lookups (accounts,
// recent transactions, transfers, command outcomes) from the Redis views,
// history and analytics from the ClickHouse view. It validates every
// parameter before a store sees it and hands stores only typed, bounded
// values; the stores bind them as query arguments, never as SQL text.
//
// Errors are {"error": code, "message": text}; a bad parameter adds
// "parameter" (its name) and answers 400, an unknown resource 404
// not_found, a store that fails 503 unavailable, and a read-your-writes wait
// that runs out 503 projection_lagging with the version the view has.
package query

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/ops"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// Defaults and bounds of Config and of the parameters.
const (
	DefaultMaxWait      = 10 * time.Second
	DefaultPollInterval = 50 * time.Millisecond
	// DefaultWatchedPollInterval is the poll of a wait that Changes wakes.
	DefaultWatchedPollInterval = 500 * time.Millisecond
	DefaultStoreTimeout        = 10 * time.Second
	// MaxWaitLimit bounds Config.MaxWait: the HTTP server's write timeout
	// (60 s) must outlast the longest wait.
	MaxWaitLimit = 30 * time.Second

	// MaxIDBytes is the domain's bound on ids: nothing longer can exist.
	MaxIDBytes = domain.MaxIDBytes

	DefaultTxLimit      = 20
	MaxTxLimit          = 100
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = projection.MaxLimit
	DefaultTopLimit     = 10
	MaxTopLimit         = 100
	// MaxRange bounds to − from of history, summary and time series.
	MaxRange = 366 * 24 * time.Hour
)

// Config is what a Handler reads from. Every reader is required; the
// Redis sink (or its generation-following Reader) implements the first
// four, projection.View the last two.
type Config struct {
	Accounts     projection.AccountReader
	Transactions projection.TransactionReader
	Transfers    projection.TransferReader
	Outcomes     projection.OutcomeReader
	History      projection.HistoryReader
	Analytics    projection.AnalyticsReader

	// Changes, when set, wakes read-your-writes waits when the account's
	// view changes; they then read it again at once.
	Changes projection.ChangeWatcher
	// MaxWait is the longest ?wait= of read-your-writes (default 10 s, at
	// most MaxWaitLimit); PollInterval how often the view is read again
	// meanwhile, whatever Changes says (default 50 ms; 500 ms with Changes,
	// which only covers lost notifications).
	MaxWait      time.Duration
	PollInterval time.Duration
	// StoreTimeout bounds the store reads of one request (503 unavailable
	// when it passes), on top of a read-your-writes wait. Default 10 s.
	StoreTimeout time.Duration
	Log          *slog.Logger          // default slog.Default()
	Registerer   prometheus.Registerer // request metrics go here; nil for none
}

// Validate reports every problem with c (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Accounts == nil || c.Transactions == nil || c.Transfers == nil || c.Outcomes == nil {
		errs = append(errs, errors.New("query: the account, transaction, transfer and outcome readers are required"))
	}
	if c.History == nil || c.Analytics == nil {
		errs = append(errs, errors.New("query: the history and analytics readers are required"))
	}
	if c.MaxWait < 0 || c.MaxWait > MaxWaitLimit {
		errs = append(errs, errors.New("query: max wait must be between 0 and "+MaxWaitLimit.String()))
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("query: poll interval must be positive"))
	}
	if c.StoreTimeout < 0 {
		errs = append(errs, errors.New("query: store timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Handler serves the query API (the routes of Routes). Safe for concurrent use.
type Handler struct {
	cfg Config
	mux *http.ServeMux
	m   *metrics
}

// route is one endpoint; Routes and the OpenAPI coverage test read the same table.
type route struct {
	pattern string
	serve   func(h *Handler, w http.ResponseWriter, r *http.Request)
}

var routes = []route{
	{"GET /v1/accounts/{id}", (*Handler).account},
	{"GET /v1/accounts/{id}/transactions", (*Handler).transactions},
	{"GET /v1/accounts/{id}/history", (*Handler).history},
	{"GET /v1/accounts/{id}/balance-at", (*Handler).balanceAt},
	{"GET /v1/transfers/{id}", (*Handler).transfer},
	{"GET /v1/commands/{id}", (*Handler).command},
	{"GET /v1/analytics/summary", (*Handler).summary},
	{"GET /v1/analytics/timeseries", (*Handler).timeseries},
	{"GET /v1/analytics/top-accounts", (*Handler).topAccounts},
}

// Routes returns the patterns the handler serves ("GET /v1/accounts/{id}", …).
func Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.pattern
	}
	return out
}

// New returns a handler over the readers of cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
		if cfg.Changes != nil {
			cfg.PollInterval = DefaultWatchedPollInterval
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), m: m}
	for _, rt := range routes {
		serve := rt.serve
		h.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { serve(h, w, r) })
	}
	return h, nil
}

// ServeHTTP serves the query API; anything that is not one of its routes
// gets a JSON 405 (another method than GET/HEAD) or 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ops.WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "the query API answers GET only")
		return
	}
	_, pattern := h.mux.Handler(r)
	if pattern == "" {
		ops.WriteError(w, http.StatusNotFound, CodeNotFound, "no such endpoint")
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(sw, r)
	h.m.requests.WithLabelValues(pattern, strconv.Itoa(sw.status)).Inc()
	h.m.duration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// metrics count requests by route pattern (bounded) and status.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_query_requests_total",
			Help: "Query API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_query_request_seconds",
			Help:    "Time to answer a query API request, by route (read-your-writes waits included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := errors.Join(reg.Register(m.requests), reg.Register(m.duration)); err != nil {
		return nil, fmt.Errorf("query metrics: %w", err)
	}
	return m, nil
}
