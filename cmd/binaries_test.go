// Package cmd_test builds the three binaries and checks what every binary
// promises: it starts, serves /healthz, /readyz and /metrics, and exits
// cleanly on SIGTERM.
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
			addr := testenv.FreeAddr(t)
			var logs testenv.Buffer
			cmd := exec.Command(filepath.Join(bin, name))
			cmd.Env = append(os.Environ(), append(env, "HTTP_ADDR="+addr)...)
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

			get := func(path string) (int, string) { return testenv.Get(addr, path) }
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
