package chsink

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/cqrs-ledger/ledger/internal/audit"
	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// genStart is the first event's time: late on a month's last day, so the
// history crosses a month and lands in two partitions of ledger_events.
var genStart = time.Date(2026, 1, 31, 21, 0, 0, 123_000_000, time.UTC)

// history is a generated valid event history, its fold and its expectations.
type history struct {
	events []projection.Event
	fold   *audit.Ledger
	owner  map[string]string
	limit  map[string]int64
	// transfer volume per currency, by outcome
	debited, credited, refunded map[string]int64
}

type genAcct struct {
	id, currency string
	balance      int64
	limit        int64
	version      int64
	closed       bool
	pending      int
}

// generate builds about steps events over n accounts in three currencies:
// deposits, withdrawals into the overdraft, transfers that complete, are
// refunded (closed destination or another currency) or settle late, and two
// closed accounts. Events are 47.5 s apart (not whole seconds, to check the
// millisecond column).
func generate(t *testing.T, seed uint64, prefix string, n, steps int) *history {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	h := &history{fold: &audit.Ledger{}, owner: map[string]string{}, limit: map[string]int64{},
		debited: map[string]int64{}, credited: map[string]int64{}, refunded: map[string]int64{}}
	currencies := []string{"EUR", "USD", "GBP"}
	var accts []*genAcct
	clock := genStart
	var offset int64
	cmd := 0
	emit := func(a *genAcct, v any) {
		a.version++
		clock = clock.Add(47500 * time.Millisecond)
		cmd++
		c := fmt.Sprintf("%scmd-%d", prefix, cmd)
		id := fmt.Sprintf("%s/%d", a.id, a.version)
		switch x := v.(type) {
		case *codec.AccountOpened:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.FundsDeposited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.FundsWithdrawn:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.TransferDebited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.TransferCredited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.TransferRefunded:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		case *codec.AccountClosed:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = id, a.id, a.version, c, c, c, clock
		}
		e, err := projection.EventOf(v)
		if err != nil {
			t.Fatal(err)
		}
		e.Partition = int32(len(a.id) % 3)
		e.Offset = offset
		offset++
		h.events = append(h.events, e)
		h.fold.Add(v)
	}
	type pend struct {
		id       string
		from, to *genAcct
		amount   int64
	}
	var pending []pend
	settle := func(p pend) {
		p.from.pending--
		if p.to.closed || p.to.currency != p.from.currency {
			p.from.balance += p.amount
			emit(p.from, &codec.TransferRefunded{TransferID: p.id, ToAccountID: p.to.id, Amount: p.amount,
				Currency: p.from.currency, BalanceAfter: p.from.balance, Reason: "currency_mismatch"})
			h.refunded[p.from.currency] += p.amount
			return
		}
		p.to.balance += p.amount
		emit(p.to, &codec.TransferCredited{TransferID: p.id, FromAccountID: p.from.id, Amount: p.amount,
			Currency: p.to.currency, BalanceAfter: p.to.balance})
		h.credited[p.to.currency] += p.amount
	}
	open := func() {
		a := &genAcct{id: fmt.Sprintf("%sacc-%02d", prefix, len(accts)), currency: currencies[len(accts)%3], limit: int64(rng.IntN(3)) * 500}
		accts = append(accts, a)
		h.owner[a.id], h.limit[a.id] = "owner of "+a.id, a.limit
		emit(a, &codec.AccountOpened{Owner: h.owner[a.id], Currency: a.currency, OverdraftLimit: a.limit})
	}
	for len(accts) < 3 {
		open()
	}
	for i := 0; i < steps; i++ {
		var live []*genAcct
		for _, a := range accts {
			if !a.closed {
				live = append(live, a)
			}
		}
		a := live[rng.IntN(len(live))]
		switch r := rng.IntN(100); {
		case r < 6 && len(accts) < n:
			open()
		case r < 40:
			amt := int64(1 + rng.IntN(5000))
			a.balance += amt
			emit(a, &codec.FundsDeposited{Amount: amt, Currency: a.currency, BalanceAfter: a.balance, Reference: "dep"})
		case r < 60:
			amt := int64(1 + rng.IntN(3000))
			if a.balance-amt < -a.limit {
				continue
			}
			a.balance -= amt
			emit(a, &codec.FundsWithdrawn{Amount: amt, Currency: a.currency, BalanceAfter: a.balance, Reference: "wd"})
		case r < 90:
			to := accts[rng.IntN(len(accts))]
			amt := int64(1 + rng.IntN(2000))
			if to == a || a.balance-amt < -a.limit {
				continue
			}
			a.balance -= amt
			a.pending++
			p := pend{fmt.Sprintf("%stx-%d", prefix, i), a, to, amt}
			emit(a, &codec.TransferDebited{TransferID: p.id, ToAccountID: to.id, Amount: amt, Currency: a.currency, BalanceAfter: a.balance})
			h.debited[a.currency] += amt
			pending = append(pending, p)
		case len(pending) > 0:
			k := rng.IntN(len(pending))
			settle(pending[k])
			pending = append(pending[:k], pending[k+1:]...)
		}
	}
	for _, p := range pending {
		settle(p)
	}
	// Close two accounts: bring the balance to zero, then close.
	for _, a := range accts[:2] {
		switch {
		case a.balance > 0:
			amt := a.balance
			a.balance = 0
			emit(a, &codec.FundsWithdrawn{Amount: amt, Currency: a.currency, BalanceAfter: 0, Reference: "drain"})
		case a.balance < 0:
			amt := -a.balance
			a.balance = 0
			emit(a, &codec.FundsDeposited{Amount: amt, Currency: a.currency, BalanceAfter: 0, Reference: "settle"})
		}
		a.closed = true
		emit(a, &codec.AccountClosed{})
	}
	if p := h.fold.Check(true); len(p) > 0 {
		t.Fatalf("generator made an invalid history: %v", p)
	}
	return h
}

// accountIDs returns the fold's accounts, sorted.
func (h *history) accountIDs() []string {
	ids := make([]string, 0, len(h.fold.Accounts))
	for id := range h.fold.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// batches splits h.events into batches of size n.
func (h *history) batches(n int) [][]projection.Event {
	var out [][]projection.Event
	for i := 0; i < len(h.events); i += n {
		out = append(out, h.events[i:min(i+n, len(h.events))])
	}
	return out
}
