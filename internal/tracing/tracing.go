// Package tracing builds the OpenTelemetry tracer provider of a binary from
// the standard OTEL_* environment and carries W3C trace context across HTTP.
//
// Tracing is off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT). Off,
// FromEnv returns a nil *Provider whose TracerProvider is nil: every package
// that takes a trace.TracerProvider treats nil as "no tracing" and installs
// no Kafka hooks, starts no span and adds no record header, so the cost of
// tracing when off is one nil check per batch or request.
//
// The only propagation format is W3C Trace Context (the headers traceparent
// and tracestate, on HTTP requests and Kafka records alike). Trace context is
// observability only: nothing trusts it, and a malformed or missing
// traceparent starts a new trace, never an error (see docs/observability.md).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the one propagation format: W3C Trace Context. Baggage is
// not propagated (it would be one more header on every record).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Header names the propagator reads and writes, on HTTP requests and Kafka
// records.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Provider is a binary's tracer provider. A nil *Provider is tracing off;
// its methods are safe to call.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Enabled reports whether the environment (looked up with getenv) asks for
// traces: an OTLP endpoint is set, and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none turns them off.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// FromEnv returns the provider the environment configures, or nil (tracing
// off) when it configures none (see Enabled). The exporter is OTLP over
// HTTP (http/protobuf or http/json); its endpoint, headers, TLS, timeout and
// compression come from the OTEL_EXPORTER_OTLP_* variables, the sampler
// from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default
// parentbased_always_on), the batching from OTEL_BSP_*, and the resource
// from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, with service.name
// defaulting to service. No connection is made until spans are exported.
func FromEnv(ctx context.Context, service string) (*Provider, error) {
	if !Enabled(os.Getenv) {
		return nil, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" && proto != "http/json" {
		return nil, fmt.Errorf("tracing: OTLP protocol %q: only http/protobuf and http/json are built in", proto)
	}
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" {
		return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: only otlp (or none) is built in", e)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // after the default name: OTEL_SERVICE_NAME wins
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	return New(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// New returns a provider with the given options (tests pass an in-memory
// exporter with sdktrace.WithSyncer). The sampler, unless given, comes from
// OTEL_TRACES_SAMPLER as in FromEnv.
func New(opts ...sdktrace.TracerProviderOption) *Provider {
	return &Provider{tp: sdktrace.NewTracerProvider(opts...)}
}

// TracerProvider returns the provider to hand to the packages, nil when p
// is nil (tracing off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.tp
}

// Shutdown flushes the spans not yet exported and stops the exporter; call
// it once, on exit, after the last span has ended. Nil p: nothing to do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// closeTimeout bounds the flush of the last spans on exit.
const closeTimeout = 5 * time.Second

// Close flushes the spans not yet exported, within 5 s, and stops the
// exporter, logging a failure to log: a binary's last act (ops.Service's
// first OnClose, so that it runs after the others). Nil p: nothing to do.
func (p *Provider) Close(log *slog.Logger) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("flushing the last spans", "err", err)
	}
}

// HTTPHandler wraps h in a server span named "<method> <route>" (route is
// the mux pattern without the method, e.g. /v1/commands), continuing the
// trace of the caller's traceparent when it has a valid one. With tp nil it
// returns h unchanged.
func HTTPHandler(tp trace.TracerProvider, method, route string, h http.Handler) http.Handler {
	if tp == nil {
		return h
	}
	tracer := tp.Tracer("github.com/cqrs-ledger/ledger/internal/tracing")
	name := method + " " + route
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
				attribute.String("url.path", r.URL.Path),
			))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
