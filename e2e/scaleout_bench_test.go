package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// BenchmarkScaleOut runs processors and projectors as 1, 2 and 3 instances
// on the local clusters (scripts/stack up --cluster) over 6 partitions and
// reports the throughput per instance count. Each round has topics, Redis
// keys and a ClickHouse database of its own:
//
//  1. the processors start and join their group; then LEDGER_SCALE_COMMANDS
//     commands (default 20000, after 600 opens) are produced at once, and
//     the processors' rate is the commands over the time from the first
//     produce until the group has consumed them all;
//  2. then the projectors start (both views, cold), and their rate is the
//     events over the time from their launch until both groups have
//     caught up (startup and the group's first rebalance included).
//
// Every round checks that the group spread its partitions over all its
// members and that the events keep the ledger's rules. On a 2-core machine
// that also runs three brokers, four ClickHouse servers and six Redis nodes,
// more instances share the same two cores: the figure shows the partitions
// spreading and nothing breaking on rebalance, not a speed-up.
//
//	go test ./e2e -run '^$' -bench BenchmarkScaleOut -benchtime 1x -timeout 30m
func BenchmarkScaleOut(b *testing.B) {
	c := clusters(b)
	commands := 20000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_SCALE_COMMANDS")); err == nil && v > 0 {
		commands = v
	}
	for range b.N {
		for _, n := range []int{1, 2, 3} {
			b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) { scaleRound(b, c, n, commands) })
		}
	}
}

func scaleRound(b *testing.B, c clusterEnv, n, commands int) {
	s := newStackAt(b, c.kafka, 6)
	s.deleteTopicsOnExit(b)
	env, _ := c.storesEnvOn(b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = s.start("ingest", append([]string{"GATEWAY=false", "PROCESSOR=true", fmt.Sprintf("PROCESSOR_INSTANCE=p%d", i)}, env...), "serve")
	}
	for _, p := range procs {
		p.waitReady(b, 2*time.Minute)
	}
	group := s.kafka.TopicPrefix + "processor"
	waitMembers(b, ctx, s.adm, group, n)

	cmds := workload.Generate(workload.Options{Seed: 21, Accounts: 600, Commands: commands, IDPrefix: testenv.ID(b) + "-"})
	cpu0 := loadgen.SampleCPU()
	start := time.Now()
	if err := workload.Produce(ctx, s.client, s.names.Commands, cmds, nil); err != nil {
		b.Fatal(err)
	}
	produced := time.Since(start)
	waitCaughtUp(b, ctx, s, group)
	procTime := time.Since(start)
	procCPU := loadgen.SampleCPU().Since(cpu0)
	l := s.waitSettled(ctx, group) // the saga's own commands too, then the audit
	if len(l.Problems) > 0 {
		b.Fatalf("the events break the ledger's rules: %v", l.Problems[:min(5, len(l.Problems))])
	}
	spread := spreadOf(b, ctx, s.adm, group)

	cpu0 = loadgen.SampleCPU()
	start = time.Now()
	projs := make([]*proc, n)
	for i := range projs {
		projs[i] = s.start("projector", append([]string{fmt.Sprintf("PROJECTOR_INSTANCE=v%d", i)}, env...))
	}
	for _, g := range []string{s.kafka.TopicPrefix + "projector-redis", s.kafka.TopicPrefix + "projector-clickhouse"} {
		for {
			if done, err := kafkax.CaughtUp(ctx, s.kafka, g, s.names.Events); err == nil && done {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("group %s did not catch up", g)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	projTime := time.Since(start)
	projCPU := loadgen.SampleCPU().Since(cpu0)
	projSpread := spreadOf(b, ctx, s.adm, s.kafka.TopicPrefix+"projector-clickhouse")

	b.ReportMetric(float64(len(cmds))/procTime.Seconds(), "commands/s")
	b.ReportMetric(float64(l.Events)/projTime.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d instance(s): processors %d commands in %s (%.0f/s; produced in %s), partitions per member %v, CPU %s; projectors %d events in %s (%.0f/s, startup included), partitions per member %v, CPU %s",
		n, len(cmds), procTime.Round(time.Millisecond), float64(len(cmds))/procTime.Seconds(), produced.Round(time.Millisecond), spread, cpuLine(procCPU),
		l.Events, projTime.Round(time.Millisecond), float64(l.Events)/projTime.Seconds(), projSpread, cpuLine(projCPU))
}

// waitMembers waits until group is stable with n members.
func waitMembers(b *testing.B, ctx context.Context, adm *kadm.Client, group string, n int) {
	b.Helper()
	for {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.State == "Stable" && len(g.Members) == n {
				return
			}
		}
		if ctx.Err() != nil {
			b.Fatalf("group %s never had %d stable members", group, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// spreadOf is the partitions each member of group holds; it fails when a
// member holds none (the partitions did not spread).
func spreadOf(b *testing.B, ctx context.Context, adm *kadm.Client, group string) []int {
	b.Helper()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		b.Fatal(err)
	}
	var out []int
	for _, m := range gs[group].Members {
		k := 0
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				k += len(t.Partitions)
			}
		}
		out = append(out, k)
		if k == 0 {
			b.Errorf("group %s: member %s holds no partition", group, m.MemberID)
		}
	}
	return out
}

// cpuLine is the machine's utilisation over a stretch and the CPU seconds of
// each role in it.
func cpuLine(c loadgen.CPU) string {
	roles := make([]string, 0, len(c.ByRole))
	for r := range c.ByRole {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	var parts []string
	for _, r := range roles {
		if c.ByRole[r] >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1fs", r, c.ByRole[r]))
		}
	}
	busy := 0.0
	if c.Total > 0 {
		busy = 100 * c.Busy / c.Total
	}
	return fmt.Sprintf("%.0f%% busy (%s)", busy, strings.Join(parts, ", "))
}
