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
	ctl := func(args ...string) (erase.Report, string, error) {
		out, err := s.run("ledgerctl", nil, append([]string{"erase", "--subject"}, args...)...)
		var rep erase.Report
		if i := strings.Index(out, "{"); i >= 0 {
			_ = json.Unmarshal([]byte(out[i:]), &rep)
		}
		return rep, out, err
	}
	s.produceExact(t, ctx, v, cmds, 90*time.Second)
	// An open account is refused (without --allow-open); the subject is
	// then emptied and closed.
	if _, out, err := ctl(subject, "--progress=false"); err == nil || !strings.Contains(out, "open account") {
		t.Fatalf("erase of an open account: %v\n%s", err, out)
	}
	before := s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	var last []workload.Command
	if b := before.Accounts[subject].Balance; b > 0 {
		last = append(last, workload.Command{Key: subject, ID: id + "-empty", Value: &codec.WithdrawFunds{CommandID: id + "-empty",
			AggregateID: subject, IssuedAt: time.Now().UTC(), Amount: b, Reference: secrets[1]}})
	} else if b < 0 {
		last = append(last, workload.Command{Key: subject, ID: id + "-empty", Value: &codec.DepositFunds{CommandID: id + "-empty",
			AggregateID: subject, IssuedAt: time.Now().UTC(), Amount: -b, Reference: secrets[1]}})
	}
	last = append(last, workload.Command{Key: subject, ID: id + "-close", Value: &codec.CloseAccount{CommandID: id + "-close",
		AggregateID: subject, IssuedAt: time.Now().UTC()}})
	before = s.produceExact(t, ctx, v, last, 60*time.Second)
	acc := before.Accounts[subject]
	if acc == nil || acc.Version < 5 || !acc.Closed {
		t.Fatalf("subject %s: %+v", subject, acc)
	}
	if found := secretsIn(t, ctx, s, v, secrets, true); len(found) < 3 {
		t.Fatalf("the personal strings are not found in the topics and both views before the erasure (the scan cannot fail): %v", found)
	}
	// An old-style snapshot with the owner (before snapshots left it out),
	// of the account's state as it is.
	snap, err := codec.Default().Encode(&codec.AccountSnapshot{AggregateID: subject, Version: acc.Version, Owner: secrets[0],
		Currency: acc.Currency, Balance: acc.Balance, Status: codec.AccountStatusClosed, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.ProduceSync(ctx, &kgo.Record{Topic: s.names.Snapshots, Key: []byte(subject), Value: snap}).FirstErr(); err != nil {
		t.Fatal(err)
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

	// The processor still holds the account (from the rewritten
	// snapshot after a restart too): a deposit is refused as to a closed
	// account, and another account of the workload takes one.
	ing.stop(t)
	ing = s.start("ingest", append(processorEnv, "PROCESSOR_INSTANCE=p"), "serve")
	ing.waitReady(t, 60*time.Second)
	var other string
	for aid, a := range before.Accounts {
		if aid != subject && !a.Closed {
			other = aid
			break
		}
	}
	afterCmds := []workload.Command{
		{Key: subject, ID: id + "-after", Value: &codec.DepositFunds{CommandID: id + "-after", AggregateID: subject, IssuedAt: time.Now().UTC(), Amount: 700}},
		{Key: other, ID: id + "-other", Value: &codec.DepositFunds{CommandID: id + "-other", AggregateID: other, IssuedAt: time.Now().UTC(), Amount: 700}},
	}
	final := s.produceExact(t, ctx, v, afterCmds, 60*time.Second)
	res, err := s.results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[id+"-after"]; r == nil || r.Reason != "account_closed" || r.Version != acc.Version {
		t.Fatalf("deposit to the erased, closed account: %+v", r)
	}
	if got, was := final.Accounts[other], before.Accounts[other]; got.Balance != was.Balance+700 {
		t.Fatalf("deposit to %s after the erasure: balance %d, was %d", other, got.Balance, was.Balance)
	}
	// Kafka compacts closed segments only, and rolls a segment on an
	// append once it is older than segment.ms: a rerun of the erasure
	// (nothing left to copy) appends a snapshot, which closes the segment
	// holding the planted one (docs/erasure.md: a quiet partition keeps its
	// originals until its next write).
	time.Sleep(1500 * time.Millisecond)
	if again, out, err := ctl(subject, "--yes", "--output", "json", "--progress=false"); err != nil || again.EventsCopied != 0 {
		t.Fatalf("rerun: %+v %v\n%s", again, err, out)
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

// TestEraseWhileWritten: erasures of an open account (--allow-open) run
// while 100 commands/s arrive for it (each may give up after its passes),
// then one more once they stop. After compaction the account's events must
// be in version order in the log (the audit of the log finds no gap or
// repetition), its fold must equal the live views (projected as the events
// came), and views rebuilt from the compacted log must equal it.
func TestEraseWhileWritten(t *testing.T) {
	s := newStack(t, 2)
	v := newViews(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
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
	subject := id + "-acc-0"
	s.produceExact(t, ctx, v, workload.Generate(workload.Options{Seed: 72, Accounts: 4, Commands: 60, IDPrefix: id + "-"}), 60*time.Second)

	// Deposits to the subject, 20 every 100 ms, while three erasures run.
	var deposits []workload.Command
	for i := 0; i < 600; i++ {
		cid := fmt.Sprintf("%s-w%d", id, i)
		deposits = append(deposits, workload.Command{Key: subject, ID: cid, Value: &codec.DepositFunds{CommandID: cid, AggregateID: subject,
			CorrelationID: "corr-" + cid, IssuedAt: time.Now().UTC(), Amount: 10, Reference: "ref-" + cid}})
	}
	writing := trickle(ctx, s, deposits, 10, 100*time.Millisecond)
	for i := 0; i < 3; i++ {
		time.Sleep(700 * time.Millisecond)
		// While the account is written to all the time, an erasure may
		// give up after its passes; what it wrote is in order or is put
		// in order by the next run.
		out, err := s.run("ledgerctl", nil, "erase", "--subject", subject, "--allow-open", "--yes", "--progress=false", "--output", "json")
		if err != nil && !strings.Contains(out, "still need copies after 3 passes") {
			t.Fatalf("erase %d: %v\n%s", i, err, out)
		}
		t.Logf("erase %d under writes: %v %s", i, err, strings.Join(strings.Fields(out), " "))
	}
	if err := <-writing; err != nil {
		t.Fatal(err)
	}
	s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")
	if out, err := s.run("ledgerctl", nil, "erase", "--subject", subject, "--allow-open", "--yes", "--progress=false"); err != nil {
		t.Fatalf("erase once the writes stopped: %v\n%s", err, out)
	}
	// Kafka compacts only closed segments and rolls the active one on an
	// append: one more event, a segment.ms later, closes the segment the
	// last erasure wrote to (an idle partition keeps its originals until
	// its next write; docs/erasure.md).
	time.Sleep(1500 * time.Millisecond)
	last := id + "-last"
	if err := workload.Produce(ctx, s.client, s.names.Commands, []workload.Command{{Key: subject, ID: last,
		Value: &codec.DepositFunds{CommandID: last, AggregateID: subject, IssuedAt: time.Now().UTC(), Amount: 1}}}, nil); err != nil {
		t.Fatal(err)
	}
	s.waitSettled(ctx, s.kafka.TopicPrefix+"processor")

	// Wait until compaction has kept one record per key of the subject.
	deadline := time.Now().Add(90 * time.Second)
	for {
		keys, recs := map[string]bool{}, 0
		if err := kafkax.ReadAll(ctx, s.kafka, s.names.Events, func(r *kgo.Record) error {
			if strings.HasPrefix(string(r.Key), subject+"/") {
				keys[string(r.Key)] = true
				recs++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if recs == len(keys) {
			t.Logf("compacted: %d events of the subject, one record each", recs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted after 90 s: %d records for %d keys", recs, len(keys))
		}
		time.Sleep(2 * time.Second)
	}
	after, err := audit.ReadEvents(ctx, s.kafka, s.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	// The live views, projected as the events came (not from the
	// compacted log), are the independent model here: a fold read while
	// the cleaner is halfway may see a version gap (docs/erasure.md).
	if len(after.Problems) > 0 {
		t.Fatalf("the compacted log: %v", after.Problems)
	}
	v.waitExact(t, ctx, after, 60*time.Second)
	for _, view := range []string{"redis", "clickhouse"} {
		if out, err := s.run("projector", v.env(), "rebuild", "-view", view, "-progress=false"); err != nil {
			t.Fatalf("rebuild %s: %v\n%s", view, err, tail(out, 40))
		}
	}
	v.waitExact(t, ctx, after, 90*time.Second)
	p.stop(t)
	ing.stop(t)
}
