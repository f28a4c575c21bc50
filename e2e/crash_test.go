package e2e

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/workload"
)

// processorEnv runs `ingest serve` as a processor only. A short session
// timeout lets the group notice a SIGKILLed member in seconds.
var processorEnv = []string{"GATEWAY=false", "PROCESSOR=true", "GROUP_SESSION_TIMEOUT=6s"}

// TestExactlyOnceUnderSIGKILL feeds thousands of commands while the processor
// is killed with SIGKILL several times mid-stream (so some kills land between
// a transaction's produce and its commit), restarts it, and checks from the
// outside that every command was processed exactly once.
func TestExactlyOnceUnderSIGKILL(t *testing.T) {
	s := newStack(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cmds := workload.Generate(workload.Options{Seed: 42, Accounts: 300, Commands: 6000, IDPrefix: "k-"})
	producing := make(chan error, 1)
	go func() {
		// Trickle the commands in so kills land in the middle of the stream.
		for i := 0; i < len(cmds); i += 500 {
			if err := workload.Produce(ctx, s.client, s.names.Commands, cmds[i:min(i+500, len(cmds))], nil); err != nil {
				producing <- err
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		producing <- nil
	}()

	r := rand.New(rand.NewPCG(1, 2))
	kills := 0
	for ; kills < 4; kills++ {
		// A stable instance id, as a StatefulSet replica would have: the
		// restarted process fences the killed one's open transaction.
		p := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=k"), "serve")
		p.waitReady(t, 60*time.Second)
		d := time.Duration(500+r.IntN(2000)) * time.Millisecond
		time.Sleep(d)
		p.kill(t)
		t.Logf("SIGKILL %d after %s of work", kills+1, d)
	}
	if err := <-producing; err != nil {
		t.Fatal(err)
	}
	final := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=k"), "serve")
	final.waitReady(t, 60*time.Second)
	settle, cancelSettle := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelSettle()
	l := s.waitSettled(settle, s.kafka.TopicPrefix+"processor")
	final.stop(t)
	s.checkExactlyOnce(ctx, l, cmds)

	// The last restart restored from snapshots (the processor reads no
	// events at all: every transaction snapshots what it touched).
	var snapshots, aggregates int
	for _, line := range strings.Split(final.logs.String(), "\n") {
		var rec struct {
			Msg        string `json:"msg"`
			Snapshots  int    `json:"snapshots_read"`
			Aggregates int    `json:"aggregates_restored"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "partition restored" {
			snapshots += rec.Snapshots
			aggregates += rec.Aggregates
		}
	}
	t.Logf("restart on a history of %d events: restored %d aggregates from %d snapshot records", l.Events, aggregates, snapshots)
	if aggregates == 0 || snapshots == 0 {
		t.Fatalf("want a restore from snapshots, got %d aggregates from %d snapshot records", aggregates, snapshots)
	}
}

// TestExactlyOnceAcrossRebalances: two processors share the partitions, a
// third joins and one leaves mid-stream; the same invariants hold.
func TestExactlyOnceAcrossRebalances(t *testing.T) {
	s := newStack(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cmds := workload.Generate(workload.Options{Seed: 43, Accounts: 300, Commands: 6000, IDPrefix: "r-"})
	a := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=a"), "serve")
	b := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=b"), "serve")
	a.waitReady(t, 60*time.Second)
	b.waitReady(t, 60*time.Second)

	half := len(cmds) / 2
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds[:half], nil); err != nil {
		t.Fatal(err)
	}
	c := s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=c"), "serve")
	c.waitReady(t, 60*time.Second)
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds[half:], nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	a.stop(t) // leaves the group cleanly mid-stream
	l := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	b.stop(t)
	c.stop(t)
	s.checkExactlyOnce(ctx, l, cmds)
}
