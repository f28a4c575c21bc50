// Package audit folds the events topic and checks the ledger's invariants:
// versions per aggregate are 1..n without gap or repeat, no event is written
// twice, every balance_after follows from the previous balance, money is
// conserved per currency (balances = deposits − withdrawals − in flight), and
// every transfer is debited once and then credited or refunded exactly once.
// Crash, rebalance and load tests use it as their oracle; it knows the event
// shapes (codec) but not the rules that produced them (domain).
package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrs-ledger/ledger/internal/codec"
	"github.com/cqrs-ledger/ledger/internal/config"
	"github.com/cqrs-ledger/ledger/internal/kafkax"
	"github.com/cqrs-ledger/ledger/internal/projection"
)

// Account is an account as the events say it is.
type Account struct {
	ID       string
	Currency string
	Balance  int64
	Version  int64
	Closed   bool
}

// Transfer is what happened to one transfer.
type Transfer struct {
	ID                          string
	Debited, Credited, Refunded int
	Amount                      int64
	Currency, From, To          string
}

// Status is pending, completed or refunded (or "broken" when the counts are impossible).
func (t Transfer) Status() string {
	switch {
	case t.Debited == 1 && t.Credited == 0 && t.Refunded == 0:
		return "pending"
	case t.Debited == 1 && t.Credited == 1 && t.Refunded == 0:
		return "completed"
	case t.Debited == 1 && t.Credited == 0 && t.Refunded == 1:
		return "refunded"
	}
	return "broken"
}

// Totals are the money movements of one currency.
type Totals struct {
	Deposits, Withdrawals int64
	Balances              int64 // sum of account balances
	InFlight              int64 // debited, not yet credited or refunded
	Events                int
}

// Ledger is the fold of every event seen so far. The zero value is empty and ready.
type Ledger struct {
	Accounts  map[string]*Account
	Transfers map[string]*Transfer
	Totals    map[string]*Totals
	Events    int
	Commands  map[string]int // command id → events it produced
	eventIDs  map[string]struct{}
	Problems  []string
}

// HasEvent reports whether an event with this id was seen.
func (l *Ledger) HasEvent(id string) bool {
	_, ok := l.eventIDs[id]
	return ok
}

func (l *Ledger) init() {
	if l.Accounts == nil {
		l.Accounts = map[string]*Account{}
		l.Transfers = map[string]*Transfer{}
		l.Totals = map[string]*Totals{}
		l.Commands = map[string]int{}
		l.eventIDs = map[string]struct{}{}
	}
}

func (l *Ledger) problem(format string, args ...any) {
	if len(l.Problems) < 1000 {
		l.Problems = append(l.Problems, fmt.Sprintf(format, args...))
	}
}

func (l *Ledger) totals(cur string) *Totals {
	t := l.Totals[cur]
	if t == nil {
		t = &Totals{}
		l.Totals[cur] = t
	}
	return t
}

func (l *Ledger) transfer(id string) *Transfer {
	t := l.Transfers[id]
	if t == nil {
		t = &Transfer{ID: id}
		l.Transfers[id] = t
	}
	return t
}

// meta is the envelope every event carries.
type meta struct {
	eventID, aggregate, command string
	version                     int64
}

// Add folds one decoded event (a pointer to a codec event type). Events of
// one aggregate must be added in log order; aggregates may interleave.
func (l *Ledger) Add(ev any) {
	l.init()
	f, ok := codec.FactsOf(ev)
	if !ok {
		l.problem("not an event: %T", ev)
		return
	}
	m := meta{f.EventID, f.AggregateID, f.CommandID, f.Version}
	l.Events++
	if _, dup := l.eventIDs[m.eventID]; dup {
		l.problem("event %s written twice (aggregate %s version %d)", m.eventID, m.aggregate, m.version)
	}
	l.eventIDs[m.eventID] = struct{}{}
	l.Commands[m.command]++
	acc := l.Accounts[m.aggregate]
	if acc == nil {
		acc = &Account{ID: m.aggregate}
		l.Accounts[m.aggregate] = acc
	}
	if m.version != acc.Version+1 {
		l.problem("aggregate %s: version %d follows %d (event %s)", m.aggregate, m.version, acc.Version, m.eventID)
	}
	acc.Version = m.version

	// money moves by amount; balance_after must agree with the fold.
	move := func(cur string, delta, after int64) {
		if acc.Currency == "" {
			l.problem("aggregate %s: money event %s before AccountOpened", m.aggregate, m.eventID)
			acc.Currency = cur
		}
		if cur != acc.Currency {
			l.problem("aggregate %s: event %s in %s, account in %s", m.aggregate, m.eventID, cur, acc.Currency)
		}
		if acc.Balance+delta != after {
			l.problem("aggregate %s: event %s balance_after %d, fold says %d", m.aggregate, m.eventID, after, acc.Balance+delta)
		}
		acc.Balance = after
		l.totals(acc.Currency).Events++
	}
	switch {
	case f.Open:
		if acc.Currency != "" {
			l.problem("aggregate %s opened twice (event %s)", m.aggregate, m.eventID)
		}
		acc.Currency = f.Currency
		l.totals(f.Currency).Events++
	case f.Money:
		move(f.Currency, f.Amount, f.BalanceAfter)
		t := l.totals(f.Currency)
		switch f.Transfer {
		case codec.NoTransfer: // money in or out of the ledger
			if f.Amount > 0 {
				t.Deposits += f.Amount
			} else {
				t.Withdrawals += f.Magnitude()
			}
		case codec.TransferDebitedStep:
			tr := l.transfer(f.TransferID)
			tr.Debited++
			tr.Amount, tr.Currency, tr.From, tr.To = f.Magnitude(), f.Currency, m.aggregate, f.Counterparty
			t.InFlight += f.Magnitude()
		case codec.TransferCreditedStep:
			l.transfer(f.TransferID).Credited++
			t.InFlight -= f.Magnitude()
		case codec.TransferRefundedStep:
			l.transfer(f.TransferID).Refunded++
			t.InFlight -= f.Magnitude()
		}
	case f.Close:
		if acc.Balance != 0 {
			l.problem("aggregate %s closed with balance %d", m.aggregate, acc.Balance)
		}
		acc.Closed = true
		l.totals(acc.Currency).Events++
	}
}

// Check returns every violated invariant. With settled, every transfer must
// be completed or refunded (nothing may still be in flight).
func (l *Ledger) Check(settled bool) []string {
	l.init()
	problems := append([]string(nil), l.Problems...)
	sums := map[string]int64{}
	for _, a := range l.Accounts {
		sums[a.Currency] += a.Balance
	}
	for cur, t := range l.Totals {
		t.Balances = sums[cur]
		if t.Balances != t.Deposits-t.Withdrawals-t.InFlight {
			problems = append(problems, fmt.Sprintf("%s: balances %d ≠ deposits %d − withdrawals %d − in flight %d",
				cur, t.Balances, t.Deposits, t.Withdrawals, t.InFlight))
		}
	}
	ids := make([]string, 0, len(l.Transfers))
	for id := range l.Transfers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := l.Transfers[id]
		switch s := t.Status(); {
		case s == "broken":
			problems = append(problems, fmt.Sprintf("transfer %s: debited %d, credited %d, refunded %d", id, t.Debited, t.Credited, t.Refunded))
		case s == "pending" && settled:
			problems = append(problems, fmt.Sprintf("transfer %s: still pending", id))
		}
	}
	return problems
}

// Summary is a one-line account of the fold, for logs.
func (l *Ledger) Summary() string {
	l.init()
	var b strings.Builder
	status := map[string]int{}
	for _, t := range l.Transfers {
		status[t.Status()]++
	}
	fmt.Fprintf(&b, "%d events, %d aggregates, %d commands, transfers %v", l.Events, len(l.Accounts), len(l.Commands), status)
	curs := make([]string, 0, len(l.Totals))
	for c := range l.Totals {
		curs = append(curs, c)
	}
	sort.Strings(curs)
	for _, c := range curs {
		t := l.Totals[c]
		fmt.Fprintf(&b, "; %s deposits %d withdrawals %d in-flight %d", c, t.Deposits, t.Withdrawals, t.InFlight)
	}
	return b.String()
}

// ReadEvents folds every committed event of topic (read_committed, to the
// high watermark). Records that do not decode are problems, not errors.
func ReadEvents(ctx context.Context, cfg config.Kafka, topic string) (*Ledger, error) {
	l := &Ledger{}
	l.init()
	cat := codec.Default()
	err := kafkax.ReadAll(ctx, cfg, topic, func(r *kgo.Record) error {
		if r.Value == nil {
			return nil // a tombstone (erasure) is not an event
		}
		ev, err := cat.Decode(r.Value)
		if err != nil {
			l.problem("%s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return nil
		}
		if _, red := kafkax.Header(r, projection.HeaderRedacted); red {
			// An erasure's copy of an event (ledgerctl erase): the
			// same event once more, folded only if compaction has
			// removed the original already.
			if f, ok := codec.FactsOf(ev); ok && l.HasEvent(f.EventID) {
				return nil
			}
		}
		l.Add(ev)
		return nil
	})
	return l, err
}
