// Package ops is what every binary serves besides its API: /healthz,
// /readyz and Prometheus /metrics, an HTTP server with timeouts that drains on
// SIGTERM, bearer-token auth for API routes, and the structured logger.
package ops

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
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

// Mux returns a mux with /healthz (the process serves), /readyz (every check
// passes, else 503 with the failures) and /metrics. API routes are added by
// the caller.
func Mux(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
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

// BearerAuth guards next with "Authorization: Bearer <token>"; an empty
// token disables the check.
func BearerAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ledger"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve runs an HTTP server on cfg.Addr until ctx is done, then drains for
// up to cfg.ShutdownTimeout. Timeouts keep slow clients from holding
// connections.
func Serve(ctx context.Context, cfg config.HTTP, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // covers ?wait= up to 30 s
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	log.Info("http server draining", "timeout", cfg.ShutdownTimeout.String())
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Service is a running binary's shared plumbing, handed to its setup function.
type Service struct {
	Name     string
	Log      *slog.Logger
	Registry *prometheus.Registry
	Ready    *Readiness
	Mux      *http.ServeMux // add API routes here
	closers  []func()
	workers  []worker
}

type worker struct {
	name string
	run  func(ctx context.Context) error
}

// OnClose registers f to run at shutdown, after the HTTP server drained and
// the workers returned, in reverse order of registration.
func (s *Service) OnClose(f func()) { s.closers = append(s.closers, f) }

// Go registers a background worker that runs until its context is done. A
// worker that returns an error before shutdown stops the whole service, which
// then exits with that error (a supervisor restarts it).
func (s *Service) Go(name string, run func(ctx context.Context) error) {
	s.workers = append(s.workers, worker{name, run})
}

// RunService builds the ops endpoints, lets setup wire the binary, runs the
// workers and serves HTTP until ctx is done (SIGTERM) or a worker fails,
// then drains HTTP, waits for the workers, and runs the closers.
func RunService(ctx context.Context, name string, cfg config.HTTP, log *slog.Logger, setup func(*Service) error) (err error) {
	s := &Service{Name: name, Log: log, Registry: NewRegistry(), Ready: &Readiness{}}
	s.Mux = Mux(s.Registry, s.Ready)
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
	if err := setup(s); err != nil {
		return err
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
	serveErr := Serve(ctx, cfg, s.Mux, log)
	cancel(nil)
	wg.Wait()
	select {
	case werr := <-errs:
		return werr
	default:
	}
	return serveErr
}
