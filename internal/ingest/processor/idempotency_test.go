package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/domain"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
)

// answer is one command result as a waiter sees it.
type answer struct {
	res    *codec.CommandResult
	mark   string // "", processor.HeaderDuplicate or processor.HeaderReused
	offset string // HeaderCommandOffset
}

// answers waits until n results of (aggregate, command id) were read and
// returns them in log order.
func answers(t *testing.T, r *reader, agg, id string, n int) []answer {
	t.Helper()
	var out []answer
	r.until(fmt.Sprintf("%d results of %s on %s", n, id, agg), func(recs []*kgo.Record) bool {
		out = out[:0]
		for _, rec := range recs {
			if string(rec.Key) != id {
				continue
			}
			var res codec.CommandResult
			if err := codec.Default().DecodeInto(rec.Value, &res); err != nil {
				t.Fatal(err)
			}
			if res.AggregateID != agg {
				continue
			}
			a := answer{res: &res, offset: headerOf(rec, processor.HeaderCommandOffset)}
			for _, m := range []string{processor.HeaderDuplicate, processor.HeaderReused} {
				if headerOf(rec, m) != "" {
					a.mark = m
				}
			}
			out = append(out, a)
		}
		return len(out) >= n
	})
	return out
}

// accountsOn returns n account ids: the first on partition p0 (of 3), the
// others chosen so that same[i] says whether account i shares p0.
func accountsOn(prefix string, same ...bool) []string {
	out := []string{}
	p0 := int32(-1)
	for i := 0; len(out) < len(same)+1; i++ {
		id := prefix + strconv.Itoa(i)
		p := kafkax.KeyPartition([]byte(id), 3)
		switch {
		case p0 < 0:
			p0 = p
			out = append(out, id)
		case (p == p0) == same[len(out)-1]:
			out = append(out, id)
		}
	}
	return out
}

func tr(id, transferID, from, to string, amount int64) *codec.TransferFunds {
	t := transfer(id, from, to, amount)
	t.TransferID = transferID
	return t
}

// TestIdempotencyKeys pins the idempotency-key semantics. Regressions of:
// a command id reused for a transfer from another account was answered with
// the first transfer's outcome while debiting anyway, and its credit (whose
// id was derived from the client's id) was deduplicated away at the
// destination, losing the money; a repeated id with another body was
// answered with the first outcome; a dead-lettered command had no outcome.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	// a and a2 share a partition, b is on another; all send to c.
	accs := accountsOn("idem-", true, false)
	a, a2, b := accs[0], accs[1], accs[2]
	c := "idem-dest"
	e.send(
		open("o-a", a, "EUR"), open("o-a2", a2, "EUR"), open("o-b", b, "EUR"), open("o-c", c, "EUR"),
		deposit("d-a", a, 2000), deposit("d-a2", a2, 2000), deposit("d-b", b, 2000),
		tr("k1", "tr-1", a, c, 100),
		tr("k1", "tr-2", b, c, 250), // same id, account on another partition
		tr("k1", "tr-3", a2, c, 50), // same id, another account on the same partition
		tr("k1", "tr-1", a, c, 100), // the first request again
		deposit("k2", a, 10),        //
		deposit("k2", a, 20),        // same id, same account, other body
		withdraw("k2", a, 10),       // same id, same account, other type
		deposit("k2", a, 10),        // the first request again
	)
	// A command whose key is not its aggregate: dead-lettered, with an outcome.
	val, err := codec.Default().Encode(deposit("k3", a, 5))
	if err != nil {
		t.Fatal(err)
	}
	e.sendRaw("idem-wrong-key", val)
	e.sendRaw("idem-wrong-key", val) // and its repeat

	r := e.reader(e.names.Results)
	first := answers(t, r, a, "k1", 2)
	if first[0].res.Status != "ACCEPTED" || first[0].mark != "" || first[1].mark != processor.HeaderDuplicate ||
		first[1].res.Version != first[0].res.Version || first[1].res.Events[0] != first[0].res.Events[0] {
		t.Errorf("k1 on %s: %+v then %+v, want accepted then the same outcome as a repeat", a, first[0].res, first[1].res)
	}
	// Another partition cannot see the first use (documented): it is a
	// request of its own there, with its own outcome, never the first's.
	if got := answers(t, r, b, "k1", 1)[0]; got.res.Status != "ACCEPTED" || got.mark != "" || got.res.AggregateID != b {
		t.Errorf("k1 on %s: %+v (%s)", b, got.res, got.mark)
	}
	if got := answers(t, r, a2, "k1", 1)[0]; got.res.Reason != "idempotency_key_reused" || got.mark != processor.HeaderReused {
		t.Errorf("k1 on %s (same partition as %s): %+v (%s), want idempotency_key_reused", a2, a, got.res, got.mark)
	}
	k2 := answers(t, r, a, "k2", 4)
	for i, want := range []struct{ status, reason, mark string }{
		{"ACCEPTED", "", ""},
		{"REJECTED", "idempotency_key_reused", processor.HeaderReused},
		{"REJECTED", "idempotency_key_reused", processor.HeaderReused},
		{"ACCEPTED", "", processor.HeaderDuplicate},
	} {
		if got := k2[i]; got.res.Status != want.status || got.res.Reason != want.reason || got.mark != want.mark {
			t.Errorf("k2 answer %d: %s %q (%s), want %s %q (%s)", i, got.res.Status, got.res.Reason, got.mark, want.status, want.reason, want.mark)
		}
		if k2[i].offset == "" || (i > 0 && k2[i].offset == k2[i-1].offset) {
			t.Errorf("k2 answer %d names command record %q: each answer must name its own", i, k2[i].offset)
		}
	}
	dl := answers(t, r, a, "k3", 2)
	if dl[0].res.Reason != "dead_lettered" || dl[1].res.Reason != "dead_lettered" || dl[1].mark != processor.HeaderDuplicate {
		t.Errorf("k3: %+v, %+v: want dead_lettered, then the same as a repeat", dl[0].res, dl[1].res)
	}

	// Every transfer is settled and the money is conserved.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var l *audit.Ledger
	for {
		if l, err = audit.ReadEvents(ctx, e.kafka, e.names.Events); err != nil {
			t.Fatal(err)
		}
		if l.Accounts[c] != nil && l.Accounts[c].Balance == 350 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("destination balance %+v, want 350 (100 from %s, 250 from %s)", l.Accounts[c], a, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if problems := l.Check(true); len(problems) > 0 {
		t.Fatalf("ledger invariants: %v", problems)
	}
	for acc, want := range map[string]int64{a: 2000 - 100 + 10, a2: 2000, b: 2000 - 250} {
		if got := l.Accounts[acc].Balance; got != want {
			t.Errorf("%s balance %d, want %d", acc, got, want)
		}
	}
}

// TestRepeatSurvivesCompaction: regression of a repeat forgotten after
// compaction. The answer to a repeat was written under the same key as the
// first outcome, compaction kept only the answer, and the restore skipped
// answers, so the next repeat was applied a second time.
func TestRepeatSurvivesCompaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	// Compact command-results as soon as possible.
	e.setTopicConfigs(ctx, e.names.Results, map[string]string{
		"segment.ms": "500", "min.cleanable.dirty.ratio": "0.001", "min.compaction.lag.ms": "0",
	})

	p := e.start("a")
	acc := "compact-1"
	part := kafkax.KeyPartition([]byte(acc), 3)
	e.send(open("x-open", acc, "EUR"), deposit("x", acc, 100), deposit("x", acc, 100))
	r := e.reader(e.names.Results)
	got := answers(t, r, acc, "x", 2)
	if got[0].res.Version != 2 || got[1].mark != processor.HeaderDuplicate {
		t.Fatalf("before compaction: %+v, %+v", got[0].res, got[1].res)
	}

	// Roll the segment (a record after segment.ms) and wait until the
	// cleaner has removed the first outcome of x.
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		time.Sleep(600 * time.Millisecond)
		e.send(deposit("roll-"+strconv.Itoa(i), acc, 1))
		n := 0
		err := kafkax.ReadFrom(ctx, e.kafka, e.names.Results, map[int32]int64{part: 0}, func(rec *kgo.Record) error {
			if string(rec.Key) == "x" {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break // only the answer to the repeat is left
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cleaner did not compact %s (still %d records of x)", e.names.Results, n)
		}
	}

	// A new processor restores from the compacted topic; x again must be
	// answered with its first outcome, not applied.
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	e.start("b")
	e.send(deposit("x", acc, 100))
	again := answers(t, r, acc, "x", 3)[2]
	if again.mark != processor.HeaderDuplicate || again.res.Version != 2 {
		t.Fatalf("repeat after compaction and restart: %+v (%s), want the first outcome (version 2) as a repeat", again.res, again.mark)
	}
	l, err := audit.ReadEvents(ctx, e.kafka, e.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	if n := l.Commands["x"]; n != 1 {
		t.Fatalf("command x produced %d events, want 1", n)
	}
}

// TestOutOfBoundsCommands: regression of inputs that wedged the read side
// or bloated the processor's state (an issued_at past 9999 stopped the
// Redis projector, a 300 KB id the ClickHouse one, and ~1 MiB ids and
// owners were kept in state and reloaded on every restore). A direct Avro
// producer's command outside the domain's input bounds is dead-lettered
// with a rejected result, nothing of it enters the state, and the
// partition goes on.
func TestOutOfBoundsCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("a")
	far := deposit("far", "oob-1", 5)
	far.IssuedAt = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	hugeID := strings.Repeat("x", 300<<10)
	owner := open("big-owner", "oob-1", "EUR")
	owner.Owner = strings.Repeat("o", domain.MaxOwnerBytes+1)
	huge := &codec.DepositFunds{CommandID: "huge-account", AggregateID: hugeID, IssuedAt: issued, Amount: 1}
	e.send(open("o", "oob-1", "EUR"), far, owner, huge, deposit("after", "oob-1", 7))

	r := e.reader(e.names.Results)
	for _, c := range []struct{ id, agg, field string }{
		{"far", "oob-1", "issued_at"}, {"big-owner", "oob-1", "owner"}, {"huge-account", hugeID, "account_id"},
	} {
		got := answers(t, r, c.agg, c.id, 1)[0].res
		if got.Reason != string(domain.ReasonDeadLettered) || !strings.Contains(got.Message, c.field) {
			t.Errorf("%s: %s %q, want dead_lettered naming %s", c.id, got.Reason, clipTest(got.Message), c.field)
		}
	}
	if got := answers(t, r, "oob-1", "after", 1)[0].res; got.Status != "ACCEPTED" || got.Version != 2 {
		t.Errorf("the command after them: %+v", got)
	}
	dlq := e.reader(e.names.DLQ).until("3 dead letters", func(rs []*kgo.Record) bool { return len(rs) >= 3 })
	for _, rec := range dlq {
		if !strings.HasPrefix(headerOf(rec, processor.HeaderError), "out of bounds") {
			t.Errorf("dlq record: %q", headerOf(rec, processor.HeaderError))
		}
	}
}

func clipTest(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
