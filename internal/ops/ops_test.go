package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/config"
)

// TestAdminListener: /healthz, /readyz and /metrics are served on the admin
// listener and not on the API listener; after shutdown neither listener
// accepts connections.
func TestAdminListener(t *testing.T) {
	notReady := errors.New("loop stalled")
	s := start(t, "admin", httpConfig(t, config.ScopeRead, "-http-tokens", "read:"+readTok), func(s *Service) {
		s.Handle("/v1/", config.ScopeRead, ok)
		s.Ready.Add("loop", func(context.Context) error { return notReady })
	})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/metrics": 200} {
		if a := call(t, nil, "GET", s.admin+path, ""); a.status != want {
			t.Errorf("admin %s: %d, want %d", path, a.status, want)
		}
		if a := call(t, nil, "GET", s.api+path, readTok); a.status != 404 || a.body["error"] != "not_found" {
			t.Errorf("API listener %s: %d %v, want 404 not_found", path, a.status, a.body)
		}
	}
	if a := call(t, nil, "GET", s.admin+"/v1/accounts/a", readTok); a.status != 404 {
		t.Errorf("admin listener serves the API: %d", a.status)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{s.admin, s.api} {
		if _, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "http://"), time.Second); err == nil {
			t.Errorf("%s still accepts connections after shutdown", u)
		}
	}
}

// TestAdminOnly: a binary without an API (the projector) opens only the
// admin listener; its deprecated http-addr sets the admin address.
func TestAdminOnly(t *testing.T) {
	var cfg config.HTTP
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	cfg.RegisterAdminFlags(fs, "127.0.0.1:9081")
	if err := fs.Parse([]string{"-http-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := start(t, "admin-only", cfg, func(*Service) {})
	if s.api != "" || s.auth != nil {
		t.Fatalf("an API listener (%q) or auth in a binary without an API", s.api)
	}
	if a := call(t, nil, "GET", s.admin+"/healthz", ""); a.status != 200 {
		t.Errorf("/healthz: %d", a.status)
	}
}

// TestTLS: with a certificate the API listener speaks TLS 1.2 or later
// only; the admin listener stays plain HTTP on its own address.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	s := start(t, "tls", httpConfig(t, config.ScopeWrite, "-http-tokens", "write:"+writeTok,
		"-http-tls-cert", certFile, "-http-tls-key", keyFile), func(s *Service) {
		s.Handle("/v1/", config.ScopeWrite, ok)
	})
	if !strings.HasPrefix(s.api, "https://") {
		t.Fatalf("API URL %s", s.api)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if a := call(t, client, "POST", s.api+"/v1/x", writeTok); a.status != 200 {
		t.Errorf("over TLS: %d", a.status)
	}
	if a := call(t, client, "POST", s.api+"/v1/x", ""); a.status != 401 {
		t.Errorf("over TLS without a token: %d", a.status)
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(s.api + "/v1/x"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(s.api, "https://") + "/v1/x"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d", resp.StatusCode)
		}
	}
	if a := call(t, nil, "GET", s.admin+"/healthz", ""); a.status != 200 {
		t.Errorf("admin over plain HTTP: %d", a.status)
	}

	// Half a pair, or a pair that does not load, is refused.
	cfg := httpConfig(t, config.ScopeWrite, "-http-tls-cert", certFile)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http-tls-cert and http-tls-key go together") {
		t.Errorf("a certificate without a key: %v", err)
	}
	if _, err := serverTLS(httpConfig(t, config.ScopeWrite, "-http-tls-cert", keyFile, "-http-tls-key", keyFile)); err == nil {
		t.Error("a key as the certificate was loaded")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ledger test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
