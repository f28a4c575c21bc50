package testenv

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/topology"
)

// TestKafkaClusterTopology checks the three-node cluster of `scripts/stack
// up kafka-cluster` (LEDGER_TEST_KAFKA_CLUSTER): the ledger's topology,
// with the replication factor chosen from the cluster's size as `ingest
// topology apply` chooses it, gives every topic three replicas on three
// brokers and min.insync.replicas=2, and a transactional write (acks=all)
// is read back read_committed.
func TestKafkaClusterTopology(t *testing.T) {
	brokers := Setting(t, "LEDGER_TEST_KAFKA_CLUSTER", "the brokers of a three-node Kafka cluster",
		"run scripts/stack up kafka-cluster (make test-cluster), then source .stack/env")
	// The cluster has the shared broker's users, CA and certificate.
	cfg := KafkaSecurity(config.Kafka{Brokers: brokers})
	client := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kafkax.NewClient(cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	adm := kadm.NewClient(client())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatalf("list brokers of %s: %v", brokers, err)
	}
	if len(bs) != 3 {
		t.Fatalf("the cluster at %s has %d broker(s) %v, want 3", brokers, len(bs), bs.NodeIDs())
	}

	prefix := "test." + ID(t) + "."
	o := topology.DefaultOptions()
	o.Prefix, o.Partitions = prefix, 3
	if o.ReplicationFactor, err = topology.AutoReplicationFactor(ctx, adm); err != nil {
		t.Fatal(err)
	}
	declared := topology.Declare(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names := make([]string, len(declared))
		for i, d := range declared {
			names[i] = d.Name
		}
		if _, err := adm.DeleteTopics(ctx, names...); err != nil {
			t.Logf("cleanup: delete topics: %v", err)
		}
		for _, b := range topology.RoleACLs(prefix, topology.DefaultPrincipals()) {
			if _, err := adm.DeleteACLs(ctx, b); err != nil {
				t.Logf("cleanup: delete ACLs: %v", err)
			}
		}
	})
	plan, err := topology.MakePlan(ctx, adm, declared, topology.PlanOptions{AutoReplication: true, Local: true})
	if err == nil {
		err = plan.Err()
	}
	if err == nil {
		err = topology.Apply(ctx, adm, plan)
	}
	if err == nil {
		err = topology.ApplyACLs(ctx, adm, prefix, topology.DefaultPrincipals())
	}
	if err != nil {
		t.Fatalf("topology %s on %s: %v", prefix, brokers, err)
	}

	// Every topic of the prefix: three replicas on three distinct brokers
	// of the cluster, min.insync.replicas=2.
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, name := range all.Names() {
		if strings.HasPrefix(name, prefix) {
			mine = append(mine, name)
		}
	}
	if len(mine) != len(declared) {
		t.Fatalf("topics under %s: %v, want the %d declared", prefix, mine, len(declared))
	}
	details, err := adm.ListTopics(ctx, mine...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range mine {
		d := details[name]
		if d.Err != nil || len(d.Partitions) == 0 {
			t.Errorf("%s: %v, %d partitions", name, d.Err, len(d.Partitions))
			continue
		}
		for _, p := range d.Partitions.Sorted() {
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				if !slices.Contains(bs.NodeIDs(), r) {
					t.Errorf("%s/%d: replica on %d, not a broker of the cluster %v", name, p.Partition, r, bs.NodeIDs())
				}
				seen[r] = true
			}
			if len(p.Replicas) != 3 || len(seen) != 3 {
				t.Errorf("%s/%d: replicas %v, want 3 on distinct brokers", name, p.Partition, p.Replicas)
			}
			if len(p.ISR) < 2 {
				t.Errorf("%s/%d: in-sync replicas %v, want at least 2", name, p.Partition, p.ISR)
			}
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, mine...)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Errorf("%s: describe configs: %v", rc.Name, rc.Err)
			continue
		}
		got := ""
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" {
				got = c.MaybeValue()
			}
		}
		if got != "2" {
			t.Errorf("%s: min.insync.replicas=%q, want 2", rc.Name, got)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d topics under %s: replication factor 3 on brokers %v, min.insync.replicas=2", len(mine), prefix, bs.NodeIDs())

	// A transactional write (acks=all from every in-sync replica), read
	// back by a read_committed consumer.
	topic := topology.NamesFor(prefix).Commands
	value := []byte("cluster " + strconv.FormatInt(time.Now().UnixNano(), 10))
	prod := client(kgo.TransactionalID(prefix+"tx"), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("account-1"), Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	cons := client(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("the committed record was not read back from %s: %v", topic, err)
		}
		var fetchErr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = errors.Join(fetchErr, err)
			}
		})
		if fetchErr != nil {
			t.Fatalf("fetch %s: %v", topic, fetchErr)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == string(value) })
		if found {
			t.Logf("a transactional record on %s was read back read_committed", topic)
			return
		}
	}
}
