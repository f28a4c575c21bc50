package processor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
	"github.com/cqrs-ledger/ledger/topology"
)

// TestExactlyOnceUnderInjectedFaults runs the processor on kfake with faults
// injected between a transaction's produce and its commit: EndTxn refused
// (the transaction's outcome is unknown to the processor, which must not
// reprocess blindly), TxnOffsetCommit and Produce answered with an error
// after the broker applied them (REQUEST_TIMED_OUT / NOT_ENOUGH_REPLICAS_
// AFTER_APPEND: the classic "did it commit?" cases), and the processor
// restarted whenever it gives up. Every command must have exactly one
// outcome and one set of events, and the ledger invariants must hold.
func TestExactlyOnceUnderInjectedFaults(t *testing.T) {
	k := newKfakeLedger(t, "fault.", 3)
	cluster, kcfg, names, cl := k.cluster, k.kafka, k.names, k.cl
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cmds := workload.Generate(workload.Options{Seed: 5, Accounts: 60, Commands: 1500, IDPrefix: "f-"})
	if err := workload.Produce(ctx, cl, names.Commands, cmds, nil); err != nil {
		t.Fatal(err)
	}

	// Faults, spread over the run: each fires on its first matching requests.
	faults := map[string]*kfake.FaultHandle{
		"EndTxn refused":                     cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, Count: 3}),
		"TxnOffsetCommit applied, timed out": cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.RequestTimedOut, Count: 3}),
		"events produce applied, error":      cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: names.Events, Err: kerr.NotEnoughReplicasAfterAppend, Count: 3}),
	}

	restarts := 0
	for {
		p, err := processor.New(processor.Config{Kafka: kcfg, InstanceID: "f", Log: testLogger(t), MaxBatch: 100})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		settled := false
		for !settled {
			select {
			case err := <-done:
				// The processor gave up (e.g. Begin after an unknown End):
				// restart it, as a supervisor would.
				t.Logf("processor stopped: %v; restarting", err)
				restarts++
				if restarts > 20 {
					t.Fatal("too many restarts")
				}
				stop()
				goto next
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
			settled = k.settled(t, ctx)
		}
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("processor stopped with %v", err)
		}
		break
	next:
	}

	l := k.checkExactlyOnce(t, ctx, cmds)
	for name, h := range faults {
		if h.Hits() != 3 {
			t.Errorf("fault %q fired %d times, want 3", name, h.Hits())
		}
	}
	t.Logf("%d restarts; %s", restarts, l.Summary())
}

// kfakeLedger is a kfake cluster with the ledger's topics (prefix, with
// partitions per aggregate-keyed topic) and a client producing to the
// commands topic; both are closed when the test ends.
type kfakeLedger struct {
	cluster *kfake.Cluster
	kafka   config.Kafka
	names   topology.Names
	cl      *kgo.Client
}

func newKfakeLedger(t *testing.T, prefix string, partitions int32, opts ...kfake.Opt) *kfakeLedger {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	k := &kfakeLedger{cluster: cluster, names: topology.NamesFor(prefix),
		kafka: config.Kafka{Brokers: strings.Join(cluster.ListenAddrs(), ","), TopicPrefix: prefix, ClientID: strings.TrimSuffix(prefix, ".") + "-test"}}
	k.cl, err = kafkax.NewClient(k.kafka, kgo.DefaultProduceTopic(k.names.Commands))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.cl.Close)
	testenv.Topology(t, kadm.NewClient(k.cl), prefix, partitions)
	return k
}

// settled reports whether the processor group (the default name) has
// processed every command and no transfer is pending.
func (k *kfakeLedger) settled(t *testing.T, ctx context.Context) bool {
	t.Helper()
	if up, err := kafkax.CaughtUp(ctx, k.kafka, k.kafka.TopicPrefix+processor.DefaultGroupSuffix, k.names.Commands); err != nil || !up {
		return false
	}
	l, err := audit.ReadEvents(ctx, k.kafka, k.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range l.Transfers {
		if tr.Status() == "pending" {
			return false
		}
	}
	return true
}

// checkExactlyOnce reads the events and results of k's ledger and fails t
// unless the ledger invariants hold and every command of cmds has exactly
// one outcome (answers to repeats aside) whose events are in the log once.
func (k *kfakeLedger) checkExactlyOnce(t *testing.T, ctx context.Context, cmds []workload.Command) *audit.Ledger {
	t.Helper()
	l, err := audit.ReadEvents(ctx, k.kafka, k.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	if problems := l.Check(true); len(problems) > 0 {
		t.Fatalf("%d invariant violations, first: %v", len(problems), problems[:min(10, len(problems))])
	}
	first := map[string]*codec.CommandResult{}
	err = kafkax.ReadAll(ctx, k.kafka, k.names.Results, func(r *kgo.Record) error {
		if answersAgain(r) {
			return nil
		}
		var res codec.CommandResult
		if err := codec.Default().DecodeInto(r.Value, &res); err != nil {
			return err
		}
		if prev, ok := first[res.CommandID]; ok && headerOf(r, processor.HeaderOrigin) == processor.OriginUpstream {
			t.Errorf("command %s has two outcomes: %s and %s", res.CommandID, prev.Status, res.Status)
		}
		first[res.CommandID] = &res
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		res, ok := first[c.ID]
		if !ok {
			t.Fatalf("command %s has no outcome", c.ID)
		}
		if want := len(res.Events); l.Commands[c.ID] != want {
			t.Fatalf("command %s: %d events, its result lists %d", c.ID, l.Commands[c.ID], want)
		}
	}
	return l
}
