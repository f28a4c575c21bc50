package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// PrivateKafka is a single-node Kafka broker (KRaft) of one test, from the
// jars scripts/stack fetched, with its data in t.TempDir(), so that a test
// can kill and restart its own broker without disturbing the others.
type PrivateKafka struct {
	// Addr is the bootstrap address.
	Addr string
	s    *server
}

// StartKafka launches a private broker for t on free ports and waits until
// it answers; it is stopped when t ends. It needs Java and the broker's jars
// in <stack dir>/kafka/libs (scripts/stack up fetches them): without them
// the test fails when CI is set and is skipped otherwise.
func StartKafka(t testing.TB) *PrivateKafka {
	t.Helper()
	SkipIfUnitOnly(t, "a private Kafka broker")
	java, err := exec.LookPath("java")
	if err != nil {
		missing(t, "java", "apt-get install openjdk-17-jre-headless")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("kafka: %v", err)
	}
	stack := os.Getenv("LEDGER_STACK_DIR")
	if stack == "" {
		stack = filepath.Join(root, ".stack")
	}
	libs := filepath.Join(stack, "kafka", "libs")
	if _, err := os.Stat(filepath.Join(libs, ".complete")); err != nil {
		missing(t, "the Kafka broker jars in "+libs, "scripts/stack up")
	}
	dir := t.TempDir()
	port, controller := freePort(t), freePort(t)
	tmpl, err := os.ReadFile(filepath.Join(root, "scripts", "kafka", "server.properties"))
	if err != nil {
		t.Fatalf("kafka config template: %v", err)
	}
	cfg := plaintextBroker(strings.NewReplacer("@DATA@", filepath.Join(dir, "data"), "@PORT@", strconv.Itoa(port),
		"@CONTROLLER_PORT@", strconv.Itoa(controller)).Replace(string(tmpl)))
	cfgPath := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := libs + "/*"
	id, err := exec.Command(java, "-cp", cp, "kafka.tools.StorageTool", "random-uuid").Output()
	if err != nil {
		t.Fatalf("kafka storage id: %v", err)
	}
	if out, err := exec.Command(java, "-cp", cp, "kafka.tools.StorageTool", "format", "--standalone",
		"-t", strings.TrimSpace(string(id)), "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("kafka storage format: %v\n%s", err, out)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	k := &PrivateKafka{Addr: addr, s: &server{
		t: t, name: "kafka", bin: java,
		args: []string{"-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
			"-Dlog4j2.configurationFile=" + filepath.Join(root, "scripts", "kafka", "log4j2.properties"),
			"-Dkafka.logs.dir=" + dir, "-cp", cp, "kafka.Kafka", cfgPath},
		addr: addr, log: filepath.Join(dir, "kafka.log"), ready: kafkaReady, startTimeout: 120 * time.Second,
	}}
	k.s.start()
	t.Cleanup(k.s.stop)
	return k
}

// Start launches the broker again (same port and data) and waits until it
// answers; a no-op while it runs.
func (k *PrivateKafka) Start() { k.s.start() }

// Stop shuts the broker down cleanly (SIGTERM) and waits for it to exit.
func (k *PrivateKafka) Stop() { k.s.stop() }

// Kill ends the broker with SIGKILL, as a crash would.
func (k *PrivateKafka) Kill() { k.s.kill() }

// kafkaReady answers nil once the broker on addr answers a metadata request.
func kafkaReady(addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// plaintextBroker turns the local stack's broker configuration into a
// private test broker's: PLAINTEXT listeners, no SASL, TLS or authorizer
// (the tests that start one kill and restart it, security is not theirs).
func plaintextBroker(cfg string) string {
	var out []string
	for _, line := range strings.Split(cfg, "\n") {
		switch {
		case strings.HasPrefix(line, "sasl."), strings.HasPrefix(line, "ssl."), strings.HasPrefix(line, "listener.name."),
			strings.HasPrefix(line, "authorizer.class.name"), strings.HasPrefix(line, "super.users"),
			strings.HasPrefix(line, "allow.everyone.if.no.acl.found"):
			continue
		}
		line = strings.NewReplacer("SASL_SSL", "PLAINTEXT", "CONTROLLER:SSL", "CONTROLLER:PLAINTEXT").Replace(line)
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
