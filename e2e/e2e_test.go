// Package e2e runs the binaries as separate processes against the real local
// stack and checks the ledger's invariants from the outside: exactly-once
// under SIGKILL and rebalances, restores from snapshots, HTTP end to end.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
	"github.com/cqrs-ledger/ledger/topology"
)

var (
	buildMu  sync.Mutex
	binDir   string
	binaries = map[string]error{}
)

// binary builds a binary (with the race detector) once per test run and
// returns its path.
func binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "ledger-e2e-bin")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	err, built := binaries[name]
	if !built {
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, berr := exec.Command("go", append(args, "-o", binDir+"/", "../cmd/"+name)...).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", name, berr, out)
		}
		binaries[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// stack is one test's isolated view of the local stack.
type stack struct {
	t      testing.TB
	kafka  config.Kafka
	names  topology.Names
	client *kgo.Client
	adm    *kadm.Client
}

func newStack(t testing.TB, partitions int32) *stack {
	t.Helper()
	return newStackAt(t, testenv.Kafka(t), partitions)
}

// newStackAt is newStack on the broker at brokers.
func newStackAt(t testing.TB, brokers string, partitions int32) *stack {
	t.Helper()
	s := &stack{t: t}
	s.kafka = testenv.KafkaSecurity(config.Kafka{Brokers: brokers, TopicPrefix: testenv.TopicPrefix(t), ClientID: "e2e"})
	s.names = topology.NamesFor(s.kafka.TopicPrefix)
	s.client = testenv.KafkaClientAt(t, brokers, kgo.DefaultProduceTopic(s.names.Commands))
	s.adm = kadm.NewClient(s.client)
	testenv.Topology(t, s.adm, s.kafka.TopicPrefix, partitions)
	return s
}

// storesEnv is the environment of binaries that use Redis and ClickHouse:
// a key prefix and a database of the test's own.
func storesEnv(t testing.TB) []string {
	_, db := testenv.ClickHouseDB(t)
	_, redisPrefix := testenv.RedisClient(t)
	return []string{
		"REDIS_ADDR=" + testenv.Redis(t), "REDIS_KEY_PREFIX=" + redisPrefix,
		"CLICKHOUSE_ADDR=" + testenv.ClickHouse(t), "CLICKHOUSE_DATABASE=" + db,
	}
}

// pipeline starts ingest, projector and queryapi on the stack, with Redis
// and ClickHouse of the test's own, and waits until each is ready.
func (s *stack) pipeline(t testing.TB) (ingest, projector, query *proc) {
	t.Helper()
	env := storesEnv(t)
	ingest, projector, query = s.start("ingest", env, "serve"), s.start("projector", env), s.start("queryapi", env)
	for _, p := range []*proc{ingest, projector, query} {
		p.waitReady(t, 90*time.Second)
	}
	return ingest, projector, query
}

// proc is a running binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // the API listener; "" for the projector
	// admin is the admin listener: /healthz, /readyz, /metrics.
	admin string
	logs  *testenv.Buffer
	done  chan error
}

// e2eSagaKey is the saga key (hex) of the processors the tests start: they
// must share one, as a deployment's do.
const e2eSagaKey = "e2e0000000000000000000000000000000000000000000000000000000000001"

// start runs a binary with the stack's environment plus env; it is killed
// when the test ends if still running.
func (s *stack) start(name string, env []string, args ...string) *proc {
	s.t.Helper()
	p := &proc{name: name, addr: testenv.FreeAddr(s.t), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary(s.t, name), args...)
	p.cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+s.kafka.Brokers,
		"TOPIC_PREFIX="+s.kafka.TopicPrefix,
		// The broker's security as the test sees it: the shared broker's
		// admin, or none for a private broker.
		"KAFKA_TLS="+strconv.FormatBool(s.kafka.TLS),
		"KAFKA_TLS_CA="+s.kafka.TLSCAFile,
		"KAFKA_SASL_MECHANISM="+s.kafka.SASLMechanism,
		"KAFKA_SASL_USER="+s.kafka.SASLUser,
		"KAFKA_SASL_PASSWORD="+s.kafka.SASLPassword,
		"SAGA_KEY="+e2eSagaKey,
		"HTTP_ADDR="+p.addr,
		"LOG_LEVEL=info",
	)
	p.cmd.Env = append(p.cmd.Env, p.httpEnv(s.t)...)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	s.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if s.t.Failed() {
			s.t.Logf("%s (pid %d) logs:\n%s", name, p.cmd.Process.Pid, tail(p.logs.String(), 60))
		}
		keepLogs(s.t, name, p.cmd.Process.Pid, p.logs.String())
	})
	return p
}

// keepLogs writes a binary's logs to <stack>/logs/e2e/ (LEDGER_STACK_DIR,
// from .stack/env), where scripts/scan-secrets, a step of make test, looks
// for any secret of the stack: the logs of every binary of a full run are
// checked, not only the services'.
func keepLogs(t testing.TB, name string, pid int, logs string) {
	stack := os.Getenv("LEDGER_STACK_DIR")
	if stack == "" {
		return
	}
	dir := filepath.Join(stack, "logs", "e2e")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	f := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), name, pid))
	if err := os.WriteFile(f, []byte(logs), 0o600); err != nil {
		t.Logf("keep logs: %v", err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls /readyz on the admin listener until 200.
func (p *proc) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("%s exited before ready: %v\n%s", p.name, err, tail(p.logs.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s not ready after %s\n%s", p.name, timeout, tail(p.logs.String(), 40))
}

func (p *proc) kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s: exit after SIGTERM: %v\n%s", p.name, err, tail(p.logs.String(), 40))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still running 60 s after SIGTERM", p.name)
	}
}

// results reads every committed command result, by command id.
func (s *stack) results(ctx context.Context) (map[string]*codec.CommandResult, error) {
	out := map[string]*codec.CommandResult{}
	err := kafkax.ReadAll(ctx, s.kafka, s.names.Results, func(r *kgo.Record) error {
		var res codec.CommandResult
		if err := codec.Default().DecodeInto(r.Value, &res); err != nil {
			return fmt.Errorf("result at %d/%d: %w", r.Partition, r.Offset, err)
		}
		out[res.CommandID] = &res
		return nil
	})
	return out, err
}

// waitSettled waits until the processor group has consumed every command
// (kafkax.CaughtUp) and no transfer is in flight, then returns the audited
// ledger.
func (s *stack) waitSettled(ctx context.Context, group string) *audit.Ledger {
	s.t.Helper()
	for {
		done, err := kafkax.CaughtUp(ctx, s.kafka, group, s.names.Commands)
		if err != nil && ctx.Err() == nil {
			s.t.Logf("caught up? %v", err)
		}
		if done {
			l, err := audit.ReadEvents(ctx, s.kafka, s.names.Events)
			if err != nil {
				s.t.Fatalf("read events: %v", err)
			}
			pending := 0
			for _, tr := range l.Transfers {
				if tr.Status() == "pending" {
					pending++
				}
			}
			// Saga commands from the last transaction may have arrived
			// since CaughtUp: only a second reading after the audit counts.
			if again, err := kafkax.CaughtUp(ctx, s.kafka, group, s.names.Commands); pending == 0 && err == nil && again {
				return l
			}
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("processor group %s did not settle: %v", group, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkExactlyOnce asserts the invariants over the events and results topics
// for a workload that was fully processed.
func (s *stack) checkExactlyOnce(ctx context.Context, l *audit.Ledger, cmds []workload.Command) {
	s.t.Helper()
	if problems := l.Check(true); len(problems) > 0 {
		s.t.Fatalf("%d invariant violations, first: %s", len(problems), strings.Join(problems[:min(20, len(problems))], "\n"))
	}
	results, err := s.results(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	accepted, rejected := 0, 0
	for _, c := range cmds {
		res, ok := results[c.ID]
		if !ok {
			s.t.Fatalf("command %s has no result", c.ID)
		}
		switch res.Status {
		case "ACCEPTED":
			accepted++
			if got, want := l.Commands[c.ID], len(res.Events); got != want {
				s.t.Fatalf("command %s: %d events in the log, result lists %d", c.ID, got, want)
			}
		default:
			rejected++
			if l.Commands[c.ID] != 0 {
				s.t.Fatalf("rejected command %s (%s) has %d events", c.ID, res.Reason, l.Commands[c.ID])
			}
		}
	}
	s.t.Logf("audit: %s; %d upstream commands (%d accepted, %d rejected), %d results in total (incl. saga)",
		l.Summary(), len(cmds), accepted, rejected, len(results))
}
