package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/erase"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
	"github.com/cqrs-ledger/ledger/internal/workload"
)

// TestErase: one account with an owner, references and transfers both ways
// is erased by `ledgerctl erase` while the pipeline runs, and an old-style
// snapshot holding its owner is planted first. Then: a dry run writes
// nothing; an erasure with the processor down writes the copies and fails
// saying to run it again; the rerun finishes; a third run finds nothing
// left to do; an unknown subject fails with a message. The live views blank the owner and
// references; both views are rebuilt from the topic and equal the fold of
// the events, whose balances, versions and totals are those from before the
// erasure; no erased string is left in any record of any topic (after
// compaction), any Redis key of the test, or any String column of its
// ClickHouse tables; and the account still takes commands.
func TestErase(t *testing.T) {
	s := newStack(t, 3)
	v := newViews(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Compaction within seconds, as max.compaction.lag.ms bounds it in a
	// deployment.
	var alter []kadm.AlterConfig
	for _, k := range [][2]string{{"segment.ms", "1000"}, {"max.compaction.lag.ms", "1000"}, {"min.cleanable.dirty.ratio", "0.01"}} {
		v := k[1]
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k[0], Value: &v})
	}
	if _, err := s.adm.AlterTopicConfigs(ctx, alter, s.names.Events, s.names.Snapshots, s.names.Results); err != nil {
		t.Fatal(err)
	}
	ing, p := s.startPipeline(t, v)

	id := testenv.ID(t)
	cmds := workload.Generate(workload.Options{Seed: 71, Accounts: 12, Commands: 300, IDPrefix: id + "-"})
	subject := id + "-acc-0"
	secrets := []string{"Erin Erasable " + id}
	n := 0
	for _, c := range cmds {
		if c.Key != subject {
			continue
		}
		n++
		ref := fmt.Sprintf("SECRET-REF-%s-%d", id, n)
		switch x := c.Value.(type) {
		case *codec.OpenAccount:
			x.Owner = secrets[0]
		case *codec.DepositFunds:
			x.Reference = ref
			secrets = append(secrets, ref)
		case *codec.WithdrawFunds:
			x.Reference = ref
			secrets = append(secrets, ref)
		case *codec.TransferFunds:
			x.Reference = ref
			secrets = append(secrets, ref)
		}
	}
	if len(secrets) < 5 {
		t.Fatalf("the workload gives the subject only %d personal strings", len(secrets))
	}
	before := s.produceExact(t, ctx, v, cmds, 90*time.Second)
	acc := before.Accounts[subject]
	if acc == nil || acc.Version < 5 {
		t.Fatalf("subject %s: %+v", subject, acc)
	}
	if found := secretsIn(t, ctx, s, v, secrets, true); len(found) < 3 {
		t.Fatalf("the personal strings are not found in the topics and both views before the erasure (the scan cannot fail): %v", found)
	}
	// An old-style snapshot with the owner (before snapshots left it out).
	snap, err := codec.Default().Encode(&codec.AccountSnapshot{AggregateID: subject, Version: acc.Version, Owner: secrets[0],
		Currency: acc.Currency, Balance: acc.Balance, Status: "OPEN", UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.ProduceSync(ctx, &kgo.Record{Topic: s.names.Snapshots, Key: []byte(subject), Value: snap}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	ctl := func(args ...string) (erase.Report, string, error) {
		out, err := s.run("ledgerctl", nil, append([]string{"erase", "--subject"}, args...)...)
		var rep erase.Report
		if i := strings.Index(out, "{"); i >= 0 {
			_ = json.Unmarshal([]byte(out[i:]), &rep)
		}
		return rep, out, err
	}
	ends := func() int64 {
		o, err := s.adm.ListEndOffsets(ctx, s.names.Events)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		o.Each(func(l kadm.ListedOffset) { sum += l.Offset })
		return sum
	}
	end0 := ends()
	dry, out, err := ctl(subject, "--output", "json", "--progress=false")
	if err != nil || !dry.DryRun || dry.EventsRedacted == 0 || !dry.SnapshotOwner {
		t.Fatalf("dry run: %+v %v\n%s", dry, err, out)
	}
	if e := ends(); e != end0 {
		t.Fatalf("the dry run wrote %d records to the events topic", e-end0)
	}
	// Interrupted: with the processor down the copies are written, but
	// the snapshot is not rewritten and the commands are not deleted; the
	// run fails saying so. The next run, with the processor back, finishes.
	ing.stop(t)
	if _, out, err := ctl(subject, "--yes", "--wait", "3s", "--progress=false"); err == nil || !strings.Contains(out, "run the erasure again once the processor runs") {
		t.Fatalf("erase with the processor down: %v\n%s", err, out)
	}
	ing = s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=p"), "serve")
	ing.waitReady(t, 60*time.Second)
	rep, out, err := ctl(subject, "--yes", "--output", "json")
	if err != nil || rep.EventsRedacted != 0 || rep.Events != int(acc.Version) || rep.Results == 0 || rep.CommandsDeletedBefore <= 0 {
		t.Fatalf("erase resumed: %+v %v\n%s", rep, err, out)
	}
	t.Logf("erased: dry run %+v; resumed %+v", dry, rep)
	again, out, err := ctl(subject, "--yes", "--output", "json", "--progress=false")
	if err != nil || again.EventsRedacted != 0 || again.EventsCopied != 0 || again.ResultsRedacted != 0 {
		t.Fatalf("second run: %+v %v\n%s", again, err, out)
	}
	if _, out, err := ctl(id+"-nobody", "--yes", "--progress=false"); err == nil || !strings.Contains(out, "unknown subject") {
		t.Fatalf("unknown subject: %v\n%s", err, out)
	}
	if out, err := s.run("ledgerctl", nil, "erase"); err == nil || !strings.Contains(out, "subject: required") {
		t.Fatalf("no subject: %v\n%s", err, out)
	}

	// The live views blank what they hold, the fold is unchanged.
	deadline := time.Now().Add(60 * time.Second)
	for found := secretsIn(t, ctx, s, v, secrets, false); len(found) > 0; found = secretsIn(t, ctx, s, v, secrets, false) {
		if time.Now().After(deadline) {
			t.Fatalf("the live views still hold personal data 60 s after the erasure:\n%s", strings.Join(found, "\n"))
		}
		time.Sleep(time.Second)
	}
	after := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	compareFolds(t, before, after)
	for _, view := range []string{"redis", "clickhouse"} {
		if out, err := s.run("projector", v.env(), "rebuild", "-view", view, "-progress=false"); err != nil {
			t.Fatalf("rebuild %s: %v\n%s", view, err, tail(out, 40))
		}
	}
	v.waitExact(t, ctx, after, 90*time.Second)

	// The account goes on: a deposit after the erasure applies.
	dep := workload.Command{Key: subject, ID: id + "-after", Value: &codec.DepositFunds{CommandID: id + "-after", AggregateID: subject,
		IssuedAt: time.Now().UTC(), Amount: 700}}
	last := s.produceExact(t, ctx, v, []workload.Command{dep}, 60*time.Second)
	if got := last.Accounts[subject]; got.Balance != acc.Balance+700 || got.Version != acc.Version+1 {
		t.Fatalf("subject after a deposit: %+v, want balance %d version %d", got, acc.Balance+700, acc.Version+1)
	}
	// No personal string anywhere, once compaction has run.
	deadline = time.Now().Add(90 * time.Second)
	for found := secretsIn(t, ctx, s, v, secrets, true); len(found) > 0; found = secretsIn(t, ctx, s, v, secrets, true) {
		if time.Now().After(deadline) {
			t.Fatalf("personal data left 90 s after the erasure:\n%s", strings.Join(found[:min(len(found), 20)], "\n"))
		}
		time.Sleep(2 * time.Second)
	}
	p.stop(t)
	ing.stop(t)
}

// compareFolds fails unless both folds have the same accounts (balance,
// version, currency, status) and per-currency totals.
func compareFolds(t *testing.T, before, after *audit.Ledger) {
	t.Helper()
	if len(before.Problems)+len(after.Problems) > 0 {
		t.Fatalf("audit problems: before %v, after %v", before.Problems, after.Problems)
	}
	if len(before.Accounts) != len(after.Accounts) {
		t.Fatalf("accounts: %d before the erasure, %d after", len(before.Accounts), len(after.Accounts))
	}
	for id, b := range before.Accounts {
		if a := after.Accounts[id]; a == nil || *a != *b {
			t.Fatalf("account %s: %+v before the erasure, %+v after", id, b, a)
		}
	}
	for cur, b := range before.Totals {
		if a := after.Totals[cur]; a == nil || *a != *b {
			t.Fatalf("totals of %s: %+v before the erasure, %+v after", cur, b, a)
		}
	}
}

// secretsIn returns where any of secrets is: a Redis key of the test's
// prefix, a String column of its ClickHouse database and, with topics, a
// record of its topics.
func secretsIn(t *testing.T, ctx context.Context, s *stack, v *views, secrets []string, topics bool) []string {
	t.Helper()
	var where []string
	has := func(b []byte) string {
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				return sec
			}
		}
		return ""
	}
	for _, topic := range []string{s.names.Commands, s.names.Events, s.names.Snapshots, s.names.Results, s.names.DLQ} {
		if !topics {
			break
		}
		err := kafkax.ReadAll(ctx, s.kafka, topic, func(r *kgo.Record) error {
			b := append(append([]byte{}, r.Key...), r.Value...)
			for _, h := range r.Headers {
				b = append(append(b, h.Key...), h.Value...)
			}
			if sec := has(b); sec != "" {
				where = append(where, fmt.Sprintf("%s/%d@%d holds %q", topic, r.Partition, r.Offset, sec))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	iter := v.rdb.Scan(ctx, 0, v.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		var b []byte
		switch typ := v.rdb.Type(ctx, key).Val(); typ {
		case "hash":
			for k, val := range v.rdb.HGetAll(ctx, key).Val() {
				b = append(append(b, k...), val...)
			}
		case "list":
			for _, val := range v.rdb.LRange(ctx, key, 0, -1).Val() {
				b = append(b, val...)
			}
		case "string":
			b = []byte(v.rdb.Get(ctx, key).Val())
		}
		if sec := has(append([]byte(key), b...)); sec != "" {
			where = append(where, fmt.Sprintf("redis %s holds %q", key, sec))
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err := v.ch.Query(ctx, "SELECT table, name FROM system.columns WHERE database = ? AND type = 'String'", v.db)
	if err != nil {
		t.Fatal(err)
	}
	var cols [][2]string
	for rows.Next() {
		var tb, c string
		if err := rows.Scan(&tb, &c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, [2]string{tb, c})
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatal("no String column in the test's ClickHouse database")
	}
	for _, c := range cols {
		for _, sec := range secrets {
			var n uint64
			if err := v.ch.QueryRow(ctx, "SELECT count() FROM "+v.db+"."+c[0]+" WHERE position("+c[1]+", ?) > 0", sec).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				where = append(where, fmt.Sprintf("clickhouse %s.%s: %d rows hold %q", c[0], c[1], n, sec))
			}
		}
	}
	return where
}
