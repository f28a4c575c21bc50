package topology_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

func TestDeclareCoPartitioned(t *testing.T) {
	o := topology.DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("default options invalid: %v", err)
	}
	topics := topology.Declare(o)
	if len(topics) != 5 {
		t.Fatalf("want 5 topics, got %d", len(topics))
	}
	for _, tp := range topics {
		if tp.Partitions != o.Partitions {
			t.Errorf("%s: %d partitions, want %d", tp.Name, tp.Partitions, o.Partitions)
		}
	}
	if got := topics[1]; got.Role != topology.RoleEvents || got.Configs["cleanup.policy"] != "compact" {
		t.Errorf("events topic: %+v", got)
	}
}

func TestOptionsValidateListsEveryProblem(t *testing.T) {
	err := topology.Options{Partitions: 0, ReplicationFactor: -1}.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"partitions", "replication factor", "command retention", "result retention", "dlq retention"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestApplyOnBroker runs plan/apply against the real broker: everything is
// created with the declared configs, a second apply is a no-op, and
// destructive changes are refused without touching the cluster.
func TestApplyOnBroker(t *testing.T) {
	adm := kadm.NewClient(testenv.KafkaClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	o := topology.DefaultOptions()
	o.Prefix = testenv.TopicPrefix(t)
	o.Partitions = 3
	topics := topology.Declare(o)

	plan, err := topology.MakePlan(ctx, adm, topics, topology.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	plan.Write(&out)
	t.Logf("first plan:\n%s", out.String())
	if len(plan.Changes) != len(topics) || len(plan.Refusals) != 0 {
		t.Fatalf("first plan: want %d creates, got %+v", len(topics), plan)
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		t.Fatalf("apply: %v", err)
	}

	// Read every topic back: partitions, replication and each declared config.
	for _, tp := range topics {
		// Apply waits for new topics to reach the metadata, so no retry here.
		details, err := adm.ListTopics(ctx, tp.Name)
		if err != nil {
			t.Fatal(err)
		}
		d := details[tp.Name]
		if d.Err != nil || int32(len(d.Partitions)) != tp.Partitions {
			t.Fatalf("%s: err %v, %d partitions, want %d", tp.Name, d.Err, len(d.Partitions), tp.Partitions)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, tp.Name)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range rcs[0].Configs {
			if c.Value != nil {
				got[c.Key] = *c.Value
			}
		}
		for k, want := range tp.Configs {
			if got[k] != want {
				t.Errorf("%s: %s = %q, want %q", tp.Name, k, got[k], want)
			}
		}
	}

	again, err := topology.MakePlan(ctx, adm, topics, topology.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() || len(again.Unchanged) != len(topics) {
		t.Fatalf("second plan is not a no-op: %+v", again)
	}
	if err := topology.Apply(ctx, adm, again); err != nil {
		t.Fatalf("second apply: %v", err)
	}

	// A config drift is planned and repaired.
	drift := topology.Declare(o)
	drift[0].Configs["retention.ms"] = "86400000"
	p, err := topology.MakePlan(ctx, adm, drift, topology.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 1 || p.Changes[0].Kind != topology.AlterConfigs || len(p.Refusals) != 0 {
		t.Fatalf("retention change: want one AlterConfigs, got %+v", p)
	}
	if err := topology.Apply(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	if p, _ = topology.MakePlan(ctx, adm, drift, topology.PlanOptions{}); !p.Empty() {
		t.Fatalf("after altering retention the plan is not empty: %+v", p)
	}

	destructive := []struct {
		name   string
		mutate func(o *topology.Options, ts []topology.Topic) []topology.Topic
	}{
		{"fewer partitions", func(o *topology.Options, _ []topology.Topic) []topology.Topic {
			o.Partitions = 2
			return topology.Declare(*o)
		}},
		{"more partitions on aggregate-keyed topics", func(o *topology.Options, _ []topology.Topic) []topology.Topic {
			o.Partitions = 6
			return topology.Declare(*o)
		}},
		{"events cleanup policy", func(_ *topology.Options, ts []topology.Topic) []topology.Topic {
			ts[1].Configs["cleanup.policy"] = "delete"
			return ts
		}},
		{"replication factor", func(o *topology.Options, _ []topology.Topic) []topology.Topic {
			o.ReplicationFactor = 3
			return topology.Declare(*o)
		}},
	}
	for _, tc := range destructive {
		t.Run(tc.name, func(t *testing.T) {
			oo := o
			ts := tc.mutate(&oo, topology.Declare(o))
			p, err := topology.MakePlan(ctx, adm, ts, topology.PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Refusals) == 0 || !errors.Is(p.Err(), topology.ErrDestructive) {
				t.Fatalf("want a refusal, got %+v", p)
			}
			if err := topology.Apply(ctx, adm, p); !errors.Is(err, topology.ErrDestructive) {
				t.Fatalf("apply of a refused plan: want ErrDestructive, got %v", err)
			}
			t.Logf("refused: %v", p.Err())
		})
	}
	// Nothing was changed by the refused plans.
	if p, _ = topology.MakePlan(ctx, adm, drift, topology.PlanOptions{}); !p.Empty() {
		t.Fatalf("a refused plan changed the cluster: %+v", p)
	}
}

// TestAutoReplication: the replication factor follows the cluster (one
// broker here: 1), a single replica is warned about outside a local stack,
// and an existing topic with fewer replicas than the cluster could give is
// a warning, not a refusal, and keeps a min.insync.replicas it can meet.
func TestAutoReplication(t *testing.T) {
	adm := kadm.NewClient(testenv.KafkaClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rf, err := topology.AutoReplicationFactor(ctx, adm)
	if err != nil || rf != 1 {
		t.Fatalf("auto replication factor on one broker: %d, %v", rf, err)
	}
	if !topology.LocalBrokers("127.0.0.1:9092,localhost:9093,[::1]:9094") || topology.LocalBrokers("127.0.0.1:9092,kafka-0.prod:9092") {
		t.Fatal("LocalBrokers")
	}
	o := topology.DefaultOptions()
	o.Prefix, o.Partitions = testenv.TopicPrefix(t), 2
	plan, err := topology.MakePlan(ctx, adm, topology.Declare(o), topology.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Warnings) == 0 || !strings.Contains(plan.Warnings[0], "single replica") {
		t.Fatalf("no single-replica warning outside a local stack: %v", plan.Warnings)
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	// As if the cluster had grown to three brokers: the existing topics keep
	// their one replica, with a warning, and min.insync.replicas stays 1.
	o.ReplicationFactor = 3
	grown, err := topology.MakePlan(ctx, adm, topology.Declare(o), topology.PlanOptions{AutoReplication: true, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(grown.Refusals) != 0 || len(grown.Changes) != 0 || len(grown.Warnings) != len(topology.Declare(o)) {
		t.Fatalf("plan after growth: %+v", grown)
	}
	// Without AutoReplication a person asked for 3: refused.
	asked, err := topology.MakePlan(ctx, adm, topology.Declare(o), topology.PlanOptions{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked.Refusals) == 0 {
		t.Fatal("a declared replication change was not refused")
	}
}
