package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/chsink"
	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestServesQueryAPI wires the binary against the test stores: /v1/ needs
// a read token (a write token is forbidden), /openapi.json and the console
// page /ui/ do not, the admin endpoints are on the admin listener only, and
// the Redis and ClickHouse readers answer from the configured prefix and
// database.
func TestServesQueryAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb, prefix := testenv.RedisClient(t)
	conn, db := testenv.ClickHouseDB(t)
	hist := projectiontest.Generate(3, "", 3, 40)
	hot, err := redissink.New(rdb, redissink.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := hot.Apply(ctx, hist.Events); err != nil {
		t.Fatal(err)
	}
	if err := chsink.Migrate(ctx, conn, chsink.Options{Database: db}); err != nil {
		t.Fatal(err)
	}
	cold, err := chsink.NewView(conn, chsink.Options{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := cold.Apply(ctx, hist.Events); err != nil {
		t.Fatal(err)
	}

	addr, admin := freeAddr(t), freeAddr(t)
	const readToken, writeToken = "read-0123456789abcdef", "write-0123456789abcdef"
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{
			"-http-addr", addr, "-admin-addr", admin, "-log-level", "error",
			"-http-tokens", "dash:read:" + readToken + ",ingest:write:" + writeToken,
			"-redis-addr", testenv.Redis(t), "-redis-key-prefix", prefix,
			"-clickhouse-addr", testenv.ClickHouse(t), "-clickhouse-database", db,
			"-max-wait", "2s", "-wait-poll-interval", "10ms",
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	get := func(path, token string) (int, map[string]any) {
		t.Helper()
		base := addr
		if strings.HasPrefix(path, "admin:") {
			base, path = admin, strings.TrimPrefix(path, "admin:")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, map[string]any{"err": err.Error()}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		return resp.StatusCode, body
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get("admin:/readyz", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after 20 s")
		}
	}

	acc := hist.Accounts["acc-0"]
	cases := []struct {
		path, token string
		status      int
		check       func(map[string]any) bool
	}{
		{"/openapi.json", "", 200, func(b map[string]any) bool { return strings.HasPrefix(b["openapi"].(string), "3.") }},
		// The console's page holds no data: public; its data needs the token.
		{"/ui/", "", 200, nil},
		{"/v1/accounts/acc-0", "", 401, func(b map[string]any) bool { return b["error"] == "unauthorized" }},
		{"/v1/accounts/acc-0", "wrong-0123456789abcdef", 401, nil},
		{"/v1/accounts/acc-0", writeToken, 403, func(b map[string]any) bool { return b["error"] == "forbidden" }},
		{"/v1/accounts/acc-0", readToken, 200, func(b map[string]any) bool { return b["balance"] == float64(acc.Balance) }},
		{"/v1/accounts/acc-0?min_version=1000&wait=50ms", readToken, 503, func(b map[string]any) bool { return b["version"] == float64(acc.Version) }},
		{"/v1/accounts/acc-0?min_version=1&wait=3s", readToken, 400, func(b map[string]any) bool { return b["parameter"] == "wait" }},
		{"/v1/accounts/acc-0/history", readToken, 200, func(b map[string]any) bool { return len(b["events"].([]any)) == int(acc.Version) }},
		{"/v1/accounts/nope", readToken, 404, func(b map[string]any) bool { return b["error"] == "not_found" }},
		{"/v1/nowhere", readToken, 404, func(b map[string]any) bool { return b["error"] == "not_found" }},
		{"admin:/healthz", "", 200, nil},
		{"/healthz", readToken, 404, func(b map[string]any) bool { return b["error"] == "not_found" }},
		{"/metrics", readToken, 404, nil},
	}
	for _, c := range cases {
		code, body := get(c.path, c.token)
		if code != c.status || (c.check != nil && !c.check(body)) {
			t.Errorf("GET %s (token %q): %d %v; want %d", c.path, c.token, code, body, c.status)
		}
	}
	code, b := testenv.Get(admin, "/metrics")
	if code != http.StatusOK || !strings.Contains(b, `ledger_query_requests_total{code="200",route="GET /v1/accounts/{id}"}`) {
		t.Errorf("/metrics has no query request counter:\n%.2000s", b)
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBadFlagsListEveryProblem(t *testing.T) {
	err := run(context.Background(), []string{"-max-wait", "31s", "-wait-poll-interval", "0s", "-store-timeout", "0s", "-redis-db", "99",
		"-http-tokens", "read:short", "-admin-addr", "nohostport"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"max-wait", "wait-poll-interval", "store-timeout", "redis-db", "http-tokens entry 1", "admin-addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
