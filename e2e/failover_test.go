package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/loadgen"
	"github.com/cqrs-ledger/ledger/internal/projection"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// The failover suite runs the binaries, unchanged, on the local stack's
// clusters (scripts/stack up --cluster; make test-cluster): three KRaft
// brokers with replication factor 3 and min.insync.replicas 2, a Redis
// Cluster of three masters with a replica each, and ClickHouse as two
// shards of two replicas behind Distributed tables.

// clusterEnv is where the clusters are: brokers, Redis seed nodes,
// ClickHouse servers and cluster name.
type clusterEnv struct {
	kafka, redis string
	ch           []string
	chCluster    string
}

func clusters(t testing.TB) clusterEnv {
	t.Helper()
	how := "run scripts/stack up --cluster, then source .stack/env (make test-cluster does both)"
	c := clusterEnv{
		kafka: testenv.Setting(t, "LEDGER_TEST_KAFKA_CLUSTER", "the brokers of a three-node Kafka cluster", how),
		redis: testenv.Setting(t, "LEDGER_TEST_REDIS_CLUSTER", "the seed nodes of a Redis Cluster", how),
	}
	c.ch, c.chCluster = testenv.ClickHouseCluster(t)
	return c
}

// storesEnvOn is storesEnv on the clusters: a key prefix and a database of
// the test's own, the writes waiting for a replica (Redis WAIT) and for
// both replicas of a shard (ClickHouse's insert quorum, the default).
func (c clusterEnv) storesEnvOn(t testing.TB) (env []string, db string) {
	t.Helper()
	_, db, _ = testenv.ClickHouseClusterDB(t)
	prefix := "test:" + testenv.ID(t) + ":"
	t.Cleanup(func() { unlinkClusterPrefix(t, c.redis, prefix) })
	return []string{
		"REDIS_ADDR=" + c.redis, "REDIS_CLUSTER=true", "REDIS_KEY_PREFIX=" + prefix, "REDIS_WAIT_REPLICAS=1",
		"CLICKHOUSE_ADDR=" + strings.Join(c.ch, ","), "CLICKHOUSE_CLUSTER=" + c.chCluster, "CLICKHOUSE_DATABASE=" + db,
	}, db
}

// unlinkClusterPrefix deletes the test's keys on every master.
func unlinkClusterPrefix(t testing.TB, addrs, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","),
		Username: os.Getenv("REDIS_USERNAME"), Password: os.Getenv("REDIS_PASSWORD")})
	defer cc.Close()
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := node.Unlink(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	})
	if err != nil {
		t.Logf("cleanup: redis keys %s*: %v", prefix, err)
	}
}

// stackCmd runs scripts/stack (kill NAME, up SERVICE) on the test's stack.
func stackCmd(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../scripts/stack", args...)
	if dir := os.Getenv("LEDGER_STACK_DIR"); dir != "" {
		cmd.Env = append(os.Environ(), "STACK_DIR="+dir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/stack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// deleteTopicsOnExit deletes the test's topics on the cluster (TopicPrefix
// cleans the single broker only).
func (s *stack) deleteTopicsOnExit(t testing.TB) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics, err := s.adm.ListTopics(ctx)
		if err != nil {
			return
		}
		var mine []string
		for _, n := range topics.Names() {
			if strings.HasPrefix(n, s.kafka.TopicPrefix) {
				mine = append(mine, n)
			}
		}
		if len(mine) > 0 {
			_, _ = s.adm.DeleteTopics(ctx, mine...)
		}
	})
}

// fault is one injected failure and when it happened.
type fault struct {
	name            string
	at, restoredAt  time.Time
	outage, slowest time.Duration // longest time without a processed command; slowest command sent in the window
}

// timeline records each command that came back processed (accepted or
// rejected): when it was sent and when its answer came, in answer order,
// to measure the outage a fault caused.
type timeline struct {
	mu      sync.Mutex
	answers []answer
}

type answer struct{ sent, done time.Time }

func (tl *timeline) observe(_ workload.Command, out loadgen.Outcome, sent time.Time, err error) {
	if err != nil || (out.Result != "accepted" && out.Result != "rejected") {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.answers = append(tl.answers, answer{sent: sent, done: time.Now()})
}

// measure fills in f's outage: the longest stretch in [f.at, until) with no
// command coming back processed, and the slowest command sent in it.
func (tl *timeline) measure(f *fault, until time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	last := f.at
	for _, a := range tl.answers { // in answer order: observe appends as they come
		if !a.sent.Before(f.at) && a.sent.Before(until) {
			f.slowest = max(f.slowest, a.done.Sub(a.sent))
		}
		if a.done.Before(f.at) || a.done.After(until) {
			continue
		}
		f.outage = max(f.outage, a.done.Sub(last))
		last = a.done
	}
	f.outage = max(f.outage, until.Sub(last))
}

// TestFailoverUnderLoad: while a steady workload runs through the HTTP API,
// the partition leader broker is SIGKILLed and brought back (twice), a Redis
// master is SIGKILLed (its replica takes over) and brought back as a
// replica, and one ClickHouse replica of each shard is SIGKILLed and
// brought back. At the end every account, transfer and analytics total
// through the query API equals an independent model built from the
// gateway's answers, the views hold exactly the committed events (none
// aborted, none twice), and each fault's outage is reported.
func TestFailoverUnderLoad(t *testing.T) {
	began := time.Now().UTC()
	c := clusters(t)
	s := newStackAt(t, c.kafka, 6)
	s.deleteTopicsOnExit(t)
	env, db := c.storesEnvOn(t)
	env = append(env, "GROUP_SESSION_TIMEOUT=6s")
	ingest, projector, query := s.start("ingest", env, "serve"), s.start("projector", env), s.start("queryapi", env)
	for _, p := range []*proc{ingest, projector, query} {
		p.waitReady(t, 120*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	rate := 40.0
	if v, err := strconv.ParseFloat(os.Getenv("LEDGER_FAILOVER_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	// The load runs until 15 s after the last fault is repaired (at most
	// 10 minutes of commands are generated).
	wl := workload.Options{Seed: 15, Accounts: 150, Commands: int(rate * 600), IDPrefix: testenv.ID(t) + "-"}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	tl := &timeline{}
	var undecided []workload.Command // pending or failed: the outcome is asked for at the end
	var undecidedMu sync.Mutex
	cl := loadgen.NewClient("http://"+ingest.addr, "http://"+query.addr, apiTokens, 64)
	loaded := make(chan *loadgen.Report, 1)
	loadErr := make(chan error, 1)
	go func() {
		rep, err := loadgen.Run(loadCtx, cl, loadgen.Options{Workload: wl, Rate: rate, Concurrency: 64, Wait: 10 * time.Second,
			Observe: func(cmd workload.Command, out loadgen.Outcome, sent time.Time, err error) {
				tl.observe(cmd, out, sent, err)
				if err != nil || (out.Result != "accepted" && out.Result != "rejected") {
					undecidedMu.Lock()
					undecided = append(undecided, cmd)
					undecidedMu.Unlock()
				}
			}})
		loaded <- rep
		loadErr <- err
	}()

	// The faults, one after the other while the load runs.
	var faults []*fault
	inject := func(name string, kill func(), restore func()) {
		f := &fault{name: name, at: time.Now()}
		kill()
		time.Sleep(8 * time.Second)
		restore()
		f.restoredAt = time.Now()
		faults = append(faults, f)
		t.Logf("%s: killed, restored after %s", name, f.restoredAt.Sub(f.at).Round(100*time.Millisecond))
		time.Sleep(12 * time.Second)
	}
	time.Sleep(20 * time.Second) // the accounts opened, the load steady
	for i := range 2 {
		leader := s.leaderOf(ctx, t, s.names.Commands, 0)
		inject(fmt.Sprintf("kafka: the leader of %s/0 (broker %d), kill %d", s.names.Commands, leader, i+1),
			func() { stackCmd(t, "kill", fmt.Sprintf("kafka-cluster-%d", leader)) },
			func() { stackCmd(t, "up", "kafka-cluster") })
	}
	master := redisMaster(ctx, t, c.redis)
	inject("redis: master "+master,
		func() { stackCmd(t, "kill", "redis-cluster-"+master[strings.LastIndexByte(master, ':')+1:]) },
		func() { waitRedisClusterOK(ctx, t, c.redis); stackCmd(t, "up", "redis-cluster") })
	inject("clickhouse: a replica of each shard ("+c.ch[0]+", "+c.ch[2]+")",
		func() { stackCmd(t, "kill", "clickhouse-cluster-1"); stackCmd(t, "kill", "clickhouse-cluster-3") },
		func() { stackCmd(t, "up", "clickhouse-cluster") })

	time.Sleep(15 * time.Second)
	end := time.Now()
	stopLoad() // the commands in flight end as errors; their outcome is asked for below
	rep := <-loaded
	if err := <-loadErr; err != nil && ctx.Err() != nil {
		t.Fatalf("load: %v", err)
	}
	for i, f := range faults {
		until := end
		if i+1 < len(faults) {
			until = faults[i+1].at
		}
		tl.measure(f, until)
	}
	t.Logf("load: %d commands at %.0f/s: %d accepted, %d rejected, %d pending, %d errors; write p50 %s p99 %s",
		rep.Sent, rate, rep.Accepted, rep.Rejected, rep.Pending, rep.Errors, rep.Write.Percentile(50), rep.Write.Percentile(99))
	for _, f := range faults {
		t.Logf("outage | %-60s | %5.1f s without a processed command | slowest command %5.1f s", f.name, f.outage.Seconds(), f.slowest.Seconds())
	}

	// Settle: the processor caught up on the log, then the commands whose
	// answer was lost are asked for (the outcome the pipeline recorded).
	settle, cancelSettle := context.WithTimeout(ctx, 6*time.Minute)
	defer cancelSettle()
	l := s.waitSettled(settle, s.kafka.TopicPrefix+"processor")
	if len(l.Problems) > 0 {
		t.Fatalf("the events topic breaks the ledger's rules: %v", l.Problems[:min(5, len(l.Problems))])
	}
	// The outcomes, in rounds: one still on its way shows within seconds;
	// "unknown" after that means it never reached the log.
	outcomes := map[string]loadgen.Outcome{}
	for round := 0; round < 10; round++ {
		left := 0
		for _, cmd := range undecided {
			if o, ok := outcomes[cmd.ID]; cmd.Duplicate || (ok && o.Result != "unknown" && o.Result != "") {
				continue
			}
			var out loadgen.Outcome
			if code, err := cl.Get(settle, "/v1/commands/"+url.PathEscape(cmd.ID), nil, &out); err != nil || code != 200 {
				t.Fatalf("command %s: HTTP %d %v", cmd.ID, code, err)
			}
			outcomes[cmd.ID] = out
			if out.Result != "accepted" && out.Result != "rejected" {
				left++
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	resolved := 0
	for _, cmd := range undecided {
		if out, ok := outcomes[cmd.ID]; ok && !cmd.Duplicate {
			if out.Result == "accepted" || out.Result == "rejected" {
				resolved++
			}
			rep.Model.Record(cmd, out)
		}
	}
	t.Logf("%d commands without an answer during the faults; the pipeline decided %d of them", len(undecided), resolved)
	if err := rep.Model.Settle(settle, cl, 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	// Every account through the query API (Redis) and the log (audit)
	// equals the model.
	bad := 0
	for id, want := range rep.Model.Accounts {
		var got struct {
			Balance int64 `json:"balance"`
			Version int64 `json:"version"`
		}
		code, err := cl.Get(settle, "/v1/accounts/"+url.PathEscape(id), url.Values{"min_version": {strconv.FormatInt(want.Version, 10)}, "wait": {"10s"}}, &got)
		logged := l.Accounts[id]
		if err != nil || code != 200 || got.Balance != want.Balance || got.Version != want.Version || logged == nil || logged.Balance != want.Balance || logged.Version != want.Version {
			bad++
			if bad <= 5 {
				t.Errorf("account %s: query API %d/v%d (HTTP %d, %v), log %+v, model %d/v%d", id, got.Balance, got.Version, code, err, logged, want.Balance, want.Version)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d accounts differ from the model", bad, len(rep.Model.Accounts))
	}

	// Analytics (ClickHouse, through the Distributed tables) equal the model.
	from, to := began.Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var body struct {
			Currencies []projection.CurrencySummary `json:"currencies"`
		}
		code, err := cl.Get(settle, "/v1/analytics/summary", url.Values{"from": {from}, "to": {to}}, &body)
		diff := summaryDiff(rep.Model, body.Currencies)
		if err == nil && code == 200 && diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("analytics summary (HTTP %d, %v) differs from the model: %s", code, err, diff)
		}
		time.Sleep(time.Second)
	}
	// The time series through the query API (on a cluster: from
	// ledger_events), summed over the run, equal the model.
	for cur, w := range rep.Model.Totals {
		for metric, want := range map[string]int64{"deposits": w.Deposits, "withdrawals": w.Withdrawals, "transfers": w.TransfersOut} {
			var body struct {
				Points []projection.Point `json:"points"`
			}
			code, err := cl.Get(settle, "/v1/analytics/timeseries", url.Values{"metric": {metric}, "interval": {"24h"}, "from": {from}, "to": {to}, "currency": {cur}}, &body)
			var got int64
			for _, p := range body.Points {
				got += p.Value
			}
			if err != nil || code != 200 || got != want {
				t.Errorf("time series %s %s: %d (HTTP %d, %v), model %d", cur, metric, got, code, err, want)
			}
		}
	}
	c.checkClickHouseHoldsTheLog(t, settle, db, l, rep.Model)
}

// leaderOf is the broker leading partition p of topic.
func (s *stack) leaderOf(ctx context.Context, t *testing.T, topic string, p int32) int32 {
	t.Helper()
	md, err := s.adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := md[topic].Partitions[p]
	if !ok {
		t.Fatalf("no partition %d of %s: %v", p, topic, md[topic].Err)
	}
	return d.Leader
}

// redisMaster is the address of one master of the Redis Cluster.
func redisMaster(ctx context.Context, t *testing.T, addrs string) string {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","),
		Username: os.Getenv("REDIS_USERNAME"), Password: os.Getenv("REDIS_PASSWORD")})
	defer cc.Close()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil || len(slots) == 0 {
		t.Fatalf("redis cluster slots: %v", err)
	}
	return slots[0].Nodes[0].Addr
}

// waitRedisClusterOK waits until the cluster serves every slot again (a
// replica took over the killed master's).
func waitRedisClusterOK(ctx context.Context, t *testing.T, addrs string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range strings.Split(addrs, ",") {
		rdb := redis.NewClient(&redis.Options{Addr: a, Username: os.Getenv("REDIS_USERNAME"), Password: os.Getenv("REDIS_PASSWORD")})
		info, err := rdb.ClusterInfo(ctx).Result()
		_ = rdb.Close()
		if err != nil {
			continue // the killed node
		}
		for !strings.Contains(info, "cluster_state:ok") {
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster not ok a minute after a master was killed:\n%s", info)
			}
			time.Sleep(500 * time.Millisecond)
			rdb := redis.NewClient(&redis.Options{Addr: a, Username: os.Getenv("REDIS_USERNAME"), Password: os.Getenv("REDIS_PASSWORD")})
			info, _ = rdb.ClusterInfo(ctx).Result()
			_ = rdb.Close()
		}
		return
	}
	t.Fatal("no Redis Cluster node answers")
}

// summaryDiff compares the analytics summary with the model's totals; ""
// when they agree.
func summaryDiff(m *loadgen.Model, got []projection.CurrencySummary) string {
	var diffs []string
	seen := map[string]bool{}
	for _, g := range got {
		seen[g.Currency] = true
		w := m.Totals[g.Currency]
		if w == nil {
			w = &loadgen.ModelTotals{}
		}
		if g.Deposits != w.Deposits || g.Withdrawals != w.Withdrawals || g.Transfers != w.TransfersOut ||
			g.TransfersCredited != w.Credited || g.TransfersRefunded != w.Refunded ||
			g.DepositCount != int64(w.DepositCount) || g.WithdrawalCount != int64(w.WithdrawalCount) || g.TransferCount != int64(w.TransferCount) {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, model %+v", g.Currency, g, *w))
		}
	}
	for cur, w := range m.Totals {
		if !seen[cur] && (w.Deposits != 0 || w.Withdrawals != 0 || w.TransfersOut != 0) {
			diffs = append(diffs, cur+": missing from the summary")
		}
	}
	return strings.Join(diffs, "; ")
}

// checkClickHouseHoldsTheLog: the ClickHouse view holds each committed event
// exactly once (no aborted event, no event inserted twice, which would also
// count twice in the summing hourly volume) and its hourly volume equals the
// model.
func (c clusterEnv) checkClickHouseHoldsTheLog(t *testing.T, ctx context.Context, db string, l *audit.Ledger, m *loadgen.Model) {
	t.Helper()
	conn := testenv.ClickHouseNode(t, c.ch[1], db)
	deadline := time.Now().Add(time.Minute)
	for {
		var rows, distinct uint64
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM ledger_events").Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		if rows == uint64(l.Events) && distinct == rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d event rows (%d distinct), the log %d committed events", rows, distinct, l.Events)
		}
		time.Sleep(time.Second)
	}
	ids, err := conn.Query(ctx, "SELECT event_id FROM ledger_events")
	if err != nil {
		t.Fatal(err)
	}
	defer ids.Close()
	for ids.Next() {
		var id string
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !l.HasEvent(id) {
			t.Fatalf("ClickHouse holds event %s, which is not in the committed log (an aborted transaction's?)", id)
		}
	}
	// The hourly table (a materialized view) can miss the events of an
	// INSERT whose server was killed between storing them and feeding the
	// view (docs/scale-out.md): measured and reported, not asserted.
	for cur, w := range m.Totals {
		var dep, wd int64
		q := "SELECT sumIf(volume, type = 'FundsDeposited'), sumIf(volume, type = 'FundsWithdrawn') FROM volume_hourly WHERE currency = ?"
		if err := conn.QueryRow(ctx, q, cur).Scan(&dep, &wd); err != nil {
			t.Fatal(err)
		}
		if dep > w.Deposits || wd > w.Withdrawals {
			t.Errorf("%s: the hourly table counted events twice: deposits %d withdrawals %d, model %d %d", cur, dep, wd, w.Deposits, w.Withdrawals)
		} else if dep != w.Deposits || wd != w.Withdrawals {
			t.Logf("%s: the hourly table misses deposits %d, withdrawals %d (of %d, %d): INSERTs cut by a killed server", cur, w.Deposits-dep, w.Withdrawals-wd, w.Deposits, w.Withdrawals)
		}
	}
}
