// Package testenv gives integration tests their Kafka, Redis and ClickHouse.
//
// Endpoints come, in order, from the environment (KAFKA_BROKERS, REDIS_ADDR,
// CLICKHOUSE_ADDR; set by `scripts/stack up` in .stack/env), else from
// testcontainers-go when a Docker engine answers, else the test fails when CI
// is set and is skipped otherwise, with a message that says how to start the
// stack. Each test isolates itself: its own topic prefix, Redis key prefix and
// ClickHouse database, removed when the test ends.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/wait"
)

const howTo = "start the local stack with `scripts/stack up && source .stack/env` (or run `make test`), " +
	"or make a Docker engine reachable for testcontainers"

// service is one external dependency, resolved once per test binary.
type service struct {
	name    string
	envVar  string
	start   func(ctx context.Context) (string, error) // testcontainers fallback
	once    sync.Once
	addr    string
	source  string
	failure string
	// configured: the endpoint came from the environment, so a service
	// that does not answer fails the test even outside CI.
	configured bool
}

var (
	kafkaSvc = &service{name: "Kafka", envVar: "KAFKA_BROKERS", start: startKafka}
	redisSvc = &service{name: "Redis", envVar: "REDIS_ADDR", start: startRedis}
	chSvc    = &service{name: "ClickHouse", envVar: "CLICKHOUSE_ADDR", start: startClickHouse}
)

// Kafka returns the bootstrap brokers (comma-separated) for t.
func Kafka(t testing.TB) string { return kafkaSvc.get(t) }

// Redis returns the Redis host:port for t.
func Redis(t testing.TB) string { return redisSvc.get(t) }

// ClickHouse returns the ClickHouse native host:port for t.
func ClickHouse(t testing.TB) string { return chSvc.get(t) }

func inCI() bool { return os.Getenv("CI") != "" && os.Getenv("CI") != "false" }

// UnitOnly reports a run of the tests that need no service (make
// test-unit sets LEDGER_UNIT_ONLY=1): every test that needs one is
// skipped at once, without looking for the stack or Docker.
func UnitOnly() bool { return os.Getenv("LEDGER_UNIT_ONLY") == "1" }

// SkipIfUnitOnly skips t in a unit-only run; what names the service it needs.
func SkipIfUnitOnly(t testing.TB, what string) {
	t.Helper()
	if UnitOnly() {
		t.Skipf("needs %s; skipped by LEDGER_UNIT_ONLY=1 (make test-unit). make test runs it", what)
	}
}

func (s *service) get(t testing.TB) string {
	t.Helper()
	SkipIfUnitOnly(t, s.name)
	s.once.Do(s.resolve)
	if s.failure != "" {
		if inCI() {
			t.Fatalf("%s: %s (CI is set, so a missing service is a failure)", s.name, s.failure)
		}
		if s.configured {
			t.Fatalf("%s: %s (an endpoint is configured, so it must answer; unset %s to skip)", s.name, s.failure, s.envVar)
		}
		t.Skipf("%s: %s; to run this test, %s", s.name, s.failure, howTo)
	}
	return s.addr
}

func (s *service) resolve() {
	if v := strings.TrimSpace(os.Getenv(s.envVar)); v != "" {
		s.configured = true
		first := strings.Split(v, ",")[0]
		if err := dial(first); err != nil {
			s.failure = fmt.Sprintf("%s=%s is set but %s does not answer: %v", s.envVar, v, first, err)
			return
		}
		s.addr, s.source = v, s.envVar
		return
	}
	if !dockerAvailable() {
		s.failure = fmt.Sprintf("%s is not set and no Docker engine is reachable", s.envVar)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	addr, err := s.start(ctx)
	if err != nil {
		s.failure = fmt.Sprintf("%s is not set and the testcontainers fallback failed: %v", s.envVar, err)
		return
	}
	s.addr, s.source = addr, "testcontainers"
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

var (
	dockerOnce sync.Once
	dockerOK   bool
)

func dockerAvailable() bool {
	dockerOnce.Do(func() {
		// testcontainers panics (MustExtractDockerHost) when no Docker host
		// can be found at all; that means "no Docker" here.
		defer func() {
			if r := recover(); r != nil {
				dockerOK = false
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			return
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dockerOK = p.Health(ctx) == nil
	})
	return dockerOK
}

// Containers started here live until the test binary exits; testcontainers'
// reaper removes them.

func startKafka(ctx context.Context) (string, error) {
	c, err := tckafka.Run(ctx, "confluentinc/confluent-local:7.6.1", tckafka.WithClusterID("ledger-test"))
	if err != nil {
		return "", err
	}
	brokers, err := c.Brokers(ctx)
	if err != nil {
		return "", err
	}
	return strings.Join(brokers, ","), nil
}

func startRedis(ctx context.Context) (string, error) {
	c, err := tcredis.Run(ctx, "redis:7")
	if err != nil {
		return "", err
	}
	ep, err := c.Endpoint(ctx, "")
	return ep, err
}

func startClickHouse(ctx context.Context) (string, error) {
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "clickhouse/clickhouse-server:latest",
			ExposedPorts: []string{"9000/tcp"},
			Env:          map[string]string{"CLICKHOUSE_SKIP_USER_SETUP": "1"},
			WaitingFor:   wait.ForListeningPort("9000/tcp").WithStartupTimeout(2 * time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return "", err
	}
	return c.PortEndpoint(ctx, "9000/tcp", "")
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// ID returns a short unique identifier for t: letters, digits and '_' only,
// safe in topic names, Redis keys and ClickHouse identifiers.
func ID(t testing.TB) string {
	name := strings.Trim(unsafe.ReplaceAllString(t.Name(), "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(name) + "_" + hex.EncodeToString(b[:])
}
