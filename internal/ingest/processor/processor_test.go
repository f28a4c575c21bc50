package processor_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/testenv"
)

// TestOutcomes covers accepted and rejected commands, the records an
// accepted one writes, forged internal commands, reserved ids, and a
// duplicate command id writing nothing new.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")

	forged := &codec.CreditTransfer{CommandID: "forged-1", AggregateID: "acc-1", IssuedAt: issued,
		TransferID: "t", FromAccountID: "acc-2", ToAccountID: "acc-1", Amount: 1_000_000, Currency: "EUR"}
	e.send(
		open("c1", "acc-1", "EUR"),
		deposit("c2", "acc-1", 100),
		withdraw("c3", "acc-1", 500),     // insufficient_funds
		deposit("c4", "acc-missing", 10), // account_not_found
		open("c5", "acc-1", "EUR"),       // account_exists
		forged,                           // internal type from upstream
		deposit("c6/credit", "acc-1", 5), // reserved id
		deposit("c2", "acc-1", 100),      // duplicate of c2
		deposit("c7", "acc-1", 1),        // after the duplicate, same partition
	)

	results := e.reader(e.names.Results)
	got := results.results("c1", "c2", "c3", "c4", "c5", "forged-1", "c6/credit", "c7")
	for _, c := range []struct {
		id, status, reason string
		version            int64
	}{
		{"c1", "ACCEPTED", "", 1},
		{"c2", "ACCEPTED", "", 2},
		{"c3", "REJECTED", "insufficient_funds", 2},
		{"c4", "REJECTED", "account_not_found", 0},
		{"c5", "REJECTED", "account_exists", 2},
		{"forged-1", "REJECTED", "invalid_command", 2},
		{"c6/credit", "REJECTED", "invalid_command", 2},
		{"c7", "ACCEPTED", "", 3},
	} {
		r := got[c.id]
		if r.Status != c.status || r.Reason != c.reason || r.Version != c.version {
			t.Errorf("%s: got %s %q v%d (%s), want %s %q v%d", c.id, r.Status, r.Reason, r.Version, r.Message, c.status, c.reason, c.version)
		}
	}
	if evs := got["c2"].Events; len(evs) != 1 || evs[0].EventID != "acc-1/2" || evs[0].Type != "ledger.events.FundsDeposited" || evs[0].Version != 2 {
		t.Errorf("c2 event refs = %+v", evs)
	}
	if n := countKey(results.recs, "c2"); n != 1 {
		t.Errorf("%d first outcomes for c2, want 1 (the duplicate must write nothing new)", n)
	}
	// The repeat is answered with the first outcome, marked as a repeat.
	var repeat *codec.CommandResult
	for _, r := range results.recs {
		if string(r.Key) == "c2" && headerOf(r, processor.HeaderDuplicate) == "true" {
			repeat = &codec.CommandResult{}
			if err := codec.Default().DecodeInto(r.Value, repeat); err != nil {
				t.Fatal(err)
			}
		}
	}
	if repeat == nil || repeat.Status != "ACCEPTED" || repeat.Version != 2 || len(repeat.Events) != 1 ||
		repeat.Events[0] != got["c2"].Events[0] || repeat.CommandType != got["c2"].CommandType || !repeat.ProcessedAt.Equal(got["c2"].ProcessedAt) {
		t.Errorf("answer to the repeat of c2 = %+v, want the first outcome %+v", repeat, got["c2"])
	}
	for _, r := range results.recs {
		if headerOf(r, processor.HeaderType) != "ledger.results.CommandResult" || headerOf(r, processor.HeaderOrigin) != processor.OriginUpstream {
			t.Errorf("result %s headers: %v", r.Key, r.Headers)
		}
	}
	e.waitCounter("ledger_processor_commands_total", map[string]string{"outcome": "accepted"}, 3)
	e.waitCounter("ledger_processor_commands_total", map[string]string{"outcome": "rejected"}, 5)
	e.waitCounter("ledger_processor_commands_total", map[string]string{"outcome": "duplicate"}, 1)
	e.waitCounter("ledger_processor_commands_total", map[string]string{"outcome": "dlq"}, 0)
	// Everything processed: the lag in records and in seconds is 0 on every
	// partition that had commands.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		if n := mf.GetName(); n == "ledger_processor_lag" || n == "ledger_processor_lag_seconds" {
			for _, m := range mf.GetMetric() {
				series[n]++
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("%s %v = %v after every command was processed", n, m.GetLabel(), v)
				}
			}
		}
	}
	if series["ledger_processor_lag"] == 0 || series["ledger_processor_lag_seconds"] == 0 {
		t.Errorf("lag series %v, want both gauges for the partitions that had commands", series)
	}

	part := kafkax.KeyPartition([]byte("acc-1"), 3)
	events := e.reader(e.names.Events).until("3 events", func(rs []*kgo.Record) bool { return len(rs) >= 3 })
	for i, r := range events {
		if want := "acc-1/" + strconv.Itoa(i+1); string(r.Key) != want || r.Partition != part {
			t.Errorf("event %d: key %s partition %d, want %s partition %d", i, r.Key, r.Partition, want, part)
		}
	}
	if len(events) != 3 {
		t.Errorf("%d events, want 3", len(events))
	}
	if typ := headerOf(events[1], processor.HeaderType); typ != "ledger.events.FundsDeposited" {
		t.Errorf("type header %q", typ)
	}
	if ev := decode[codec.FundsDeposited](t, events[1]); ev.CommandID != "c2" || ev.BalanceAfter != 100 || ev.Version != 2 {
		t.Errorf("event 2 = %+v", ev)
	}

	snaps := e.reader(e.names.Snapshots).until("snapshot of v3", func(rs []*kgo.Record) bool {
		return len(rs) > 0 && decode[codec.AccountSnapshot](t, rs[len(rs)-1]).Version == 3
	})
	last := decode[codec.AccountSnapshot](t, snaps[len(snaps)-1])
	if last.Balance != 101 || last.Status != "OPEN" || snaps[len(snaps)-1].Partition != part {
		t.Errorf("last snapshot = %+v in partition %d", last, snaps[len(snaps)-1].Partition)
	}
}

// TestTransferSaga: a transfer debits the source, issues a CreditTransfer to
// the destination's partition, and credits it; a transfer to an account that
// does not exist is refunded.
func TestTransferSaga(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	e.send(
		open("o1", "src", "EUR"),
		open("o2", "dst", "EUR"),
		deposit("d1", "src", 1000),
		transfer("t1", "src", "dst", 300),
		transfer("t2", "src", "nobody", 200),
	)
	results := e.reader(e.names.Results)
	// Saga ids come from the debit events (src versions 3 and 4), never
	// from the client's command ids.
	got := results.results("t1", "src/3/credit", "t2", "src/4/credit", "src/4/credit/refund")
	for id, want := range map[string]string{"t1": "ACCEPTED", "src/3/credit": "ACCEPTED", "t2": "ACCEPTED",
		"src/4/credit": "REJECTED", "src/4/credit/refund": "ACCEPTED"} {
		if got[id].Status != want {
			t.Errorf("%s: %s %s %s, want %s", id, got[id].Status, got[id].Reason, got[id].Message, want)
		}
	}
	if got["src/4/credit"].Reason != "account_not_found" {
		t.Errorf("src/4/credit reason %q", got["src/4/credit"].Reason)
	}
	for _, r := range results.recs {
		want := processor.OriginUpstream
		if strings.HasSuffix(string(r.Key), "/credit") || strings.HasSuffix(string(r.Key), "/refund") {
			want = processor.OriginProcessor
		}
		if headerOf(r, processor.HeaderOrigin) != want {
			t.Errorf("result %s: origin %q, want %q", r.Key, headerOf(r, processor.HeaderOrigin), want)
		}
	}

	// The saga commands went to their targets' partitions, marked.
	cmds := e.reader(e.names.Commands).until("saga commands", func(rs []*kgo.Record) bool {
		return countKey(rs, "dst") >= 2 && countKey(rs, "nobody") >= 1
	})
	for _, r := range cmds {
		typ := headerOf(r, processor.HeaderType)
		if typ != "ledger.commands.CreditTransfer" && typ != "ledger.commands.RefundTransfer" {
			continue
		}
		if headerOf(r, processor.HeaderOrigin) != processor.OriginProcessor {
			t.Errorf("saga command %s without origin header", r.Key)
		}
		if want := kafkax.KeyPartition(r.Key, 3); r.Partition != want {
			t.Errorf("saga command for %s in partition %d, want %d", r.Key, r.Partition, want)
		}
	}

	events := e.reader(e.names.Events).until("saga events", func(rs []*kgo.Record) bool {
		return countKey(rs, "src/5") == 1 && countKey(rs, "dst/2") == 1
	})
	types := map[string]string{}
	for _, r := range events {
		types[string(r.Key)] = headerOf(r, processor.HeaderType)
	}
	for key, want := range map[string]string{
		"src/3": "ledger.events.TransferDebited",
		"src/4": "ledger.events.TransferDebited",
		"src/5": "ledger.events.TransferRefunded",
		"dst/2": "ledger.events.TransferCredited",
	} {
		if types[key] != want {
			t.Errorf("event %s is %q, want %s", key, types[key], want)
		}
	}
	if _, ok := types["nobody/1"]; ok {
		t.Error("an event was written for the missing account")
	}
	for _, r := range events {
		if string(r.Key) == "src/5" {
			if ev := decode[codec.TransferRefunded](t, r); ev.BalanceAfter != 700 || ev.Reason != "account_not_found" {
				t.Errorf("refund = %+v", ev)
			}
		}
		if string(r.Key) == "dst/2" {
			if ev := decode[codec.TransferCredited](t, r); ev.BalanceAfter != 300 || ev.FromAccountID != "src" {
				t.Errorf("credit = %+v", ev)
			}
		}
	}
}

// TestPoisonRecords: undecodable bytes, an unknown fingerprint, an event on
// the commands topic, a key that is not the aggregate, a key that does not
// hash to the partition it was written to and an empty key go to the DLQ with their headers, and later commands on the same partition are
// still processed.
func TestPoisonRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")

	event, err := codec.Default().Encode(&codec.AccountOpened{EventID: "x/1", AggregateID: "poison", Version: 1,
		CommandID: "x", OccurredAt: issued, Owner: "o", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := codec.Default().Encode(open("wk", "someone-else", "EUR"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, 0, 0)
	e.sendRaw("poison", []byte("garbage, not avro"))
	e.sendRaw("poison", unknown)
	e.sendRaw("poison", event)
	e.sendRaw("poison", wrongKey)
	srcPart := kafkax.KeyPartition([]byte("poison"), 3)
	elsewhere := "k0"
	for i := 1; kafkax.KeyPartition([]byte(elsewhere), 3) == srcPart; i++ {
		elsewhere = "k" + strconv.Itoa(i)
	}
	misrouted, err := codec.Default().Encode(open("mr", elsewhere, "EUR"))
	if err != nil {
		t.Fatal(err)
	}
	e.sendTo(srcPart, []byte(elsewhere), misrouted)
	e.sendTo(srcPart, nil, misrouted)
	e.send(open("after", "poison", "EUR"))

	got := e.reader(e.names.Results).results("after")
	if got["after"].Status != "ACCEPTED" {
		t.Errorf("command after the poison records: %+v", got["after"])
	}
	dlq := e.reader(e.names.DLQ).until("6 DLQ records", func(rs []*kgo.Record) bool { return len(rs) >= 6 })
	if len(dlq) != 6 {
		t.Fatalf("%d DLQ records, want 6", len(dlq))
	}
	wantValues := [][]byte{[]byte("garbage, not avro"), unknown, event, wrongKey, misrouted, misrouted}
	wantKeys := []string{"poison", "poison", "poison", "poison", elsewhere, ""}
	for i, r := range dlq {
		if string(r.Key) != wantKeys[i] || string(r.Value) != string(wantValues[i]) {
			t.Errorf("DLQ record %d: key %q value %q, want the original", i, r.Key, r.Value)
		}
		if headerOf(r, processor.HeaderError) == "" ||
			headerOf(r, processor.HeaderSourceTopic) != e.names.Commands ||
			headerOf(r, processor.HeaderSourcePartition) != strconv.Itoa(int(srcPart)) ||
			headerOf(r, processor.HeaderSourceOffset) != strconv.Itoa(i) {
			t.Errorf("DLQ record %d headers: %v", i, r.Headers)
		}
		t.Logf("DLQ %d: %s", i, headerOf(r, processor.HeaderError))
	}
	if typ := headerOf(dlq[2], processor.HeaderType); typ != "ledger.events.AccountOpened" {
		t.Errorf("DLQ type header of the event: %q", typ)
	}
}

// TestOversizedOutputAgainstTheBroker: a command the broker accepted whose
// event would not fit the broker's record limit goes to the DLQ, and the
// partition goes on (without the guard, every retry of the transaction
// failed the same way and the processor stopped).
func TestOversizedOutputAgainstTheBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	big := deposit("big", "acc-big", 5)
	big.Reference = strings.Repeat("r", 1_048_588-400)
	e.send(open("o", "acc-big", "EUR"), big, deposit("small", "acc-big", 7))

	got := e.reader(e.names.Results).results("o", "small")
	if got["small"].Status != "ACCEPTED" || got["small"].Version != 2 {
		t.Errorf("command after the oversized one: %+v", got["small"])
	}
	dlq := e.reader(e.names.DLQ).until("1 DLQ record", func(rs []*kgo.Record) bool { return len(rs) >= 1 })
	if reason := headerOf(dlq[0], processor.HeaderError); !strings.Contains(reason, "record limit") || string(dlq[0].Key) != "acc-big" {
		t.Errorf("DLQ record: key %q reason %q", dlq[0].Key, reason)
	}
	t.Logf("DLQ: %s", headerOf(dlq[0], processor.HeaderError))
}

// TestTopicRecordLimits: with the events topic's max.message.bytes set far
// below Kafka's default, an event over it sends its command to the DLQ
// (naming the topic's limit), and a backlog of small commands, whose events
// together exceed the limit many times, still goes through (the producer's
// batches stay within each topic's limit).
func TestTopicRecordLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Below any record the processor writes for a command within the
	// domain's bounds only when the reference is at its bound.
	const limit = 1_000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.setTopicConfigs(ctx, e.names.Events, map[string]string{"max.message.bytes": strconv.Itoa(limit)})

	// Random references: the broker checks the compressed batch, and
	// repeated letters would compress below any limit.
	rnd := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rnd.IntN(26))
		}
		return string(b)
	}
	big := deposit("big", "acc-l", 5)
	big.Reference = noise(domain.MaxReferenceBytes)
	cmds := []any{open("o", "acc-l", "EUR"), big}
	var ids []string
	for i := range 300 {
		id := "d" + strconv.Itoa(i)
		ids = append(ids, id)
		d := deposit(id, "acc-l", 1)
		d.Reference = noise(100)
		cmds = append(cmds, d)
	}
	e.send(cmds...) // before the processor starts, so that its batches are large
	e.start("a")
	got := e.reader(e.names.Results).results(ids...)
	if last := got["d299"]; last.Status != "ACCEPTED" || last.Version != 301 {
		t.Errorf("last of the backlog: %+v, want accepted at version 301", last)
	}
	dlq := e.reader(e.names.DLQ).until("1 DLQ record", func(rs []*kgo.Record) bool { return len(rs) >= 1 })
	if reason := headerOf(dlq[0], processor.HeaderError); !strings.Contains(reason, "over the 1000-byte record limit of "+e.names.Events) {
		t.Errorf("DLQ reason %q", reason)
	}
}

// setTopicConfigs sets configs of topic and waits until the broker, which
// applies config changes asynchronously, reports every one of them.
func (e *env) setTopicConfigs(ctx context.Context, topic string, configs map[string]string) {
	e.t.Helper()
	adm := kadm.NewClient(testenv.KafkaClient(e.t))
	var alter []kadm.AlterConfig
	for k, v := range configs {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	resps, err := adm.AlterTopicConfigs(ctx, alter, topic)
	if err == nil {
		for _, r := range resps {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			e.t.Fatal(err)
		}
		applied := 0
		if c, err := rcs.On(topic, nil); err == nil && c.Err == nil {
			for k, v := range configs {
				if configValue(c.Configs, k) == v {
					applied++
				}
			}
		}
		if applied == len(configs) {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("configs of %s not applied: %v", topic, configs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func configValue(cs []kadm.Config, key string) string {
	for _, c := range cs {
		if c.Key == key && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

// TestRestoreAfterRestart: a new processor in the same group restores the
// balance from snapshots and the dedupe index from results.
func TestRestoreAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.start("first")
	e.send(
		open("r1", "acc-r", "EUR"),
		deposit("r2", "acc-r", 100),
		withdraw("r3", "acc-r", 30),
	)
	results := e.reader(e.names.Results)
	results.results("r1", "r2", "r3")
	if err := first.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	e.start("second")
	e.send(
		deposit("r2", "acc-r", 100), // duplicate from before the restart
		withdraw("r4", "acc-r", 70), // succeeds only with the restored balance 70
		withdraw("r5", "acc-r", 1),  // and then the balance is exactly 0
	)
	got := results.results("r4", "r5")
	if got["r4"].Status != "ACCEPTED" || got["r4"].Version != 4 {
		t.Errorf("r4: %+v", got["r4"])
	}
	if got["r5"].Status != "REJECTED" || got["r5"].Reason != "insufficient_funds" {
		t.Errorf("r5: %+v", got["r5"])
	}
	if n := countKey(results.recs, "r2"); n != 1 {
		t.Errorf("%d results for r2, want 1", n)
	}
	events := e.reader(e.names.Events).until("4 events", func(rs []*kgo.Record) bool { return len(rs) >= 4 })
	for i, r := range events {
		if want := "acc-r/" + strconv.Itoa(i+1); string(r.Key) != want {
			t.Errorf("event %d has key %s, want %s", i, r.Key, want)
		}
	}
	if len(events) != 4 {
		t.Errorf("%d events, want 4", len(events))
	}
}

// TestRestoreWaitsForOpenTransaction pins the restore-to-high-watermark
// pitfall: a snapshot in a transaction that is still open when the partition
// is assigned must be part of the restored state once it commits, not
// skipped because read_committed stopped at the last stable offset; and when
// it aborts, the restore must neither use it nor hang waiting for the
// aborted record that read_committed hides.
func TestRestoreWaitsForOpenTransaction(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		end    kgo.TransactionEndTry
		status string
		reason string
	}{
		{"commit", kgo.TryCommit, "ACCEPTED", ""},
		{"abort", kgo.TryAbort, "REJECTED", "account_not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			part := kafkax.KeyPartition([]byte("acc-t"), 3)
			txn := testenv.KafkaClient(t,
				kgo.TransactionalID("processor-test-"+testenv.ID(t)),
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
			)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := txn.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			snap, err := codec.Default().Encode(&codec.AccountSnapshot{AggregateID: "acc-t", Version: 1, Owner: "o",
				Currency: "EUR", Balance: 500, Status: "OPEN", UpdatedAt: issued})
			if err != nil {
				t.Fatal(err)
			}
			if err := txn.ProduceSync(ctx, &kgo.Record{Topic: e.names.Snapshots, Partition: part, Key: []byte("acc-t"), Value: snap}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			const hold = 1500 * time.Millisecond
			ended := make(chan error, 1)
			go func() {
				time.Sleep(hold)
				ended <- txn.EndTransaction(ctx, c.end)
			}()

			begin := time.Now()
			e.start("a") // Ready only once the restore has read past the open transaction
			if took := time.Since(begin); took < hold/2 {
				t.Errorf("ready after %s, before the open transaction was resolved", took)
			}
			if err := <-ended; err != nil {
				t.Fatal(err)
			}
			e.send(withdraw("w1", "acc-t", 500)) // possible only with the snapshot restored
			got := e.reader(e.names.Results).results("w1")
			if r := got["w1"]; r.Status != c.status || r.Reason != c.reason {
				t.Errorf("w1: %+v, want %s %q", r, c.status, c.reason)
			}
		})
	}
}

// TestRunWithoutTopology: Run refuses to start when the topics are missing,
// and Ready reports why.
func TestRunWithoutTopology(t *testing.T) {
	t.Parallel()
	p, err := processor.New(processor.Config{
		Kafka:      testenv.KafkaConfig(t, "test."+testenv.ID(t)+".", ""),
		InstanceID: "x",
		Log:        testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "apply the topology") {
		t.Fatalf("Run = %v, want a missing-topics error", err)
	}
	if rerr := p.Ready(ctx); rerr != err {
		t.Errorf("Ready = %v, want Run's error", rerr)
	}
	if err := p.Run(ctx); err == nil {
		t.Error("a second Run was accepted")
	}
}

// TestFencedProcessorStops: a second producer with the same transactional
// id (a misconfigured duplicate instance) fences the processor. Its open
// transaction aborts and Run fails instead of going on, and the command it
// was processing is processed exactly once by the next member.
func TestFencedProcessorStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A fenced static member does not leave the group (leaving by instance
	// id would remove the instance that fenced it): the next member waits
	// for its session to time out, kept short here.
	a := e.start("same", func(c *processor.Config) { c.SessionTimeout = 6 * time.Second })
	e.send(open("f1", "acc-f", "EUR"))
	results := e.reader(e.names.Results)
	results.results("f1")

	zombie := testenv.KafkaClient(t,
		kgo.TransactionalID(e.kafka.TopicPrefix+"processor-same"), // the group's default name + instance id
		kgo.DefaultProduceTopic(e.names.DLQ),
	)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("fence")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	e.send(deposit("f2", "acc-f", 10))
	select {
	case <-a.done:
	case <-time.After(waitTimeout):
		t.Fatal("the fenced processor did not stop")
	}
	if err := a.stop(); err == nil {
		t.Error("Run of the fenced processor returned nil")
	} else {
		t.Logf("fenced processor: %v", err)
	}

	e.start("b")
	got := results.results("f2")
	if got["f2"].Status != "ACCEPTED" || got["f2"].Version != 2 {
		t.Errorf("f2: %+v", got["f2"])
	}
	if n := countKey(results.recs, "f2"); n != 1 {
		t.Errorf("%d results for f2, want 1", n)
	}
	events := e.reader(e.names.Events).until("2 events", func(rs []*kgo.Record) bool { return len(rs) >= 2 })
	if len(events) != 2 || string(events[1].Key) != "acc-f/2" {
		t.Errorf("events: %d, last %s", len(events), events[len(events)-1].Key)
	}
}

// TestDedupeWindow: a command id is remembered for DedupeWindow only, both
// live and across a restore (results older than the window are not loaded).
func TestDedupeWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const window = 3 * time.Second
	short := func(c *processor.Config) { c.DedupeWindow = window }
	a := e.start("a", short)
	e.send(open("w0", "acc-w", "EUR"), deposit("w1", "acc-w", 10), deposit("w2", "acc-w", 10))
	results := e.reader(e.names.Results)
	results.results("w0", "w1", "w2")
	e.send(deposit("w1", "acc-w", 10)) // within the window: a duplicate
	time.Sleep(window + 500*time.Millisecond)
	e.send(deposit("w2", "acc-w", 10), deposit("w-mark", "acc-w", 1)) // outside: processed again
	results.until("w2 twice", func(rs []*kgo.Record) bool { return countKey(rs, "w-mark") == 1 })
	if n, m := countKey(results.recs, "w1"), countKey(results.recs, "w2"); n != 1 || m != 2 {
		t.Errorf("results: w1 %d (want 1), w2 %d (want 2)", n, m)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}

	// After a restart, w-mark (recent) is remembered, w0 (old) is not.
	e.start("b", short)
	e.send(deposit("w-mark", "acc-w", 1), open("w0", "acc-w", "EUR"), deposit("w-end", "acc-w", 1))
	results.until("w-end", func(rs []*kgo.Record) bool { return countKey(rs, "w-end") == 1 })
	if n, m := countKey(results.recs, "w-mark"), countKey(results.recs, "w0"); n != 1 || m != 2 {
		t.Errorf("after the restart: w-mark %d results (want 1), w0 %d (want 2)", n, m)
	}
	got := results.results("w0", "w-end")
	if got["w0"].Reason != "account_exists" || got["w-end"].Version != 6 {
		t.Errorf("w0 %+v, w-end %+v", got["w0"], got["w-end"])
	}
}

// TestControlSnapshot: a control record (ledgerctl erase) makes the
// processor write the snapshot of an aggregate it holds, without the owner
// (snapshots never hold it); one for an aggregate it does not hold writes
// nothing, and an unknown control goes to the DLQ. Commands go on.
func TestControlSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	e.send(open("c-open", "ctl", "EUR"), deposit("c-dep", "ctl", 500))
	e.reader(e.names.Results).results("c-open", "c-dep")
	snaps := e.reader(e.names.Snapshots)
	snaps.until("the snapshot of ctl", func(rs []*kgo.Record) bool { return countKey(rs, "ctl") >= 1 })
	before := countKey(snaps.recs, "ctl")

	control := func(v string) kgo.RecordHeader {
		return kgo.RecordHeader{Key: processor.HeaderControl, Value: []byte(v)}
	}
	e.sendRaw("ctl", nil, control(processor.ControlSnapshot))
	e.sendRaw("nobody", nil, control(processor.ControlSnapshot))
	e.sendRaw("ctl", nil, control("explode"))
	snaps.until("the snapshot the control asked for", func(rs []*kgo.Record) bool { return countKey(rs, "ctl") >= before+1 })
	e.send(deposit("c-after", "ctl", 1))
	if got := e.reader(e.names.Results).results("c-after"); got["c-after"].Status != "ACCEPTED" {
		t.Fatalf("command after the control records: %+v", got["c-after"])
	}
	rs := snaps.until("the snapshot of the deposit after", func(rs []*kgo.Record) bool { return countKey(rs, "ctl") >= before+2 })
	if n := countKey(rs, "nobody"); n != 0 {
		t.Errorf("%d snapshots of an aggregate the processor does not hold", n)
	}
	var last *codec.AccountSnapshot
	for _, r := range rs {
		if string(r.Key) == "ctl" {
			last = decode[codec.AccountSnapshot](t, r)
			if last.Owner != "" {
				t.Errorf("snapshot at %d holds the owner %q", r.Offset, last.Owner)
			}
		}
	}
	if last.Balance != 501 || last.Version != 3 {
		t.Errorf("last snapshot of ctl: %+v", last)
	}
	dlq := e.reader(e.names.DLQ).until("the unknown control", func(rs []*kgo.Record) bool { return len(rs) >= 1 })
	if len(dlq) != 1 || !strings.Contains(headerOf(dlq[0], processor.HeaderError), `unknown control "explode"`) {
		t.Errorf("DLQ: %d records, first error %q", len(dlq), headerOf(dlq[0], processor.HeaderError))
	}
}
