// Package projectiontest is the contract suite every projection view passes
// (in-memory, Redis, ClickHouse), and the generator of event histories it
// and the projector tests feed them.
package projectiontest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// History is a generated, valid event history and the views it must lead to.
type History struct {
	// Events in log order per aggregate; aggregates interleave. Each has
	// a position as in an events topic of Partitions partitions: an
	// aggregate's events on one partition (by a hash of its id), offsets
	// increasing in the order of Events.
	Events []projection.Event
	// Accounts, Transfers and Txs (every money event, newest first) are the
	// expected final views, built by the generator independently of the
	// projection logic.
	Accounts  map[string]projection.AccountView
	Transfers map[string]projection.TransferView
	Txs       map[string][]projection.TxView
}

// Base is the time of the first generated event. Events are one second apart,
// so views that store seconds (ClickHouse DateTime) keep them exactly.
var Base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Partitions is the number of partitions generated events are spread over.
const Partitions = 4

// position places an aggregate's next event: its partition (FNV-1a of the
// id) and that partition's next offset.
func position(next map[int32]int64, id string) (int32, int64) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	p := int32(h.Sum32() % Partitions)
	off := next[p]
	next[p] = off + 1
	return p, off
}

type genAccount struct {
	view          projection.AccountView
	pendingOut    int // transfers debited from it, not yet settled
	closeRequests int
}

type pendingTransfer struct {
	id, from, to, currency string
	amount                 int64
}

// Generate builds a history of about steps events over n accounts (ids
// "<idPrefix>acc-<i>") in three currencies, with deposits, withdrawals
// (some into the overdraft), transfers that complete or are refunded (to a
// closed account or across currencies), one still pending at the end, and
// closed accounts. The same seed gives the same history.
func Generate(seed uint64, idPrefix string, n, steps int) History {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	h := History{
		Accounts:  map[string]projection.AccountView{},
		Transfers: map[string]projection.TransferView{},
		Txs:       map[string][]projection.TxView{},
	}
	currencies := []string{"EUR", "EUR", "EUR", "USD", "GBP"} // mostly one, so most transfers complete
	accs := map[string]*genAccount{}
	var ids []string
	clock := Base
	seq := 0
	offsets := map[int32]int64{}
	var pending []pendingTransfer

	emit := func(a *genAccount, v any) {
		a.view.Version++
		clock = clock.Add(time.Second)
		seq++
		id := a.view.AccountID
		env := struct {
			eventID, cmd string
		}{fmt.Sprintf("%s-ev-%d", id, a.view.Version), fmt.Sprintf("%scmd-%d", idPrefix, seq)}
		var tx *projection.TxView
		money := func(short string, amount, after int64, transfer, other string) {
			a.view.Balance = after
			tx = &projection.TxView{EventID: env.eventID, Type: short, Amount: amount, BalanceAfter: after,
				Version: a.view.Version, OccurredAt: clock, TransferID: transfer, Counterparty: other}
		}
		switch x := v.(type) {
		case *codec.AccountOpened:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			a.view.Owner, a.view.Currency, a.view.OverdraftLimit, a.view.Status = x.Owner, x.Currency, x.OverdraftLimit, projection.StatusOpen
		case *codec.FundsDeposited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			x.Currency, x.BalanceAfter = a.view.Currency, a.view.Balance+x.Amount
			money("FundsDeposited", x.Amount, x.BalanceAfter, "", "")
		case *codec.FundsWithdrawn:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			x.Currency, x.BalanceAfter = a.view.Currency, a.view.Balance-x.Amount
			money("FundsWithdrawn", -x.Amount, x.BalanceAfter, "", "")
		case *codec.TransferDebited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			x.Currency, x.BalanceAfter = a.view.Currency, a.view.Balance-x.Amount
			money("TransferDebited", -x.Amount, x.BalanceAfter, x.TransferID, x.ToAccountID)
			h.Transfers[x.TransferID] = projection.TransferView{TransferID: x.TransferID, Status: projection.TransferPending,
				FromAccountID: id, ToAccountID: x.ToAccountID, Amount: x.Amount, Currency: x.Currency, UpdatedAt: clock}
		case *codec.TransferCredited:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			x.BalanceAfter = a.view.Balance + x.Amount
			money("TransferCredited", x.Amount, x.BalanceAfter, x.TransferID, x.FromAccountID)
			t := h.Transfers[x.TransferID]
			t.Status, t.UpdatedAt = projection.TransferCompleted, clock
			h.Transfers[x.TransferID] = t
		case *codec.TransferRefunded:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			x.BalanceAfter = a.view.Balance + x.Amount
			money("TransferRefunded", x.Amount, x.BalanceAfter, x.TransferID, x.ToAccountID)
			t := h.Transfers[x.TransferID]
			t.Status, t.UpdatedAt = projection.TransferRefunded, clock
			h.Transfers[x.TransferID] = t
		case *codec.AccountClosed:
			x.EventID, x.AggregateID, x.Version, x.CommandID, x.CorrelationID, x.CausationID, x.OccurredAt = env.eventID, id, a.view.Version, env.cmd, env.cmd, env.cmd, clock
			a.view.Status = projection.StatusClosed
		}
		a.view.UpdatedAt = clock
		if tx != nil {
			h.Txs[id] = append([]projection.TxView{*tx}, h.Txs[id]...)
		}
		e, err := projection.EventOf(v)
		if err != nil {
			panic(err)
		}
		e.Partition, e.Offset = position(offsets, id)
		h.Events = append(h.Events, e)
	}

	settle := func(i int) {
		p := pending[i]
		pending = append(pending[:i], pending[i+1:]...)
		src, dst := accs[p.from], accs[p.to]
		src.pendingOut--
		if dst.view.Status == projection.StatusOpen && dst.view.Currency == p.currency {
			emit(dst, &codec.TransferCredited{TransferID: p.id, FromAccountID: p.from, Amount: p.amount, Currency: p.currency})
			return
		}
		emit(src, &codec.TransferRefunded{TransferID: p.id, ToAccountID: p.to, Amount: p.amount, Currency: p.currency, Reason: "currency_mismatch"})
	}

	for i := range n {
		id := fmt.Sprintf("%sacc-%d", idPrefix, i)
		a := &genAccount{view: projection.AccountView{AccountID: id}}
		accs[id] = a
		ids = append(ids, id)
		emit(a, &codec.AccountOpened{Owner: fmt.Sprintf("owner %d", i), Currency: currencies[rng.IntN(len(currencies))], OverdraftLimit: int64(rng.IntN(3)) * 5000})
	}
	transfers := 0
	for attempts := 0; len(h.Events) < steps && attempts < 100*steps; attempts++ {
		a := accs[ids[rng.IntN(len(ids))]]
		if a.view.Status != projection.StatusOpen {
			continue
		}
		switch r := rng.IntN(100); {
		case r < 35:
			emit(a, &codec.FundsDeposited{Amount: int64(1 + rng.IntN(100000)), Reference: "dep"})
		case r < 55:
			room := a.view.Balance + a.view.OverdraftLimit
			if room <= 0 {
				continue
			}
			emit(a, &codec.FundsWithdrawn{Amount: 1 + rng.Int64N(room), Reference: "wd"})
		case r < 80:
			to := ids[rng.IntN(len(ids))]
			if to == a.view.AccountID || a.view.Balance+a.view.OverdraftLimit <= 0 {
				continue
			}
			transfers++
			tid := fmt.Sprintf("%str-%d", idPrefix, transfers)
			amt := 1 + rng.Int64N(a.view.Balance+a.view.OverdraftLimit)
			emit(a, &codec.TransferDebited{TransferID: tid, ToAccountID: to, Amount: amt})
			a.pendingOut++
			pending = append(pending, pendingTransfer{tid, a.view.AccountID, to, a.view.Currency, amt})
		case r < 97:
			if len(pending) > 0 {
				settle(rng.IntN(len(pending)))
			}
		default:
			if a.pendingOut > 0 || rng.IntN(4) != 0 {
				continue
			}
			switch {
			case a.view.Balance > 0:
				emit(a, &codec.FundsWithdrawn{Amount: a.view.Balance, Reference: "close"})
			case a.view.Balance < 0:
				emit(a, &codec.FundsDeposited{Amount: -a.view.Balance, Reference: "close"})
			}
			emit(a, &codec.AccountClosed{})
		}
	}
	// Settle all but one transfer, so one stays pending.
	for len(pending) > 1 {
		settle(0)
	}
	for id, a := range accs {
		h.Accounts[id] = a.view
	}
	for id, l := range h.Txs {
		if len(l) > projection.MaxRecentTransactions {
			h.Txs[id] = l[:projection.MaxRecentTransactions]
		}
	}
	return h
}
