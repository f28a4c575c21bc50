package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/projection/projectiontest"
	"github.com/cqrs-ledger/ledger/internal/redissink"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// storeSecret returns the environment variable name's value (scripts/stack
// writes it to .stack/env), failing when the shared stores are not secured
// in CI and skipping outside it.
func storeSecret(t *testing.T, name string) string {
	t.Helper()
	return testenv.Setting(t, name, "a password of the local stack's store users", "run scripts/stack up, then source .stack/env")
}

// TestStoreUsersAreConfined: the Redis and ClickHouse users of the local
// stack can do their role's job and nothing else. The query API's users
// cannot write, delete or change anything; the projector's cannot touch
// what lies outside the ledger's keys and database or run administrative
// commands; no one gets in without a password or with a wrong one. The
// number of denied cases is logged (the README quotes it).
func TestStoreUsersAreConfined(t *testing.T) {
	redisAddr, chAddr := testenv.Redis(t), testenv.ClickHouse(t)
	qPass, pPass := storeSecret(t, "LEDGER_REDIS_QUERYAPI_PASSWORD"), storeSecret(t, "LEDGER_REDIS_PROJECTOR_PASSWORD")
	chQ, chP := storeSecret(t, "LEDGER_CLICKHOUSE_QUERYAPI_PASSWORD"), storeSecret(t, "LEDGER_CLICKHOUSE_PROJECTOR_PASSWORD")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	denied, allowed := 0, 0
	// deny expects err to be a refusal: its text names one of the
	// stores' refusal kinds, not some other failure.
	refusals := []string{"NOPERM", "NOAUTH", "WRONGPASS", "readonly mode", "Access denied", "access to database",
		"Wrong password", "password is incorrect", "Password required", "Cannot modify", "not allowed"}
	deny := func(what string, err error) {
		t.Helper()
		denied++
		if err == nil {
			t.Errorf("%s: allowed, want refused", what)
			return
		}
		for _, r := range refusals {
			if strings.Contains(err.Error(), r) {
				return
			}
		}
		t.Errorf("%s: %v, want a refusal (%s)", what, err, strings.Join(refusals, ", "))
	}
	allow := func(what string, err error) {
		t.Helper()
		allowed++
		if err != nil && err != redis.Nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
	}
	rc := func(user, pass string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: redisAddr, Username: user, Password: pass, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	// Redis.
	prefix := "ledger:acltest-" + testenv.ID(t) + ":"
	admin, _ := testenv.RedisClient(t)
	t.Cleanup(func() {
		keys, _ := admin.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			admin.Del(context.Background(), keys...)
		}
	})
	proj := rc("projector", pPass)
	sink, err := redissink.New(proj, redissink.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	h := projectiontest.Generate(3, "acl-", 3, 40)
	allow("redis projector applies events under ledger:", sink.Apply(ctx, h.Events))
	q := rc("queryapi", qPass)
	reader, err := redissink.New(q, redissink.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range h.Accounts {
		got, ok, err := reader.Account(ctx, id)
		allow("redis queryapi reads an account", err)
		if !ok || got.Version != want.Version {
			t.Errorf("queryapi read %s: %+v %v, want version %d", id, got, ok, want.Version)
		}
	}
	// The query API's read-your-writes waits: a Watcher (PSUBSCRIBE on the
	// live prefix's channels) as the queryapi user, woken by an
	// announcement the projector user publishes.
	watcher := redissink.NewWatcher(q, "ledger:")
	wctx, wcancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- watcher.Run(wctx) }()
	watched := "acl-watch-" + testenv.ID(t)
	woken, unwatch := watcher.Watch(watched)
	deadline := time.After(10 * time.Second)
	var werrV error
wait:
	for {
		if err := proj.Publish(ctx, redissink.ChangesChannel("ledger:"), watched).Err(); err != nil {
			werrV = err
			break
		}
		select {
		case <-woken:
			break wait
		case <-deadline:
			werrV = errors.New("the watcher was not woken within 10 s (its PSUBSCRIBE refused?)")
			break wait
		case <-time.After(100 * time.Millisecond):
		}
	}
	unwatch()
	wcancel()
	<-werr
	allow("redis queryapi watches the change announcements the projector publishes", werrV)
	key := sink.AccountKey("acl-acc-0")
	for what, cmd := range map[string][]any{
		"set":          {"set", prefix + "x", "1"},
		"hset":         {"hset", key, "balance", "999"},
		"del":          {"del", key},
		"unlink":       {"unlink", key},
		"expire":       {"expire", key, "1"},
		"eval":         {"eval", "return 1", "0"},
		"publish":      {"publish", prefix + "changes", "x"},
		"flushall":     {"flushall"},
		"flushdb":      {"flushdb"},
		"config set":   {"config", "set", "appendonly", "no"},
		"keys":         {"keys", "*"},
		"get outside":  {"get", "other:x"},
		"acl setuser":  {"acl", "setuser", "queryapi", "+@all"},
		"script flush": {"script", "flush"},
	} {
		deny("redis queryapi "+what, q.Do(ctx, cmd...).Err())
	}
	for what, cmd := range map[string][]any{
		"set outside":     {"set", "other:x", "1"},
		"get outside":     {"get", "test:x"},
		"publish outside": {"publish", "other:changes", "x"},
		"flushall":        {"flushall"},
		"flushdb":         {"flushdb"},
		"config set":      {"config", "set", "appendonly", "no"},
		"keys":            {"keys", "*"},
		"acl setuser":     {"acl", "setuser", "projector", "~*"},
		"debug":           {"debug", "sleep", "0"},
		"shutdown":        {"shutdown", "nosave"},
	} {
		deny("redis projector "+what, proj.Do(ctx, cmd...).Err())
	}
	deny("redis without a password", rc("", "").Ping(ctx).Err())
	deny("redis default user", rc("default", "").Ping(ctx).Err())
	deny("redis queryapi with a wrong password", rc("queryapi", "wrong").Ping(ctx).Err())

	// ClickHouse.
	adminCH, _ := testenv.ClickHouseDB(t)
	if err := adminCH.Exec(ctx, "CREATE DATABASE IF NOT EXISTS ledger"); err != nil {
		t.Fatal(err)
	}
	probe := "acl_probe_" + strings.ToLower(testenv.ID(t))
	if err := adminCH.Exec(ctx, "CREATE TABLE default."+probe+" (a UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adminCH.Exec(context.Background(), "DROP TABLE IF EXISTS ledger."+probe)
		_ = adminCH.Exec(context.Background(), "DROP TABLE IF EXISTS default."+probe)
	})
	ch := func(user, pass string) clickhouse.Conn {
		c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, Auth: clickhouse.Auth{Username: user, Password: pass}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	cp := ch("projector", chP)
	allow("clickhouse projector creates a table in ledger", cp.Exec(ctx, "CREATE TABLE ledger."+probe+" (a UInt8) ENGINE = MergeTree ORDER BY a"))
	allow("clickhouse projector inserts", cp.Exec(ctx, "INSERT INTO ledger."+probe+" SELECT 1"))
	cq := ch("queryapi", chQ)
	var n uint64
	allow("clickhouse queryapi reads ledger", cq.QueryRow(ctx, "SELECT count() FROM ledger."+probe).Scan(&n))
	for what, stmt := range map[string]string{
		"insert":          "INSERT INTO ledger." + probe + " SELECT 2",
		"create table":    "CREATE TABLE ledger.acl_other (a UInt8) ENGINE = Memory",
		"drop table":      "DROP TABLE ledger." + probe,
		"truncate":        "TRUNCATE TABLE ledger." + probe,
		"alter":           "ALTER TABLE ledger." + probe + " DELETE WHERE 1",
		"drop database":   "DROP DATABASE ledger",
		"set a setting":   "SET max_execution_time = 1000",
		"other database":  "SELECT count() FROM default." + probe,
		"create database": "CREATE DATABASE acl_other",
	} {
		deny("clickhouse queryapi "+what, cq.Exec(ctx, stmt))
	}
	for what, stmt := range map[string]string{
		"create table elsewhere": "CREATE TABLE default.acl_other (a UInt8) ENGINE = Memory",
		"insert elsewhere":       "INSERT INTO default." + probe + " SELECT 1",
		"read elsewhere":         "SELECT count() FROM default." + probe,
	} {
		deny("clickhouse projector "+what, cp.Exec(ctx, stmt))
	}
	deny("clickhouse default without a password", ch("default", "").Ping(ctx))
	deny("clickhouse queryapi with a wrong password", ch("queryapi", "wrong").Ping(ctx))

	t.Logf("%d denied cases, all denied; %d allowed cases, all allowed", denied, allowed)
}
