package processor_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/ingest/processor"
)

// TestRebalanceInvariants runs a stream of deposits, withdrawals and
// transfers while a second processor joins the group and the first one
// leaves mid-stream, then checks with a read_committed reader that every
// command has exactly one result, versions are 1..n without gaps or
// duplicates per aggregate, money is conserved and every transfer was
// either credited or refunded.
func TestRebalanceInvariants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start("a")

	const accounts = 8
	acc := func(i int) string { return fmt.Sprintf("inv-%d", i) }
	var ids []string
	var sent []any
	send := func(c any) {
		e.send(c)
		sent = append(sent, c)
		switch c := c.(type) {
		case *codec.OpenAccount:
			ids = append(ids, c.CommandID)
		case *codec.DepositFunds:
			ids = append(ids, c.CommandID)
		case *codec.WithdrawFunds:
			ids = append(ids, c.CommandID)
		case *codec.TransferFunds:
			ids = append(ids, c.CommandID)
		}
	}
	for i := range accounts {
		send(open(fmt.Sprintf("open-%d", i), acc(i), "EUR"))
		send(deposit(fmt.Sprintf("seed-%d", i), acc(i), 1000))
	}

	rng := rand.New(rand.NewPCG(7, 11))
	const n = 240
	for i := range n {
		switch i {
		case n / 3:
			e.start("b") // partitions are now shared
		case 2 * n / 3:
			if err := a.stop(); err != nil { // b takes over a's partitions
				t.Fatalf("stop a: %v", err)
			}
		}
		id := fmt.Sprintf("cmd-%d", i)
		from := acc(rng.IntN(accounts))
		switch k := rng.IntN(10); {
		case k < 3:
			send(deposit(id, from, 1+rng.Int64N(300)))
		case k < 5:
			send(withdraw(id, from, 1+rng.Int64N(600)))
		case k < 9:
			to := acc(rng.IntN(accounts))
			if k == 8 {
				to = "missing-" + id // refunded
			}
			send(transfer(id, from, to, 1+rng.Int64N(500)))
		default:
			send(sent[rng.IntN(len(sent))]) // a duplicate: must change nothing
		}
		if i%20 == 0 {
			time.Sleep(50 * time.Millisecond) // spread the stream over several batches
		}
	}

	// Wait for every upstream command, then for every saga step.
	results := e.reader(e.names.Results)
	got := results.results(unique(ids)...)
	var saga []string
	for _, r := range got {
		if r.CommandType == "ledger.commands.TransferFunds" && r.Status == "ACCEPTED" {
			saga = append(saga, r.Events[0].EventID+"/credit") // from the debit event
		}
	}
	got = results.results(saga...)
	var refunds []string
	for _, id := range saga {
		if got[id].Status == "REJECTED" {
			refunds = append(refunds, id+"/refund")
		}
	}
	got = results.results(refunds...)
	for _, id := range refunds {
		if got[id].Status != "ACCEPTED" {
			t.Errorf("refund %s: %+v", id, got[id])
		}
	}
	wantEvents := 0
	for id, r := range got {
		if n := countKey(results.recs, id); n != 1 {
			t.Errorf("%d results for %s, want exactly 1", n, id)
		}
		wantEvents += len(r.Events)
	}

	events := e.reader(e.names.Events).until(fmt.Sprintf("%d events", wantEvents), func(rs []*kgo.Record) bool {
		return len(rs) >= wantEvents
	})
	if len(events) != wantEvents {
		t.Errorf("%d events, want %d (from the results' event refs)", len(events), wantEvents)
	}

	version := map[string]int64{}
	balance := map[string]int64{}
	var deposits, withdrawals int64
	inFlight := map[string]int64{} // transfer id → amount debited, until credited or refunded
	for _, r := range events {
		agg, _, _ := strings.Cut(string(r.Key), "/")
		v, err := codec.Default().Decode(r.Value)
		if err != nil {
			t.Fatalf("event %s: %v", r.Key, err)
		}
		var ver, after int64
		switch ev := v.(type) {
		case *codec.AccountOpened:
			ver = ev.Version
		case *codec.FundsDeposited:
			ver, after = ev.Version, ev.BalanceAfter
			deposits += ev.Amount
			checkBalance(t, r, balance[agg]+ev.Amount, after)
		case *codec.FundsWithdrawn:
			ver, after = ev.Version, ev.BalanceAfter
			withdrawals += ev.Amount
			checkBalance(t, r, balance[agg]-ev.Amount, after)
		case *codec.TransferDebited:
			ver, after = ev.Version, ev.BalanceAfter
			inFlight[ev.TransferID] += ev.Amount
			checkBalance(t, r, balance[agg]-ev.Amount, after)
		case *codec.TransferCredited:
			ver, after = ev.Version, ev.BalanceAfter
			inFlight[ev.TransferID] -= ev.Amount
			checkBalance(t, r, balance[agg]+ev.Amount, after)
		case *codec.TransferRefunded:
			ver, after = ev.Version, ev.BalanceAfter
			inFlight[ev.TransferID] -= ev.Amount
			checkBalance(t, r, balance[agg]+ev.Amount, after)
		default:
			t.Fatalf("event %s is a %T", r.Key, v)
		}
		if ver != version[agg]+1 {
			t.Errorf("event %s: version %d follows %d", r.Key, ver, version[agg])
		}
		if headerOf(r, processor.HeaderType) == "" {
			t.Errorf("event %s has no type header", r.Key)
		}
		version[agg], balance[agg] = ver, after
	}
	var total int64
	for _, b := range balance {
		total += b
	}
	if total != deposits-withdrawals {
		t.Errorf("sum of balances %d != deposits %d - withdrawals %d", total, deposits, withdrawals)
	}
	for tr, amount := range inFlight {
		if amount != 0 {
			t.Errorf("transfer %s: %d still in flight", tr, amount)
		}
	}
	t.Logf("%d commands, %d transfers, %d refunds, %d events, total balance %d", len(got), len(saga), len(refunds), len(events), total)
}

func checkBalance(t *testing.T, r *kgo.Record, want, got int64) {
	t.Helper()
	if want != got {
		t.Errorf("event %s: balance_after %d, want %d", r.Key, got, want)
	}
}

func unique(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
