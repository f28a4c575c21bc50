package audit

import (
	"strings"
	"testing"

	"github.com/cqrs-ledger/ledger/internal/codec"
)

func opened(id string, v int64) *codec.AccountOpened {
	return &codec.AccountOpened{EventID: id + "/open", AggregateID: id, Version: v, CommandID: id + "-open", Currency: "EUR", Owner: "o"}
}

func dep(id, ev string, v, amount, after int64) *codec.FundsDeposited {
	return &codec.FundsDeposited{EventID: ev, AggregateID: id, Version: v, CommandID: ev, Amount: amount, Currency: "EUR", BalanceAfter: after}
}

// valid is a small history: two accounts, a completed and a refunded transfer.
func valid() []any {
	return []any{
		opened("a", 1), opened("b", 1),
		dep("a", "d1", 2, 100, 100),
		&codec.FundsWithdrawn{EventID: "w1", AggregateID: "a", Version: 3, CommandID: "w1", Amount: 30, Currency: "EUR", BalanceAfter: 70},
		&codec.TransferDebited{EventID: "t1/1", AggregateID: "a", Version: 4, CommandID: "t1", TransferID: "t1", ToAccountID: "b", Amount: 20, Currency: "EUR", BalanceAfter: 50},
		&codec.TransferCredited{EventID: "t1c/1", AggregateID: "b", Version: 2, CommandID: "t1/credit", TransferID: "t1", FromAccountID: "a", Amount: 20, Currency: "EUR", BalanceAfter: 20},
		&codec.TransferDebited{EventID: "t2/1", AggregateID: "a", Version: 5, CommandID: "t2", TransferID: "t2", ToAccountID: "x", Amount: 10, Currency: "EUR", BalanceAfter: 40},
		&codec.TransferRefunded{EventID: "t2r/1", AggregateID: "a", Version: 6, CommandID: "t2/credit/refund", TransferID: "t2", ToAccountID: "x", Amount: 10, Currency: "EUR", BalanceAfter: 50},
	}
}

func fold(evs []any) *Ledger {
	l := &Ledger{}
	for _, e := range evs {
		l.Add(e)
	}
	return l
}

func TestValidHistoryHasNoProblems(t *testing.T) {
	l := fold(valid())
	if p := l.Check(true); len(p) != 0 {
		t.Fatalf("problems in a valid history: %v", p)
	}
	if l.Accounts["a"].Balance != 50 || l.Accounts["b"].Balance != 20 || l.Transfers["t1"].Status() != "completed" || l.Transfers["t2"].Status() != "refunded" {
		t.Fatalf("fold: %s", l.Summary())
	}
}

func TestEachViolationIsFound(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func([]any) []any
		settled bool
		want    string
	}{
		{"duplicate event", func(e []any) []any { return append(e, e[2]) }, true, "written twice"},
		{"version gap", func(e []any) []any { return append(e, dep("b", "d9", 4, 1, 21)) }, true, "version 4 follows 2"},
		{"wrong balance_after", func(e []any) []any { return append(e, dep("b", "d9", 3, 1, 99)) }, true, "balance_after 99"},
		{"double credit", func(e []any) []any {
			return append(e, &codec.TransferCredited{EventID: "t1c/2", AggregateID: "b", Version: 3, CommandID: "x", TransferID: "t1", Amount: 20, Currency: "EUR", BalanceAfter: 40})
		}, true, "transfer t1: debited 1, credited 2"},
		{"pending when settled", func(e []any) []any {
			return append(e, &codec.TransferDebited{EventID: "t3/1", AggregateID: "a", Version: 7, CommandID: "t3", TransferID: "t3", ToAccountID: "b", Amount: 5, Currency: "EUR", BalanceAfter: 45})
		}, true, "transfer t3: still pending"},
		{"closed with money", func(e []any) []any {
			return append(e, &codec.AccountClosed{EventID: "c", AggregateID: "a", Version: 7, CommandID: "c"})
		}, true, "closed with balance 50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := fold(tc.mutate(valid())).Check(tc.settled)
			if !strings.Contains(strings.Join(p, "\n"), tc.want) {
				t.Fatalf("want a problem containing %q, got %v", tc.want, p)
			}
		})
	}
	// In flight is fine while not settled, and counted once in the money check.
	l := fold(append(valid(), &codec.TransferDebited{EventID: "t3/1", AggregateID: "a", Version: 7, CommandID: "t3", TransferID: "t3", ToAccountID: "b", Amount: 5, Currency: "EUR", BalanceAfter: 45}))
	if p := l.Check(false); len(p) != 0 {
		t.Fatalf("an in-flight transfer is not a problem before settling: %v", p)
	}
}
