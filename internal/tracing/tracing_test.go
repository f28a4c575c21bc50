package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/tracing"
)

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"generic endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{"only a service name", map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := tracing.Enabled(func(k string) string { return c.env[k] }); got != c.want {
				t.Errorf("Enabled = %v, want %v", got, c.want)
			}
		})
	}
}

// TestFromEnvOff: without an endpoint there is no provider, and its
// methods are safe on nil.
func TestFromEnvOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	p, err := tracing.FromEnv(context.Background(), "test")
	if err != nil || p != nil {
		t.Fatalf("FromEnv = %v, %v; want nil, nil", p, err)
	}
	if p.TracerProvider() != nil {
		t.Error("a nil provider's TracerProvider is not nil")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	h := http.NotFoundHandler()
	if got := tracing.HTTPHandler(nil, "POST", "/x", h); got == nil {
		t.Error("HTTPHandler(nil) returned nil")
	}
}

func TestFromEnvRefusesGRPC(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	if _, err := tracing.FromEnv(context.Background(), "test"); err == nil || !strings.Contains(err.Error(), "grpc") {
		t.Fatalf("err = %v, want the protocol refused", err)
	}
}

// TestFromEnvExports: configured by the environment, spans reach the
// collector over OTLP/HTTP when the provider shuts down (the flush on exit),
// with the service name from OTEL_SERVICE_NAME.
func TestFromEnvExports(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	var body []byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		body = append(body, b...)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "ingest-test-name")
	p, err := tracing.FromEnv(context.Background(), "ingest")
	if err != nil || p == nil {
		t.Fatalf("FromEnv = %v, %v", p, err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(context.Background(), "a-span")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "/v1/traces" {
		t.Fatalf("collector saw %v, want a POST to /v1/traces", paths)
	}
	for _, want := range []string{"a-span", "ingest-test-name"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the export does not hold %q", want)
		}
	}
}
