// Package ops is every binary's HTTP plumbing and what it serves besides its
// API: the admin listener with /healthz, /readyz and Prometheus /metrics; the
// API listener (optionally TLS) whose routes need a bearer token of the
// route's scope within per-token limits (Auth); servers with timeouts that
// drain on SIGTERM; and the structured logger.
package ops

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// NewLogger returns a JSON logger on stderr tagged with the service name.
// level is debug, info, warn or error.
func NewLogger(service, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("service", service), nil
}

// NewRegistry returns a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check is one readiness condition; nil means ready.
type Check func(ctx context.Context) error

// Readiness is the set of named checks behind /readyz. Safe for concurrent use.
type Readiness struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// Add registers (or replaces) a named check.
func (r *Readiness) Add(name string, c Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]Check{}
	}
	r.checks[name] = c
}

// Check runs every check and returns the failures by name.
func (r *Readiness) Check(ctx context.Context) map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	failed := map[string]string{}
	for name, c := range r.checks {
		if err := c(ctx); err != nil {
			failed[name] = err.Error()
		}
	}
	return failed
}

// AdminMux returns the admin listener's mux: /healthz (the process
// serves), /readyz (every check passes, else 503 with the failures) and
// /metrics.
func AdminMux(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if failed := ready.Check(ctx); len(failed) > 0 {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "failed": failed})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// WriteJSON writes v as the JSON body with the status code.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the API's error shape: {"error": code, "message": msg}.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, map[string]string{"error": code, "message": msg})
}

// listener is one HTTP server with its socket.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	tls  bool
}

// listen opens addr for h; with tlsCfg the server speaks TLS. Timeouts keep
// slow clients from holding connections.
func listen(name, addr string, h http.Handler, tlsCfg *tls.Config, log *slog.Logger) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	return &listener{name: name, ln: ln, tls: tlsCfg != nil, srv: &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // covers ?wait= up to 30 s
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.With("listener", name).Handler(), slog.LevelWarn),
	}}, nil
}

func (l *listener) serve() error {
	if l.tls {
		return l.srv.ServeTLS(l.ln, "", "") // certificates are in TLSConfig
	}
	return l.srv.Serve(l.ln)
}

// serverTLS is the API listener's TLS configuration, nil without a
// certificate.
func serverTLS(cfg config.HTTP) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("http-tls-cert/http-tls-key: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// testHookListening, when set (by tests), learns each listener's address.
var testHookListening func(service, listener, addr string)

// serve runs the listeners until ctx is done or one fails, then drains all
// of them at once for up to timeout.
func serve(ctx context.Context, service string, ls []*listener, timeout time.Duration, log *slog.Logger) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- fmt.Errorf("%s listener: %w", l.name, l.serve()) }()
		scheme := "http"
		if l.tls {
			scheme = "https"
		}
		log.Info("http server listening", "listener", l.name, "addr", l.ln.Addr().String(), "scheme", scheme)
		if testHookListening != nil {
			testHookListening(service, l.name, l.ln.Addr().String())
		}
	}
	pending := len(ls)
	var errs []error
	select {
	case err := <-errc: // before Shutdown, Serve returns only on a failure
		pending--
		errs = append(errs, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log.Info("http servers draining", "timeout", timeout.String())
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, l := range ls {
		wg.Go(func() {
			if err := l.srv.Shutdown(sctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s listener shutdown: %w", l.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for range pending {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Service is a running binary's shared plumbing, handed to its setup function.
type Service struct {
	Name     string
	Log      *slog.Logger
	Registry *prometheus.Registry
	Ready    *Readiness
	// Auth guards the API routes; nil in a binary without an API.
	Auth *Auth

	api     *http.ServeMux
	routes  int
	closers []func()
	workers []worker
}

type worker struct {
	name string
	run  func(ctx context.Context) error
}

// Handle serves h at pattern on the API listener, for tokens of scope
// only (Auth.Require).
func (s *Service) Handle(pattern string, scope config.Scope, h http.Handler) {
	if s.Auth == nil {
		panic("ops: an API route in a binary without an API listener: " + pattern)
	}
	s.HandlePublic(pattern, s.Auth.Require(scope, h))
}

// HandlePublic serves h at pattern on the API listener without a token:
// for what is public anyway (the OpenAPI document).
func (s *Service) HandlePublic(pattern string, h http.Handler) {
	if s.api == nil {
		panic("ops: an API route in a binary without an API listener: " + pattern)
	}
	s.api.Handle(pattern, h)
	s.routes++
}

// OnClose registers f to run at shutdown, after the HTTP servers drained and
// the workers returned, in reverse order of registration.
func (s *Service) OnClose(f func()) { s.closers = append(s.closers, f) }

// Go registers a background worker that runs until its context is done. A
// worker that returns an error before shutdown stops the whole service, which
// then exits with that error (a supervisor restarts it).
func (s *Service) Go(name string, run func(ctx context.Context) error) {
	s.workers = append(s.workers, worker{name, run})
}

// RunService builds the admin endpoints and, when cfg has an API, the API
// listener's auth; lets setup wire the binary; runs the workers; and serves
// the admin listener (cfg.AdminAddr) and, if setup added API routes, the API
// listener (cfg.Addr) until ctx is done (SIGTERM) or a worker or listener
// fails. Then it drains both listeners, waits for the workers, and runs the
// closers. /healthz, /readyz and /metrics are on the admin listener only;
// the API listener answers every other path with a JSON 404.
func RunService(ctx context.Context, name string, cfg config.HTTP, log *slog.Logger, setup func(*Service) error) (err error) {
	s := &Service{Name: name, Log: log, Registry: NewRegistry(), Ready: &Readiness{}}
	defer func() {
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i]()
		}
		if err != nil {
			log.Error("stopped", "err", err)
		} else {
			log.Info("stopped")
		}
	}()
	var tlsCfg *tls.Config
	if cfg.HasAPI() {
		if s.Auth, err = NewAuth(cfg, log, s.Registry); err != nil {
			return err
		}
		if tlsCfg, err = serverTLS(cfg); err != nil {
			return err
		}
		s.api = http.NewServeMux()
	}
	if err := setup(s); err != nil {
		return err
	}
	admin, err := listen("admin", cfg.AdminAddr, AdminMux(s.Registry, s.Ready), nil, log)
	if err != nil {
		return err
	}
	ls := []*listener{admin}
	if s.routes > 0 {
		s.api.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
		}))
		api, err := listen("api", cfg.Addr, s.api, tlsCfg, log)
		if err != nil {
			_ = admin.ln.Close()
			return err
		}
		ls = append(ls, api)
		if cfg.TokensFile != "" {
			s.Go("api-tokens", func(ctx context.Context) error { return s.Auth.Watch(ctx, TokensCheckInterval) })
		}
	} else if cfg.HasAPI() {
		log.Info("no API routes (roles off): the API listener is not opened", "addr", cfg.Addr)
	}
	log.Info("starting")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make(chan error, len(s.workers))
	for _, w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if werr := w.run(ctx); werr != nil && ctx.Err() == nil {
				werr = fmt.Errorf("%s: %w", w.name, werr)
				errs <- werr
				cancel(werr)
			}
		}()
	}
	serveErr := serve(ctx, name, ls, cfg.ShutdownTimeout, log)
	cancel(nil)
	wg.Wait()
	select {
	case werr := <-errs:
		return werr
	default:
	}
	return serveErr
}
