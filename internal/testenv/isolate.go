package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// KafkaClient returns a client on the test's brokers, closed when t ends.
func KafkaClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return KafkaClientAt(t, Kafka(t), opts...)
}

// TopicPrefix returns a topic prefix unique to t ("test.<id>."); every topic
// under it is deleted when t ends.
func TopicPrefix(t testing.TB) string {
	t.Helper()
	adm := kadm.NewClient(KafkaClient(t))
	prefix := "test." + ID(t) + "."
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("cleanup: list topics: %v", err)
			return
		}
		var mine []string
		for _, n := range topics.Names() {
			if strings.HasPrefix(n, prefix) {
				mine = append(mine, n)
			}
		}
		if len(mine) > 0 {
			if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
				t.Logf("cleanup: delete topics %v: %v", mine, err)
			}
		}
	})
	return prefix
}

// RedisClient returns a client and a key prefix unique to t ("test:<id>:");
// every key under the prefix is deleted when t ends.
func RedisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	user, pass := RedisAuth(Redis(t))
	rdb := redis.NewClient(&redis.Options{Addr: Redis(t), Username: user, Password: pass})
	prefix := "test:" + ID(t) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// ClickHouseDB creates a database unique to t and returns a connection whose
// default database it is; the database is dropped when t ends.
func ClickHouseDB(t testing.TB) (clickhouse.Conn, string) {
	t.Helper()
	addr := strings.Split(ClickHouse(t), ",")
	db := "test_" + ID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := ClickHouseAuth(ClickHouse(t))
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: addr, Auth: auth})
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatalf("clickhouse: create database %s: %v", db, err)
	}
	auth.Database = db
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: addr, Auth: auth})
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Close()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("cleanup: drop database %s: %v", db, err)
		}
		_ = admin.Close()
	})
	return conn, db
}

// Setting returns the environment variable name, which a setup script
// writes: what it provides is what, and howTo says how to get it. Without
// it the test fails in CI and is skipped otherwise (and in a unit-only
// run).
func Setting(t testing.TB, name, what, howTo string) string {
	t.Helper()
	SkipIfUnitOnly(t, what)
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s (%s) is not set: %s", name, what, howTo)
	if inCI() {
		t.Fatal(msg + " (CI is set, so a missing service is a failure)")
	}
	t.Skip(msg)
	return ""
}

// SchemaRegistry returns the base URL of a Confluent-compatible schema
// registry (LEDGER_TEST_SCHEMA_REGISTRY, written to .stack/env by
// `scripts/stack up registry`, which make test runs). Without one the test
// fails in CI and is skipped otherwise; a configured one that does not
// answer fails it.
func SchemaRegistry(t testing.TB) string {
	t.Helper()
	url := strings.TrimRight(Setting(t, "LEDGER_TEST_SCHEMA_REGISTRY", "a schema registry",
		"start one with `scripts/stack up registry && source .stack/env`"), "/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/subjects", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("schema registry %s does not answer: %v", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("schema registry %s: GET /subjects answered %s", url, resp.Status)
	}
	return url
}

// LegacyValue re-frames a single-object encoded value under its schema's
// legacy fingerprint (hamba/avro's canonical form, which keeps
// logicalType), as the ledger wrote records before it followed the Avro
// specification.
func LegacyValue(t testing.TB, value []byte) []byte {
	t.Helper()
	name, err := codec.Default().Name(value)
	if err != nil {
		t.Fatal(err)
	}
	fp, ok := codec.Default().LegacyFingerprint(name)
	if !ok || string(fp[:]) == string(value[2:10]) {
		t.Fatalf("%s: no legacy fingerprint apart from the current one", name)
	}
	return append(append([]byte{0xc3, 0x01}, fp[:]...), value[10:]...)
}

// KafkaSecurity returns cfg with the TLS and SASL settings of the shared
// broker (KAFKA_TLS, KAFKA_TLS_CA, KAFKA_SASL_MECHANISM, KAFKA_SASL_USER,
// KAFKA_SASL_PASSWORD, which scripts/stack writes to .stack/env) when
// cfg.Brokers is that broker (KAFKA_BROKERS); a private broker's
// configuration (StartKafka, kfake) is returned as it is.
func KafkaSecurity(cfg config.Kafka) config.Kafka {
	// The local stack's broker, or its three-node cluster
	// (LEDGER_TEST_KAFKA_CLUSTER): the same users and CA.
	shared, cluster := os.Getenv("KAFKA_BROKERS"), os.Getenv("LEDGER_TEST_KAFKA_CLUSTER")
	if (shared == "" || cfg.Brokers != shared) && (cluster == "" || cfg.Brokers != cluster) {
		return cfg
	}
	cfg.TLS = os.Getenv("KAFKA_TLS") == "true"
	cfg.TLSCAFile = os.Getenv("KAFKA_TLS_CA")
	cfg.SASLMechanism = os.Getenv("KAFKA_SASL_MECHANISM")
	cfg.SASLUser = os.Getenv("KAFKA_SASL_USER")
	cfg.SASLPassword = os.Getenv("KAFKA_SASL_PASSWORD")
	return cfg
}

// KafkaConfig is the client configuration of the shared broker, with its
// security (KafkaSecurity), under topic prefix prefix.
func KafkaConfig(t testing.TB, prefix, clientID string) config.Kafka {
	t.Helper()
	return KafkaSecurity(config.Kafka{Brokers: Kafka(t), TopicPrefix: prefix, ClientID: clientID})
}

// KafkaClientAt returns a client on brokers (with the shared broker's
// security when it is that one), closed when t ends.
func KafkaClientAt(t testing.TB, brokers string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafkax.NewClient(KafkaSecurity(config.Kafka{Brokers: brokers}), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// RedisAuth is the user and password of the shared Redis (REDIS_USERNAME,
// REDIS_PASSWORD from .stack/env) when addr is that server (REDIS_ADDR),
// else none (a private server: StartRedis).
func RedisAuth(addr string) (user, password string) {
	if shared := os.Getenv("REDIS_ADDR"); shared == "" || addr != shared {
		return "", ""
	}
	return os.Getenv("REDIS_USERNAME"), os.Getenv("REDIS_PASSWORD")
}

// ClickHouseAuth is the user and password of the shared ClickHouse
// (CLICKHOUSE_USERNAME, CLICKHOUSE_PASSWORD) when addr is that server
// (CLICKHOUSE_ADDR), else the passwordless default user of a private one.
func ClickHouseAuth(addr string) clickhouse.Auth {
	if shared := os.Getenv("CLICKHOUSE_ADDR"); shared == "" || addr != shared {
		return clickhouse.Auth{}
	}
	return clickhouse.Auth{Username: os.Getenv("CLICKHOUSE_USERNAME"), Password: os.Getenv("CLICKHOUSE_PASSWORD")}
}
