// Package cmd_test builds the three binaries and checks what every binary
// promises: it starts, serves /healthz, /readyz and /metrics on its admin
// listener (and not on its API listener, whose routes need a token), and
// exits cleanly on SIGTERM.
package cmd_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/testenv"
)

func TestBinariesServeAndStopOnSIGTERM(t *testing.T) {
	// ingest's processor needs the topics.
	prefix := testenv.TopicPrefix(t)
	testenv.Topology(t, kadm.NewClient(testenv.KafkaClient(t)), prefix, 2)
	env := []string{
		"TOPIC_PREFIX=" + prefix,
		"KAFKA_BROKERS=" + testenv.Kafka(t),
		"REDIS_ADDR=" + testenv.Redis(t),
		"CLICKHOUSE_ADDR=" + testenv.ClickHouse(t),
		"CLICKHOUSE_DATABASE=test_" + testenv.ID(t),
	}
	bin := t.TempDir()
	for _, name := range []string{"ingest", "projector", "queryapi"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "./"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	for _, name := range []string{"ingest", "projector", "queryapi"} {
		t.Run(name, func(t *testing.T) {
			addr, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
			var logs testenv.Buffer
			cmd := exec.Command(filepath.Join(bin, name))
			cmd.Env = append(os.Environ(), append(env, "ADMIN_ADDR="+admin)...)
			if name != "projector" { // the projector has no API listener
				cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr, "HTTP_TOKENS=write:write-0123456789abcdef,read:read-0123456789abcdef")
			}
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
				}
			}()

			get := func(path string) (int, string) { return testenv.Get(admin, path) }
			deadline := time.Now().Add(30 * time.Second)
			var code int
			var body string
			for time.Now().Before(deadline) {
				if code, body = get("/readyz"); code == http.StatusOK {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code != http.StatusOK {
				t.Fatalf("/readyz: %d %s\nlogs:\n%s", code, body, logs.String())
			}
			if code, body = get("/healthz"); code != http.StatusOK {
				t.Fatalf("/healthz: %d %s", code, body)
			}
			if code, body = get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
				t.Fatalf("/metrics: %d %.200s", code, body)
			}
			if name != "projector" {
				if code, body = testenv.Get(addr, "/readyz"); code != http.StatusNotFound {
					t.Errorf("/readyz on the API listener: %d %.200s", code, body)
				}
				if code, body = testenv.Get(addr, "/v1/commands/x"); code != http.StatusUnauthorized {
					t.Errorf("/v1/ without a token: %d %.200s", code, body)
				}
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v\nlogs:\n%s", err, logs.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30 s after SIGTERM\nlogs:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), `"msg":"stopped"`) {
				t.Fatalf("no clean-stop log line:\n%s", logs.String())
			}
		})
	}
}

// TestBadConfigListsEveryProblem: a bad configuration fails at start with
// every problem, not the first one.
func TestBadConfigListsEveryProblem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./projector",
		"-kafka-brokers", "nohostport", "-redis-db", "99", "-clickhouse-database", "bad-name;drop", "-shutdown-timeout", "0s")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("want a failure, got success:\n%s", out)
	}
	for _, want := range []string{"kafka-brokers", "redis-db", "clickhouse-database", "shutdown-timeout"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
}
