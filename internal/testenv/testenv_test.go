package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestHelperWantsKafka is run as a child process by TestMissingServiceFailsInCIAndSkipsOtherwise.
func TestHelperWantsKafka(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "1" {
		t.Skip("run only as a child process of TestMissingServiceFailsInCIAndSkipsOtherwise")
	}
	testenv.Kafka(t)
}

func TestMissingServiceFailsInCIAndSkipsOtherwise(t *testing.T) {
	run := func(ci string, extra ...string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWantsKafka$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "KAFKA_BROKERS=") && !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "DOCKER_HOST=") && !strings.HasPrefix(kv, "LEDGER_UNIT_ONLY=") {
				env = append(env, kv)
			}
		}
		// No endpoint and no Docker engine.
		cmd.Env = append(append(env, "TESTENV_CHILD=1", "CI="+ci, "DOCKER_HOST=unix:///nonexistent/docker.sock"), extra...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("true")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperWantsKafka") || !strings.Contains(out, "CI is set") {
		t.Fatalf("with CI set: want a failure that says why, got err=%v:\n%s", err, out)
	}
	out, err = run("")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperWantsKafka") || !strings.Contains(out, "scripts/stack up") {
		t.Fatalf("without CI: want a skip that says how to start the stack, got err=%v:\n%s", err, out)
	}
	// A configured endpoint that does not answer is a failure, CI or not.
	out, err = run("", "KAFKA_BROKERS=127.0.0.1:1")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperWantsKafka") || !strings.Contains(out, "is set but") {
		t.Fatalf("without CI, endpoint configured but down: want a failure, got err=%v:\n%s", err, out)
	}
}

// TestHelperWantsChromium is run as a child process by TestMissingChromiumFailsInCIAndSkipsOtherwise.
func TestHelperWantsChromium(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "1" {
		t.Skip("run only as a child process of TestMissingChromiumFailsInCIAndSkipsOtherwise")
	}
	testenv.Chromium(t)
}

func TestMissingChromiumFailsInCIAndSkipsOtherwise(t *testing.T) {
	run := func(ci, chromium string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWantsChromium$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "LEDGER_UNIT_ONLY=") && !strings.HasPrefix(kv, "PATH=") &&
				!strings.HasPrefix(kv, testenv.ChromiumEnv+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, "TESTENV_CHILD=1", "CI="+ci, "PATH="+t.TempDir())
		if chromium != "" {
			env = append(env, testenv.ChromiumEnv+"="+chromium)
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("true", "")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperWantsChromium") || !strings.Contains(out, "CI is set") {
		t.Fatalf("with CI set: want a failure that says why, got err=%v:\n%s", err, out)
	}
	out, err = run("", "")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperWantsChromium") || !strings.Contains(out, "apt-get install chromium") {
		t.Fatalf("without CI: want a skip that says how to get Chromium, got err=%v:\n%s", err, out)
	}
	// A configured path that is no executable is a failure, CI or not.
	out, err = run("", "/nonexistent/chromium")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperWantsChromium") || !strings.Contains(out, "not an executable") {
		t.Fatalf("LEDGER_CHROMIUM wrong: want a failure, got err=%v:\n%s", err, out)
	}
}
