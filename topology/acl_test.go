package topology_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/topology"
)

// role is one principal of the ledger and what its ACLs allow it.
type role struct {
	user                string
	write, read, descr  []string // topic roles
	groups, txnPrefixes []string // suffixes after the topic prefix
}

var roles = []role{
	{user: "gateway", write: []string{topology.RoleCommands}, read: []string{topology.RoleResults},
		descr: []string{topology.RoleCommands, topology.RoleResults}},
	{user: "processor",
		write:  []string{topology.RoleCommands, topology.RoleEvents, topology.RoleSnapshots, topology.RoleResults, topology.RoleDLQ},
		read:   []string{topology.RoleCommands, topology.RoleSnapshots, topology.RoleResults, topology.RoleEvents},
		descr:  []string{topology.RoleCommands, topology.RoleEvents, topology.RoleSnapshots, topology.RoleResults, topology.RoleDLQ},
		groups: []string{"processor"}, txnPrefixes: []string{"processor-"}},
	{user: "projector", read: []string{topology.RoleEvents, topology.RoleResults},
		descr: []string{topology.RoleEvents, topology.RoleResults}, groups: []string{"projector-"}},
	{user: "upstream", write: []string{topology.RoleCommands}, descr: []string{topology.RoleCommands}},
}

var allTopics = []string{topology.RoleCommands, topology.RoleEvents, topology.RoleSnapshots, topology.RoleResults, topology.RoleDLQ}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// roleClient connects to the shared broker as user (its password from
// LEDGER_KAFKA_<USER>_PASSWORD, which scripts/stack writes to .stack/env).
func roleClient(t *testing.T, user, password string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cfg := testenv.KafkaSecurity(config.Kafka{Brokers: testenv.Kafka(t)})
	cfg.SASLUser, cfg.SASLPassword = user, password
	cl, err := kafkax.NewClient(cfg, append([]kgo.Opt{kgo.RequestRetries(1), kgo.RetryTimeout(3 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func securedBroker(t *testing.T) config.Kafka {
	t.Helper()
	cfg := testenv.KafkaSecurity(config.Kafka{Brokers: testenv.Kafka(t)})
	if cfg.SASLMechanism == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("the shared broker is not secured (KAFKA_SASL_MECHANISM unset): scripts/stack up secures it; source .stack/env")
		}
		t.Skip("the shared broker is not secured: run scripts/stack up and source .stack/env")
	}
	return cfg
}

// TestRolesAreConfinedToTheirACLs: each role's principal is refused every
// topic, group and transactional id outside its role (produce, fetch,
// describe, offset commit, transactional producer), is allowed what its
// role needs, and a client without TLS or with a wrong password cannot
// connect at all. The number of denied cases is logged (the README quotes
// it).
func TestRolesAreConfinedToTheirACLs(t *testing.T) {
	sec := securedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prefix := testenv.TopicPrefix(t)
	testenv.Topology(t, kadm.NewClient(testenv.KafkaClient(t)), prefix, 2)
	name := func(r string) string { return prefix + r }

	denied, allowed := 0, 0
	deny := func(what string, err error, want ...error) {
		t.Helper()
		denied++
		for _, w := range want {
			if errors.Is(err, w) {
				return
			}
		}
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
	allow := func(what string, err error) {
		t.Helper()
		allowed++
		if err != nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
	}

	for _, r := range roles {
		pass := os.Getenv("LEDGER_KAFKA_" + strings.ToUpper(r.user) + "_PASSWORD")
		if pass == "" {
			t.Fatalf("LEDGER_KAFKA_%s_PASSWORD is not set: source .stack/env", strings.ToUpper(r.user))
		}
		cl := roleClient(t, r.user, pass)
		adm := kadm.NewClient(cl)
		for _, tp := range allTopics {
			topic := name(tp)
			// Describe (metadata).
			md, err := adm.Metadata(ctx, topic)
			if err == nil {
				err = md.Topics[topic].Err
			}
			if has(r.descr, tp) {
				allow(r.user+" describe "+tp, err)
			} else {
				deny(r.user+" describe "+tp, err, kerr.TopicAuthorizationFailed)
			}
			// Produce.
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err = cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Key: []byte("acl-test"), Value: []byte("x")}).FirstErr()
			pcancel()
			if has(r.write, tp) {
				if tp != topology.RoleCommands { // the processor's writes are transactional: checked below
					allowed++
					continue
				}
				allow(r.user+" produce "+tp, err)
			} else {
				// Without Write on any topic the idempotent producer is
				// refused its producer id first (IdempotentWrite on the
				// cluster): denied either way.
				deny(r.user+" produce "+tp, err, kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed)
			}
			// Fetch (read).
			err = fetch(ctx, cl, topic)
			if has(r.read, tp) {
				allow(r.user+" fetch "+tp, err)
			} else {
				deny(r.user+" fetch "+tp, err, kerr.TopicAuthorizationFailed)
			}
		}
		// Offset commits: its own groups only, for a topic it may describe
		// (the request names the topic by id, which it must be able to see).
		for _, g := range []string{"processor", "projector-redis", "projector-clickhouse-g3", "other", "gateway"} {
			group := name(g)
			ok := false
			for _, mine := range r.groups {
				ok = ok || group == name(mine) || (strings.HasSuffix(mine, "-") && strings.HasPrefix(group, name(mine)))
			}
			var offs kadm.Offsets
			offs.Add(kadm.Offset{Topic: name(r.descr[0]), Partition: 0, At: 0, LeaderEpoch: -1})
			res, err := adm.CommitOffsets(ctx, group, offs)
			if err == nil {
				err = res.Error()
			}
			switch {
			case !ok:
				deny(r.user+" commit in group "+g, err, kerr.GroupAuthorizationFailed)
			default:
				allow(r.user+" commit in group "+g, err)
			}
		}
		// Transactional ids: its own prefix only.
		for _, id := range []string{"processor-x", "other", "projector-x"} {
			err := initTxn(ctx, cl, name(id))
			mine := false
			for _, p := range r.txnPrefixes {
				mine = mine || strings.HasPrefix(id, p)
			}
			if mine {
				allow(r.user+" transactional id "+id, err)
			} else {
				deny(r.user+" transactional id "+id, err, kerr.TransactionalIDAuthorizationFailed)
			}
		}
		// Nothing outside the ledger's prefix: another prefix's commands.
		other := "other." + prefix + topology.RoleCommands
		md, err := adm.Metadata(ctx, other)
		if err == nil {
			err = md.Topics[other].Err
		}
		deny(r.user+" describe a topic of another prefix", err, kerr.TopicAuthorizationFailed)
	}

	// The processor writes its topics inside transactions of its own id.
	proc := roleClient(t, "processor", os.Getenv("LEDGER_KAFKA_PROCESSOR_PASSWORD"), kgo.TransactionalID(name("processor-acl")))
	if err := proc.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{topology.RoleEvents, topology.RoleSnapshots, topology.RoleResults, topology.RoleDLQ, topology.RoleCommands} {
		allow("processor transactional produce "+tp, proc.ProduceSync(ctx, &kgo.Record{Topic: name(tp), Key: []byte("k"), Value: []byte("v")}).FirstErr())
	}
	allow("processor commit transaction", proc.EndTransaction(ctx, kgo.TryAbort))

	// Connections: no TLS, or a wrong password, get nothing.
	plain, err := kgo.NewClient(kgo.SeedBrokers(sec.BrokerList()...), kgo.RequestRetries(0), kgo.DialTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	err = plain.Ping(pctx)
	pcancel()
	denied++
	if err == nil {
		t.Error("a plaintext client without TLS or SASL could talk to the broker")
	}
	// ping connects with cfg and returns what the broker answered.
	ping := func(cfg config.Kafka) error {
		cl, err := kafkax.NewClient(cfg, kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return cl.Ping(pctx)
	}
	bad := sec
	bad.SASLUser, bad.SASLPassword = "admin", "wrong-password"
	deny("admin with a wrong password", ping(bad), kerr.SaslAuthenticationFailed)
	// TLS with SASL PLAIN is not enabled: only SCRAM-SHA-512.
	plainMech := sec
	plainMech.SASLMechanism = "PLAIN"
	deny("SASL PLAIN", ping(plainMech), kerr.UnsupportedSaslMechanism)

	t.Logf("%d denied cases, all denied; %d allowed cases, all allowed", denied, allowed)
	fmt.Fprintf(os.Stderr, "ACL cases: %d denied, %d allowed\n", denied, allowed)
}

// fetch reads partition 0 of topic from offset 0 once and returns the
// error the broker gave, if any.
func fetch(ctx context.Context, cl *kgo.Client, topic string) error {
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return err
	}
	td := md.Topics[topic]
	if td.Err != nil {
		return td.Err
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 10
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, td.ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}

// initTxn asks for a producer id under transactional id id.
func initTxn(ctx context.Context, cl *kgo.Client, id string) error {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = 10000
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}
