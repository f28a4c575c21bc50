package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/topology"
)

// Topology applies the ledger's declared topics under prefix, with
// partitions per aggregate-keyed topic, and the roles' ACLs on them (when
// the cluster has an authorizer), to the cluster behind adm (the shared
// broker, a private one or kfake), and fails t if it cannot.
func Topology(t testing.TB, adm *kadm.Client, prefix string, partitions int32) topology.Names {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := topology.DefaultOptions()
	o.Prefix, o.Partitions = prefix, partitions
	// As `ingest topology apply` chooses: 3 replicas on a cluster of three
	// brokers (min.insync.replicas 2), one on the single broker.
	rf, err := topology.AutoReplicationFactor(ctx, adm)
	if err != nil {
		t.Fatalf("topology %s: %v", prefix, err)
	}
	o.ReplicationFactor = rf
	plan, err := topology.MakePlan(ctx, adm, topology.Declare(o), topology.PlanOptions{Local: true, AutoReplication: true})
	if err == nil {
		err = topology.Apply(ctx, adm, plan)
	}
	if err == nil {
		if err = topology.ApplyACLs(ctx, adm, prefix, topology.DefaultPrincipals()); errors.Is(err, topology.ErrNoAuthorizer) {
			err = nil
		}
	}
	if err != nil {
		t.Fatalf("topology %s: %v", prefix, err)
	}
	return topology.NamesFor(prefix)
}
