package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ChangeKind is what Apply does to one topic.
type ChangeKind int

// The changes Apply can make. None of them loses data.
const (
	Create ChangeKind = iota + 1
	AlterConfigs
	AddPartitions
)

// Change is one step of a plan.
type Change struct {
	Kind  ChangeKind
	Topic Topic
	// Configs to set (AlterConfigs): name → [current, declared].
	Configs map[string][2]string
	// FromPartitions is the current count (AddPartitions).
	FromPartitions int32
}

// ErrDestructive marks a declared change that Apply refuses to make.
var ErrDestructive = errors.New("destructive topology change refused")

// Refusal is a difference between the declaration and the cluster that
// cannot be applied safely.
type Refusal struct {
	Topic  string
	Reason string
}

func (r Refusal) Error() string { return fmt.Sprintf("%s: %s", r.Topic, r.Reason) }

// Is reports whether target is ErrDestructive.
func (r Refusal) Is(target error) bool { return target == ErrDestructive }

// Plan is the difference between a declaration and a cluster.
type Plan struct {
	Changes   []Change
	Refusals  []Refusal
	Unchanged []string
	// Warnings are risks the plan does not refuse (a single replica of
	// the source of truth, an existing topic below the replication the
	// cluster could give it).
	Warnings []string
}

// Empty reports whether the cluster already matches the declaration.
func (p Plan) Empty() bool { return len(p.Changes) == 0 && len(p.Refusals) == 0 }

// Err joins every refusal; nil when the plan can be applied.
func (p Plan) Err() error {
	errs := make([]error, len(p.Refusals))
	for i, r := range p.Refusals {
		errs[i] = r
	}
	return errors.Join(errs...)
}

// PlanOptions loosen the refusals.
type PlanOptions struct {
	// AllowPartitionIncrease permits adding partitions to aggregate-keyed
	// topics. Kafka's partitioner then sends existing aggregates to other
	// partitions, so only do it on an empty cluster or with a migration.
	AllowPartitionIncrease bool
	// AutoReplication: the declaration's replication factor was chosen
	// from the cluster's size (AutoReplicationFactor), not by a person. An
	// existing topic then keeps its replication factor (with a warning when
	// it is lower), and its min.insync.replicas follows that factor.
	AutoReplication bool
	// Local: the cluster is a local stack (loopback brokers): a single
	// replica is expected there and not warned about.
	Local bool
}

// MakePlan compares the declared topics with the cluster.
func MakePlan(ctx context.Context, adm *kadm.Client, topics []Topic, opts PlanOptions) (Plan, error) {
	if err := checkCoPartitioned(topics); err != nil {
		return Plan{}, err
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return Plan{}, fmt.Errorf("list topics: %w", err)
	}
	var existing []string
	for _, t := range topics {
		d, ok := details[t.Name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
		case d.Err != nil:
			return Plan{}, fmt.Errorf("describe topic %s: %w", t.Name, d.Err)
		default:
			existing = append(existing, t.Name)
		}
	}
	current := map[string]map[string]string{}
	if len(existing) > 0 {
		if current, err = describeConfigs(ctx, adm, existing); err != nil {
			return Plan{}, err
		}
	}

	var p Plan
	if !opts.Local {
		for _, t := range topics {
			if t.ReplicationFactor < 2 {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s is declared with a single replica: losing one broker's disk loses it (the events topic is the source of truth); run three brokers, or set the replication factor", t.Name))
				break
			}
		}
	}
	for _, t := range topics {
		if !slices.Contains(existing, t.Name) {
			p.Changes = append(p.Changes, Change{Kind: Create, Topic: t})
			continue
		}
		d := details[t.Name]
		changed := false
		have := int32(len(d.Partitions))
		switch {
		case have > t.Partitions:
			p.Refusals = append(p.Refusals, Refusal{t.Name, fmt.Sprintf("has %d partitions, declaration says %d: Kafka cannot remove partitions", have, t.Partitions)})
		case have < t.Partitions && t.AggregateKeyed && !opts.AllowPartitionIncrease:
			p.Refusals = append(p.Refusals, Refusal{t.Name, fmt.Sprintf("has %d partitions, declaration says %d: adding partitions to an aggregate-keyed topic moves existing aggregates to other partitions (pass --allow-partition-increase only on an empty cluster or with a migration)", have, t.Partitions)})
		case have < t.Partitions:
			p.Changes = append(p.Changes, Change{Kind: AddPartitions, Topic: t, FromPartitions: have})
			changed = true
		}
		switch rf := replicationFactor(d); {
		case rf == t.ReplicationFactor:
		case opts.AutoReplication:
			if rf < t.ReplicationFactor {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s has %d replica(s); the cluster could give it %d (a partition reassignment, which this tool does not do)", t.Name, rf, t.ReplicationFactor))
			}
			t.ReplicationFactor = rf
			t.Configs = maps.Clone(t.Configs)
			t.Configs["min.insync.replicas"] = minInsync(rf)
		default:
			p.Refusals = append(p.Refusals, Refusal{t.Name, fmt.Sprintf("replication factor is %d, declaration says %d: that needs a partition reassignment, which this tool does not do", rf, t.ReplicationFactor)})
		}
		diff := map[string][2]string{}
		for k, want := range t.Configs {
			if got := current[t.Name][k]; normalize(k, got) != normalize(k, want) {
				diff[k] = [2]string{got, want}
			}
		}
		if old, ok := diff["cleanup.policy"]; ok && t.Role == RoleEvents {
			p.Refusals = append(p.Refusals, Refusal{t.Name, fmt.Sprintf("cleanup.policy is %q, declaration says %q: the events topic is the source of truth and its cleanup policy is never changed by this tool", old[0], old[1])})
			delete(diff, "cleanup.policy")
		}
		if len(diff) > 0 {
			p.Changes = append(p.Changes, Change{Kind: AlterConfigs, Topic: t, Configs: diff})
			changed = true
		}
		if !changed {
			p.Unchanged = append(p.Unchanged, t.Name)
		}
	}
	return p, nil
}

func replicationFactor(d kadm.TopicDetail) int16 {
	for _, pd := range d.Partitions {
		return int16(len(pd.Replicas))
	}
	return 0
}

// normalize makes equal values compare equal: list-valued configs are
// order-insensitive.
func normalize(key, v string) string {
	if key != "cleanup.policy" {
		return v
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func checkCoPartitioned(topics []Topic) error {
	var want int32
	for _, t := range topics {
		if !t.AggregateKeyed {
			continue
		}
		if want == 0 {
			want = t.Partitions
		} else if t.Partitions != want {
			return fmt.Errorf("declaration: aggregate-keyed topics must share one partition count; %s has %d, others %d", t.Name, t.Partitions, want)
		}
	}
	return nil
}

// Apply makes the plan's changes. It refuses a plan with refusals, changing
// nothing. Creating a topic that appeared meanwhile is not an error.
func Apply(ctx context.Context, adm *kadm.Client, p Plan) error {
	if err := p.Err(); err != nil {
		return err
	}
	var created []string
	altered := map[string]map[string]string{} // topic → config → value set
	grown := map[string]int32{}               // topic → partition count set
	for _, c := range p.Changes {
		t := c.Topic
		switch c.Kind {
		case Create:
			cfg := make(map[string]*string, len(t.Configs))
			for k, v := range t.Configs {
				cfg[k] = &v
			}
			if _, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, cfg, t.Name); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create %s: %w", t.Name, err)
			}
			created = append(created, t.Name)
		case AddPartitions:
			rs, err := adm.UpdatePartitions(ctx, int(t.Partitions), t.Name)
			if err == nil {
				err = rs.Error()
			}
			if err != nil {
				return fmt.Errorf("add partitions to %s: %w", t.Name, err)
			}
			grown[t.Name] = t.Partitions
		case AlterConfigs:
			var alters []kadm.AlterConfig
			for _, k := range sortedKeys(c.Configs) {
				v := c.Configs[k][1]
				alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
			}
			rs, err := adm.AlterTopicConfigs(ctx, alters, t.Name)
			if err == nil {
				for _, r := range rs {
					if r.Err != nil {
						err = fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("alter configs of %s: %w", t.Name, err)
			}
			altered[t.Name] = map[string]string{}
			for k, v := range c.Configs {
				altered[t.Name][k] = v[1]
			}
		}
	}
	if err := awaitTopics(ctx, adm, created, nil); err != nil {
		return err
	}
	if err := awaitTopics(ctx, adm, sortedKeys(grown), grown); err != nil {
		return err
	}
	return awaitConfigs(ctx, adm, altered)
}

// awaitConfigs waits until the brokers describe every altered config with
// its new value: a broker applies config changes from the controller
// asynchronously, and a plan made right after Apply must see them.
func awaitConfigs(ctx context.Context, adm *kadm.Client, want map[string]map[string]string) error {
	if len(want) == 0 {
		return nil
	}
	return waitUntil(ctx, 100*time.Millisecond, "altered configs did not become visible", func() bool {
		current, err := describeConfigs(ctx, adm, sortedKeys(want))
		if err != nil {
			return false
		}
		for topic, configs := range want {
			for k, v := range configs {
				if have, ok := current[topic][k]; !ok || normalize(k, have) != normalize(k, v) {
					return false
				}
			}
		}
		return true
	})
}

// describeConfigs returns the configs with a value of each topic.
func describeConfigs(ctx context.Context, adm *kadm.Client, topics []string) (map[string]map[string]string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	out := make(map[string]map[string]string, len(rcs))
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
		}
		m := map[string]string{}
		for _, c := range rc.Configs {
			if c.Value != nil {
				m[c.Key] = *c.Value
			}
		}
		out[rc.Name] = m
	}
	return out, nil
}

// waitUntil calls ready every interval until it reports true or ctx ends.
func waitUntil(ctx context.Context, interval time.Duration, timeoutMsg string, ready func() bool) error {
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", timeoutMsg, ctx.Err())
		case <-time.After(interval):
		}
	}
	return nil
}

// awaitTopics waits until every topic is in the cluster metadata with a leader
// for each partition (and, for those in partitions, at least that many):
// brokers learn of new topics and partitions asynchronously, and a plan made
// right after Apply must see what Apply did.
func awaitTopics(ctx context.Context, adm *kadm.Client, topics []string, partitions map[string]int32) error {
	if len(topics) == 0 {
		return nil
	}
	return waitUntil(ctx, 200*time.Millisecond, "created or grown topics did not appear in the metadata", func() bool {
		details, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return false
		}
		for _, n := range topics {
			d, ok := details[n]
			if !ok || d.Err != nil || len(d.Partitions) == 0 || int32(len(d.Partitions)) < partitions[n] || !allLed(d.Partitions) {
				return false
			}
		}
		return true
	})
}

// Write prints the plan for people, one line per topic.
func (p Plan) Write(w io.Writer) {
	for _, c := range p.Changes {
		t := c.Topic
		switch c.Kind {
		case Create:
			var kv []string
			for _, k := range sortedKeys(t.Configs) {
				kv = append(kv, k+"="+t.Configs[k])
			}
			fmt.Fprintf(w, "+ create %s partitions=%d replication=%d %s\n", t.Name, t.Partitions, t.ReplicationFactor, strings.Join(kv, " "))
		case AddPartitions:
			fmt.Fprintf(w, "~ partitions %s %d -> %d\n", t.Name, c.FromPartitions, t.Partitions)
		case AlterConfigs:
			for _, k := range sortedKeys(c.Configs) {
				fmt.Fprintf(w, "~ alter %s %s: %q -> %q\n", t.Name, k, c.Configs[k][0], c.Configs[k][1])
			}
		}
	}
	for _, n := range p.Unchanged {
		fmt.Fprintf(w, "= %s up to date\n", n)
	}
	for _, r := range p.Refusals {
		fmt.Fprintf(w, "! refuse %s\n", r.Error())
	}
	for _, m := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
}

// AutoReplicationFactor is the replication factor the cluster behind adm
// can give: 3 with three brokers or more, else one per broker.
func AutoReplicationFactor(ctx context.Context, adm *kadm.Client) (int16, error) {
	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		return 0, fmt.Errorf("list brokers: %w", err)
	}
	return int16(max(1, min(3, len(bs)))), nil
}

// LocalBrokers reports whether every broker address is on loopback (a local
// stack).
func LocalBrokers(brokers string) bool {
	for _, b := range strings.Split(brokers, ",") {
		host, _, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil {
			host = strings.TrimSpace(b)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func allLed(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}
